"""Tools of the project that are not the library: the training queue, the GPU lease, the device check."""
