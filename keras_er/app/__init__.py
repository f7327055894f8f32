"""The `keras-er` application: the command line, run folders, publishing runs to the zoo, evaluation reports, plots.

Built on the library (`keras_er.zoo`, `keras_er.training`, `keras_er.data`, ...);
nothing in the library imports from here.
"""
