"""`python -m benchmarks size`: bytes of a sparsified model's `.keras` file against the dense one's, per backend.

    python -m benchmarks size                                  # every backend, ResNet50 at density 0.1 ERK
    python -m benchmarks size --backends jax --model MobileNetV2 --density 0.05

Each backend runs in a fresh process: `keras.applications.<model>(weights=None)` saved as `.keras`, then
`keras_er.sparsify(model, density, "erk")` saved as `.keras`. A masked layer stores its mask as `uint8`
(one byte per weight) beside the float32 kernel, so the sparse file holds about 1.25x the dense file's
bytes (kernels + masks); the target is at most 1.3x. The sparse model is loaded back and its outputs compared
with the saved model's. Writes keras_file_size.json and keras_file_size.md; a run for some backends keeps the
others' rows.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

TARGET_RATIO = 1.3
ROOT = Path(__file__).resolve().parent


def child(model_name, density, folder):
    """`measure` on `keras.applications.<model_name>(weights=None)`."""
    import keras

    model = getattr(keras.applications, model_name)(weights=None)
    return {"model": model_name, **measure(model, density, folder)}


def measure(model, density, folder):
    """Sizes of the dense and the sparsified `.keras` files of `model`, mask bytes per weight, the reload's error."""
    import keras
    import numpy as np

    import keras_er

    folder = Path(folder)
    dense_path, sparse_path = folder / "dense.keras", folder / "sparse.keras"
    model.save(dense_path)
    sparse = keras_er.sparsify(model, density=density, scheme="erk", seed=0)
    sparse.save(sparse_path)
    layers = keras_er.masks.masked_layers(sparse)
    mask_bytes = sum(np.dtype(layer.mask.dtype).itemsize * int(np.prod(layer.mask.shape)) for layer in layers)
    mask_weights = sum(int(np.prod(layer.mask.shape)) for layer in layers)
    x = np.random.default_rng(0).uniform(0, 255, (1, *model.input_shape[1:])).astype("float32")
    expected = keras.ops.convert_to_numpy(sparse(x, training=False))
    loaded = keras.saving.load_model(sparse_path)
    error = float(np.abs(keras.ops.convert_to_numpy(loaded(x, training=False)) - expected).max())
    return {
        "density": density,
        "parameters": int(model.count_params()),
        "dense_bytes": dense_path.stat().st_size,
        "sparse_bytes": sparse_path.stat().st_size,
        "mask_bytes_per_weight": mask_bytes / mask_weights,
        "global_density": keras_er.masks.summary(sparse, print_fn=None)["global_density"],
        "reload_max_error": error,
    }


def run_child(backend, model_name, density, timeout=1800):
    """`child(...)` in a new process on `backend`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT.parent)}
        command = [sys.executable, "-m", "benchmarks.keras_file_size", "--child", model_name, str(density), folder]
        command += ["--out", str(out)]
        subprocess.run(command, env=env, check=True, timeout=timeout, capture_output=True)
        return json.loads(out.read_text())


def markdown(results):
    """Table: per backend, the dense and sparse file sizes, their ratio and the target."""
    lines = [
        "| backend | model | density (ERK) | dense .keras MB | sparse .keras MB | sparse / dense "
        "| mask bytes per weight | reload max error | target |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for backend, row in results["backends"].items():
        ratio = row["sparse_bytes"] / row["dense_bytes"]
        verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
        lines.append(
            f"| {backend} | {row['model']} | {row['density']} | {row['dense_bytes'] / 1e6:.1f} "
            f"| {row['sparse_bytes'] / 1e6:.1f} | {ratio:.3f} | {row['mask_bytes_per_weight']:.0f} "
            f"| {row['reload_max_error']:.1e} | ≤ {TARGET_RATIO}x: {verdict} |"
        )
    lines += [
        "",
        "`keras.applications.<model>(weights=None)` saved with `model.save`, then `keras_er.sparsify(model, "
        "density, 'erk', seed=0)` saved the same way, in one fresh process per backend. The sparse file keeps "
        "every float32 kernel (masked entries are zeros) and a uint8 mask of the kernel's shape; 'reload max "
        "error': the loaded sparse model's outputs against the saved one's.",
    ]
    if results.get("float_masks"):
        lines += ["", results["float_masks"]]
    return "\n".join(lines) + "\n"


def main(argv, out):
    """`python -m benchmarks size`: measure, merge with earlier backends in `out`/keras_file_size.json, write both."""
    from keras_er import BACKENDS  # keras-free

    parser = argparse.ArgumentParser(prog="python -m benchmarks size", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--model", default="ResNet50", help="a keras.applications constructor")
    parser.add_argument("--density", type=float, default=0.1)
    parser.add_argument("--out", default=str(out))
    args = parser.parse_args(argv)
    path = Path(args.out) / "keras_file_size.json"
    results = json.loads(path.read_text()) if path.exists() else {"backends": {}}
    results["target_ratio"] = TARGET_RATIO
    for backend in args.backends:
        print(f"[{backend}] {args.model} density {args.density}", flush=True)
        results["backends"][backend] = run_child(backend, args.model, args.density)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    path.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def _child_main():
    parser = argparse.ArgumentParser(description="one fresh-process measurement (run by `python -m benchmarks size`)")
    parser.add_argument("--child", nargs=3, metavar=("MODEL", "DENSITY", "FOLDER"), required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    model_name, density, folder = args.child
    Path(args.out).write_text(json.dumps(child(model_name, float(density), folder)))


if __name__ == "__main__":
    _child_main()
