"""Measurements inside one backend process (`KERAS_BACKEND` is fixed at import).

    KERAS_BACKEND=jax python -m benchmarks.worker --out jax.json
    KERAS_BACKEND=jax python -m benchmarks.worker --out jax.json --dst   # DST update overhead only
    KERAS_BACKEND=torch python -m benchmarks.worker --out t.json --knob '{"jit_compile": true}'  # one knob setting

Every speed number is a ratio of two models timed in the same process, steps
interleaved, so machine load shifts both sides alike.
"""

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

import keras_er
from benchmarks import roofline
from benchmarks.common import BATCH
from benchmarks.common import batch
from benchmarks.common import compile_model
from keras_er.masks import layer_densities
from keras_er.masks import sample_masks
from keras_er.models import ARCHITECTURES
from keras_er.zoo import weights_io

DENSITY = 0.1
POPUP = dict(density=0.5, popup=True, popup_density=0.2)  # final density 0.1


def variants(arch, options=None):
    """{name: compiled model}: dense Keras, ERK-masked, popup (same final density), compiled with `options`."""
    dense = ARCHITECTURES[arch](input_shape=(32, 32, 3), classes=10)
    models = {
        "dense": dense,
        "masked": keras_er.sparsify(dense, density=DENSITY, scheme="erk"),
        "popup": keras_er.sparsify(dense, scheme="erk", **POPUP),
    }
    for model in models.values():
        compile_model(model, **(options or {}))
    return models


def time_interleaved(models, step, repeats, warmup=2):
    """Median seconds of `step(model)` per model, timing the models in turn."""
    for model in models.values():
        for _ in range(warmup):
            step(model)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            step(model)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def throughput(arch, repeats, batch_size=BATCH, warmup=2, options=None, model_gemm=True):
    """Images/s of a train step and of inference, per variant, ratios to dense, and the dense step's GFLOP/s.

    `options` are compile arguments (default: Keras' own); `model_gemm`: also
    time numpy on the model's own GEMMs (a CPU bound; skipped on an accelerator).
    """
    options = {} if options is None else options
    models = variants(arch, options)
    x, y = batch(batch_size)
    train = time_interleaved(models, lambda m: m.train_on_batch(x, y), repeats, warmup)
    infer = time_interleaved(
        {k: v for k, v in models.items() if k != "popup"},
        lambda m: keras.ops.convert_to_numpy(m.predict_on_batch(x)),
        repeats,
        warmup,
    )
    return {
        "train_images_per_s": {k: batch_size / t for k, t in train.items()},
        "infer_images_per_s": {k: batch_size / t for k, t in infer.items()},
        "train_ratio": {k: train["dense"] / t for k, t in train.items() if k != "dense"},
        "infer_ratio": {"masked": infer["dense"] / infer["masked"]},
        "jit_compile": str(models["masked"].jit_compile),
        "train_flops_per_image": roofline.train_flops(models["dense"]),
        "train_gflops": roofline.train_flops(models["dense"]) * batch_size / train["dense"] / 1e9,
        "model_gemm_gflops": roofline.model_gemm_gflops(models["dense"], batch_size) if model_gemm else None,
    }


def peak_memory(arch, variant, steps=3):
    """Peak resident memory (MiB) of this process after `steps` train steps."""
    model = variants(arch)[variant]
    x, y = batch()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def file_ratios(densities=(0.05, 0.1, 0.2)):
    """Zoo file bytes / dense `.weights.h5` bytes for ResNet20 (ERK, and popup)."""
    with tempfile.TemporaryDirectory() as folder:
        dense_path = Path(folder) / "dense.weights.h5"
        ARCHITECTURES["resnet20"]().save_weights(dense_path)
        dense_bytes = dense_path.stat().st_size
        ratios = {}
        for name, kwargs in [(f"erk_{d:g}", dict(density=d)) for d in densities] + [("popup_0.5x0.2", POPUP)]:
            model = keras_er.zoo.build("resnet20", "erk", pretrained=None, include_preprocessing=False, **kwargs)
            path = Path(folder) / f"{name}.npz"
            weights_io.save_weights(model, path)
            ratios[name] = path.stat().st_size / dense_bytes
    return {"dense_weights_h5_bytes": dense_bytes, "ratio": ratios}


def mask_sampling_seconds(archs=("resnet50", "vgg19"), repeats=3):
    """Seconds to compute densities and draw every mask, per arch and scheme."""
    result = {}
    for arch in archs:
        model = ARCHITECTURES[arch](input_shape=(224, 224, 3), classes=1000)
        shapes = [tuple(l.kernel.shape) for l in model.layers if hasattr(l, "kernel")]
        result[arch] = {"weights": int(sum(np.prod(s) for s in shapes))}
        for scheme in ("erk", "uniform", "balanced", "pyramidal"):
            best = float("inf")
            for _ in range(repeats):
                start = time.perf_counter()
                sample_masks(shapes, layer_densities(shapes, DENSITY, scheme), seed=0)
                best = min(best, time.perf_counter() - start)
            result[arch][scheme] = best
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--models", nargs="+", help="default: resnet20 vgg16 (with --dst: resnet20)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--memory", nargs=2, metavar=("ARCH", "VARIANT"), help="only measure peak memory of one variant, then exit"
    )
    parser.add_argument(
        "--static", action="store_true", help="also measure file ratios and mask sampling (backend-free)"
    )
    parser.add_argument(
        "--device-gemm", action="store_true", help="also measure the float32 GEMM rate of the default device"
    )
    parser.add_argument("--knob", help="only time the dense train step under this JSON setting (benchmarks.knobs)")
    parser.add_argument("--dst", action="store_true", help="only measure DST update overhead (benchmarks.dst_overhead)")
    parser.add_argument("--steps", type=int, default=300, help="--dst: steps per timed epoch")
    parser.add_argument("--update-every", type=int, default=100, help="--dst: steps between mask updates")
    parser.add_argument("--rounds", type=int, default=2, help="--dst: timed epochs per method (median)")
    parser.add_argument("--batch-size", type=int, default=BATCH, help="--dst: images per step")
    args = parser.parse_args(argv)
    if args.models is None:
        args.models = ["resnet20"] if args.dst else ["resnet20", "vgg16"]
    if args.dst:
        from benchmarks import dst_overhead

        result = {
            "dst_overhead": [
                dst_overhead.measure(arch, DENSITY, args.steps, args.update_every, args.batch_size, args.rounds)
                for arch in args.models
            ]
        }
    elif args.knob:
        from benchmarks import knobs

        result = {arch: knobs.measure(arch, json.loads(args.knob), args.repeats) for arch in args.models}
    elif args.memory:
        result = {"peak_rss_mib": peak_memory(*args.memory)}
    else:
        result = {"backend": keras.backend.backend(), "keras": keras.__version__}
        result["throughput"] = {}
        for arch in args.models:
            print(f"[{result['backend']}] timing {arch}", flush=True)
            result["throughput"][arch] = throughput(arch, args.repeats, model_gemm=not args.device_gemm)
        if args.device_gemm:
            result["device"] = str(keras.ops.convert_to_tensor(0.0).device)
            result["device_gemm_gflops"] = roofline.device_gemm_gflops()
        if args.static:
            result["file_ratio"] = file_ratios()
            result["mask_sampling_s"] = mask_sampling_seconds()
    Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
