"""Images/s of data-parallel training on 1 and on 2 devices, per backend (`python -m benchmarks devices`).

Each setting runs in its own process (a device count is fixed when a framework
starts): a masked ResNet20 (ERK 0.1), global batch 128 of 32x32 images, two
epochs of `--steps` steps through `keras_er.training.fit`; the second epoch is
timed. JAX gets N host devices, TensorFlow N logical CPUs, torch N processes
under torchrun, so on a CPU the N devices share the same cores.
"""

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measure(backend, devices, steps=10):
    """Images per second of the timed epoch."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "seconds.json"
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}
        if backend == "jax":
            env["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={devices}"
        script = [str(Path(__file__)), "--worker", str(devices), str(steps), str(out)]
        if backend == "torch" and devices > 1:
            script = ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}", *script]
        subprocess.run([sys.executable, *script], env=env, check=True, capture_output=True)
        seconds = json.loads(out.read_text())["seconds"]
    return steps * 128 / seconds


def worker(devices, steps, out):
    import keras
    import numpy as np

    from keras_er import training
    from keras_er import zoo
    from keras_er.data.pipeline import ImageBatches
    from keras_er.training import distribute

    if keras.backend.backend() == "tensorflow" and devices > 1:
        distribute.configure_tensorflow_cpus(devices)
    engine = distribute.data_parallel(devices) if devices > 1 else distribute.Engine()
    with engine.scope():
        model = zoo.build("resnet20", "erk", 0.1, pretrained=False, include_preprocessing=False)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (steps * 128, 32, 32, 3), dtype=np.uint8)
    batches = ImageBatches(images, rng.integers(0, 10, len(images)), 128.0, 64.0, batch_size=128)
    recipe = training.Recipe(epochs=2, batch_size=128, warmup_epochs=0)
    history = training.fit(model, batches, recipe, verbose=0, distribution=engine)
    if engine.is_chief:
        Path(out).write_text(json.dumps({"seconds": history.history["epoch_seconds"][-1]}))


def table(backends=("tensorflow", "torch", "jax")):
    rows = ["| backend | engine | 1 device img/s | 2 devices img/s | speed-up |", "| --- | --- | --- | --- | --- |"]
    engines = {"jax": "keras.distribution", "tensorflow": "MirroredStrategy", "torch": "DDP (torchrun, gloo)"}
    for backend in backends:
        one, two = measure(backend, 1), measure(backend, 2)
        rows.append(f"| {backend} | {engines[backend]} | {one:.0f} | {two:.0f} | {two / one:.2f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    else:
        print(table(sys.argv[1:] or ("tensorflow", "torch", "jax")))
