"""What the benchmark modules share: the worker process, the machine's facts, the timed step's batch and compile."""

import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import roofline

ROOT = Path(__file__).resolve().parent
BATCH = 128


def run_worker(backend, *args, env=None, timeout=None):
    """Run benchmarks.worker on `backend` in a fresh process (with extra `env`); its JSON result."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {
            **os.environ,
            **(env or {}),
            "KERAS_BACKEND": backend,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": str(ROOT.parent),
        }
        command = [sys.executable, "-m", "benchmarks.worker", "--out", str(out), *args]
        subprocess.run(command, env=env, check=True, timeout=timeout)
        return json.loads(out.read_text())


def machine():
    import keras

    info = {
        **roofline.cpu_facts(),
        "python": platform.python_version(),
        "keras": keras.__version__,
    }
    for package in ("tensorflow", "torch", "jax"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            pass
    return info


def compile_model(model, **options):
    """The benchmark's optimizer and loss, with compile `options` (e.g. jit_compile)."""
    import keras

    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **options,
    )
    return model


def batch(size=BATCH, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(size, 32, 32, 3)).astype("float32")
    return x, rng.integers(0, 10, size)
