"""`python -m benchmarks knobs`: dense train-step speed of each backend under each speed setting.

One process per (backend, setting), since some settings (oneDNN, XLA flags) are read when the framework loads.
Each setting is timed on the same seeded model and batch; its first two losses are compared with Keras' default
path on that backend (a setting that changes results beyond round-off is marked wrong and never chosen).
Writes knobs.json and knobs.md; a run for some backends keeps the other backends' earlier rows.

    python -m benchmarks knobs                                # every backend, resnet20 and vgg16
    python -m benchmarks knobs --backends jax --models vgg16 --repeats 3
"""

import argparse
import json
import os
import statistics
import time

import numpy as np

LOSS_TOLERANCE = 1e-3  # relative; float32 round-off of a different op order is ~1e-6
KERAS_DEFAULT = "keras default"
KERAS_LAYERS = "Keras' Conv2D + BatchNormalization"

# backend -> [(name, environment, compile options + "data_format" + "layers" + "conv_path")]; the first is
# Keras' default compile path on keras_er's architectures (keras_er.layers.Conv2D / BatchNormalization);
# "layers": "keras" builds the same network from Keras' own two layers instead; "conv_path" sets
# keras_er.layers.set_conv_path.
KNOBS = {
    "tensorflow": [
        (KERAS_DEFAULT, {}, {}),  # "auto": no XLA on a CPU-only machine
        (KERAS_LAYERS + " (unfused)", {}, {"layers": "keras"}),
        ("XLA (jit_compile=True)", {}, {"jit_compile": True}),
        ("oneDNN off", {"TF_ENABLE_ONEDNN_OPTS": "0"}, {}),
        ("XLA, oneDNN off", {"TF_ENABLE_ONEDNN_OPTS": "0"}, {"jit_compile": True}),
        ("channels_first", {}, {"data_format": "channels_first"}),
        ("1 inter-op thread", {"TF_NUM_INTEROP_THREADS": "1"}, {}),
    ],
    "torch": [
        (KERAS_DEFAULT, {}, {}),  # "auto": eager
        ("channels_first", {}, {"data_format": "channels_first"}),
        ("1 OpenMP thread", {"OMP_NUM_THREADS": "1"}, {}),
        ("torch.compile (jit_compile=True)", {}, {"jit_compile": True}),
        ("torch.compile, channels_first", {}, {"jit_compile": True, "data_format": "channels_first"}),
    ],
    "jax": [
        (KERAS_DEFAULT, {}, {}),  # always jitted
        (KERAS_LAYERS + " (XLA's own convolution)", {}, {"layers": "keras"}),
        ("conv path native (XLA's convolution everywhere)", {}, {"conv_path": "native"}),
        ("conv path matmul (shifted-window matmul everywhere)", {}, {"conv_path": "matmul"}),
        ("512-bit vectors", {"XLA_FLAGS": "--xla_cpu_prefer_vector_width=512"}, {}),
        ("concurrency-optimized scheduler", {"XLA_FLAGS": "--xla_cpu_enable_concurrency_optimized_scheduler=true"}, {}),
        ("Eigen single-threaded", {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"}, {}),
        ("oneDNN", {"XLA_FLAGS": "--xla_cpu_use_onednn=true"}, {}),
        ("XNNPACK", {"XLA_FLAGS": "--xla_cpu_use_xnnpack=true"}, {}),
        ("channels_first", {}, {"data_format": "channels_first"}),
    ],
}


def _twin(model, edit_layer):
    """`model` rebuilt from its config after `edit_layer(layer_config)` on every layer, with `model`'s weights."""
    import keras

    config = model.get_config()
    for layer in config["layers"]:
        edit_layer(layer)
    twin = keras.Model.from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def channels_first_twin(model):
    """The same Functional network built channels_first (inputs N, C, H, W), with `model`'s weights."""

    def edit(layer):
        layer.pop("build_config", None)  # shapes are re-inferred from the new input
        inner = layer["config"]
        if layer["class_name"] == "InputLayer":
            shape = inner["batch_shape"]
            inner["batch_shape"] = (shape[0], shape[-1], *shape[1:-1])
        if "data_format" in inner:
            inner["data_format"] = "channels_first"
        if layer["class_name"] == "BatchNormalization":
            inner["axis"] = 1

    return _twin(model, edit)


def keras_layers_twin(model):
    """The same Functional network built from Keras' Conv2D and BatchNormalization, with `model`'s weights."""

    def edit(layer):
        keras_er_layer = str(layer.get("registered_name", "")).startswith("keras_er>")
        if keras_er_layer and layer["class_name"] in ("Conv2D", "BatchNormalization"):
            layer.update(module="keras.layers", registered_name=None)

    return _twin(model, edit)


def measure(arch, setting, repeats, batch_size=128, warmup=2, seed=0):
    """Dense `arch` under `setting` (compile options, optional "data_format"): img/s, GFLOP/s, first losses."""
    import keras

    from benchmarks import common
    from benchmarks import roofline
    from keras_er.models import ARCHITECTURES

    setting = dict(setting)
    data_format = setting.pop("data_format", "channels_last")
    keras_layers = setting.pop("layers", None) == "keras"
    if "conv_path" in setting:
        from keras_er.layers import set_conv_path

        set_conv_path(setting.pop("conv_path"))
    keras.utils.set_random_seed(seed)
    model = ARCHITECTURES[arch](input_shape=(32, 32, 3), classes=10)
    if keras_layers:
        model = keras_layers_twin(model)
    x, y = common.batch(batch_size, seed)
    if data_format == "channels_first":
        model, x = channels_first_twin(model), np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    common.compile_model(model, **setting)
    start = time.perf_counter()
    losses = [float(model.train_on_batch(x, y)) for _ in range(warmup)]
    first_steps_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    step = statistics.median(times)
    return {
        "load_average": os.getloadavg()[0],
        "images_per_s": batch_size / step,
        "train_gflops": roofline.train_flops(model) * batch_size / step / 1e9,
        "step_s": times,
        "first_steps_s": first_steps_s,
        "losses": losses,
    }


def run(backend, models, repeats, timeout, names=None):
    """[{name, environment, options, per-model results or error}] for every knob of `backend` (or those `names`)."""
    import subprocess

    from benchmarks.common import run_worker

    rows = []
    for name, env, options in KNOBS[backend]:
        if names and name not in names:
            continue
        row = {"name": name, "environment": env, "options": options, "models": {}}
        settings = ["--knob", json.dumps(options), "--models", *models, "--repeats", str(repeats)]
        print(f"[{backend}] {name}", flush=True)
        try:
            row["models"] = run_worker(backend, *settings, env=env, timeout=timeout)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            row["error"] = type(error).__name__ + (" (timeout)" if "Timeout" in type(error).__name__ else "")
        rows.append(row)
    return rows


def merge(old_rows, new_rows):
    """`new_rows` replace `old_rows` of the same name; KNOBS order; losses re-checked against the default's."""
    by_name = {row["name"]: row for row in [*old_rows, *new_rows]}
    order = [name for backend in KNOBS.values() for name, _, _ in backend]
    rows = sorted(by_name.values(), key=lambda row: order.index(row["name"]) if row["name"] in order else len(order))
    check_losses(rows)
    return rows


def check_losses(rows):
    """Mark each row's models `correct` when their first losses match the default row's."""
    reference = next((row["models"] for row in rows if row["name"] == KERAS_DEFAULT), {})
    for row in rows:
        for arch, result in row["models"].items():
            base = reference.get(arch, {}).get("losses")
            result["correct"] = base is not None and bool(
                np.allclose(result["losses"], base, rtol=LOSS_TOLERANCE, atol=LOSS_TOLERANCE)
            )


def best(rows, arch):
    """The fastest correct row for `arch`, or None."""
    ok = [row for row in rows if row["models"].get(arch, {}).get("correct")]
    return max(ok, key=lambda row: row["models"][arch]["images_per_s"], default=None)


def markdown(results):
    """Table: backend, model, setting, img/s, GFLOP/s, fraction of the GEMM bound, vs default, correct."""
    lines = [
        "| backend | model | setting | train img/s | GFLOP/s | of GEMM bound | vs default | first losses match |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for backend, entry in results["backends"].items():
        gemm = entry["gemm_gflops"]
        archs = sorted({arch for row in entry["rows"] for arch in row["models"]}, key=entry["models"].index)
        for arch in archs:
            default = entry["rows"][0]["models"].get(arch, {}).get("images_per_s")
            winner = best(entry["rows"], arch)
            for row in entry["rows"]:
                lines.append(_row(backend, arch, row, gemm, default, row is winner))
    lines += ["", caption(results)]
    return "\n".join(lines) + "\n"


def _row(backend, arch, row, gemm, default, winner):
    name = f"**{row['name']}**" if winner else row["name"]
    result = row["models"].get(arch)
    if result is None:
        return f"| {backend} | {arch} | {name} | {row.get('error', 'not run')} | | | | |"
    ratio = f"{result['images_per_s'] / default:.2f}" if default else "n/a"
    return (
        f"| {backend} | {arch} | {name} | {result['images_per_s']:.1f} | {result['train_gflops']:.1f} "
        f"| {result['train_gflops'] / gemm:.0%} | {ratio} | {'yes' if result['correct'] else 'NO'} |"
    )


def caption(results):
    from benchmarks.roofline import TRAIN_FORWARD_RATIO

    m = results["machine"]
    bounds = ", ".join(f"{b} {e['gemm_gflops']:.0f}" for b, e in results["backends"].items())
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores, ISA {' '.join(m['isa'])}. Dense model, batch 128, median of "
        f"the timed steps after 2 warm-up steps; one process per row. GFLOP/s = {TRAIN_FORWARD_RATIO} x forward "
        "FLOPs (2 x multiply-adds of every Conv/Dense) x img/s. GEMM bound: numpy float32 2048^3 matmul measured "
        f"before each backend's rows (GFLOP/s: {bounds}). Bold: the fastest setting whose first two losses match "
        "the default's."
    )


def main(argv, out):
    """`python -m benchmarks knobs`: measure, merge with earlier backends in `out`/knobs.json, write json + md."""
    from benchmarks import roofline
    from keras_er import BACKENDS

    parser = argparse.ArgumentParser(prog="python -m benchmarks knobs", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--models", nargs="+", default=["resnet20", "vgg16"])
    parser.add_argument("--repeats", type=int, default=5, help="timed steps per setting (median)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per setting's process")
    parser.add_argument("--settings", nargs="+", help="only these settings (by name); others' earlier rows are kept")
    parser.add_argument("--out", default=str(out))
    args = parser.parse_args(argv)
    path = __import__("pathlib").Path(args.out) / "knobs.json"
    results = json.loads(path.read_text()) if path.exists() else {"backends": {}}
    results["machine"] = roofline.cpu_facts()
    for backend in args.backends:
        gemm = roofline.gemm_bound()
        rows = run(backend, args.models, args.repeats, args.timeout, args.settings)
        old = results["backends"].get(backend, {}).get("rows", []) if args.settings else []
        results["backends"][backend] = {"gemm": gemm, "gemm_gflops": gemm["gflops"], "models": args.models}
        results["backends"][backend]["rows"] = merge(old, rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    path.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))
