"""`python -m benchmarks export`: deployment file sizes and single-image latency, sparse against dense.

    python -m benchmarks export                    # the four models below, 200 latency rounds
    python -m benchmarks export --models flagship resnet20_dense --rounds 50

Every file is written by `keras_er.export` (so each is verified by its runtime first) in one fresh
TensorFlow-backend process, the backend that writes all three formats. Models: the flagship
(ResNet20 ERK 0.1), its dense twin (`resnet20_dense_cifar10`), VGG16 ERK 0.05, and VGG16 dense: its
zoo entry is not distributed, so the dense VGG16 is the same architecture built at random
(`keras_er.zoo.vgg16_dense(pretrained=None)`): the same tensors, sizes and operations as trained weights.

Latency: one image, each runtime on its defaults (LiteRT's interpreter with XNNPACK, onnxruntime's CPU
provider, the reloaded SavedModel's `serve`), the sparse and the dense model's calls taking turns, median
of `--rounds` after warm-up. Writes export.json and export.md.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
README = ROOT.parent / "docs" / "guides" / "deployment.md"  # the page whose export table is rewritten
README_MARKERS = ("<!-- export-table -->\n", "<!-- /export-table -->")
FORMATS = ("litert", "onnx", "tf_saved_model")
FILE_NAMES = {"litert": "model.tflite", "onnx": "model.onnx", "tf_saved_model": "saved_model"}
MODELS = {
    "flagship": ("resnet20_erk_d0.1_cifar10", "zoo entry"),
    "resnet20_dense": ("resnet20_dense_cifar10", "zoo entry"),
    "vgg16_erk_0.05": ("vgg16_erk_d0.05_cifar10", "zoo entry"),
    "vgg16_dense": ("vgg16_dense", "random weights: the dense VGG16 entry is not distributed"),
}
PAIRS = (("flagship", "resnet20_dense"), ("vgg16_erk_0.05", "vgg16_dense"))
TARGETS = {"flagship_litert_kib": 300, "flagship_litert_ratio": 0.3, "vgg16_litert_ratio": 0.15}


def build(name):
    import keras_er

    entry, _ = MODELS[name]
    if name == "vgg16_dense":
        return keras_er.zoo.vgg16_dense(pretrained=None)
    return keras_er.zoo.load(entry)


def sizes(name, folder):
    """Bytes of each format's file for model `name` (LiteRT also with sparse weights stored densely)."""
    import keras_er

    model = build(name)
    x = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3)).astype("float32")
    result = {}
    for format in FORMATS:
        path = Path(folder) / name / FILE_NAMES[format]
        report = keras_er.export(model, path, format=format, sample=x)
        result[format] = {"bytes": report["bytes"], "max_abs_diff": report["max_abs_diff"]}
    dense_stored = keras_er.export(model, Path(folder) / name / "dense.tflite", sample=x, sparse=False)
    result["litert_dense_storage"] = {"bytes": dense_stored["bytes"], "max_abs_diff": dense_stored["max_abs_diff"]}
    return result


def single_image_callers(format, path):
    """A function running one 1x32x32x3 image through `path` in `format`'s runtime."""
    image = np.random.default_rng(1).integers(0, 256, (1, 32, 32, 3)).astype("float32")
    if format == "litert":
        from ai_edge_litert.interpreter import Interpreter

        interpreter = Interpreter(model_path=str(path))
        interpreter.allocate_tensors()
        (detail,) = interpreter.get_input_details()
        output = interpreter.get_output_details()[0]["index"]

        def call():
            interpreter.set_tensor(detail["index"], image)
            interpreter.invoke()
            return interpreter.get_tensor(output)

        return call
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda: session.run(None, {name: image})
    import tensorflow as tf

    loaded = tf.saved_model.load(str(path))
    tensor = tf.constant(image)
    return lambda: loaded.serve(tensor).numpy()


def latency(folder, sparse, dense, rounds):
    """Median single-image ms of `sparse` and `dense` per format, their calls taking turns."""
    result = {}
    for format in FORMATS:
        calls = {
            name: single_image_callers(format, Path(folder) / name / FILE_NAMES[format]) for name in (sparse, dense)
        }
        times = {name: [] for name in calls}
        for call in calls.values():
            for _ in range(10):
                call()
        for _ in range(rounds):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        result[format] = {name: 1000 * statistics.median(values) for name, values in times.items()}
    return result


def measure(models, rounds):
    """Sizes of every model and latencies of every sparse/dense pair, in this (TensorFlow) process."""
    import keras

    if keras.backend.backend() != "tensorflow":
        raise SystemExit("the export benchmark runs on the tensorflow backend (it writes every format)")
    with tempfile.TemporaryDirectory() as folder:
        results = {"sizes": {name: sizes(name, folder) for name in models}, "latency_ms": {}}
        for sparse, dense in PAIRS:
            if sparse in models and dense in models:
                results["latency_ms"][f"{sparse} vs {dense}"] = latency(folder, sparse, dense, rounds)
    return results


def _kib(n):
    return f"{n / 1024:,.0f}"


def markdown(results):
    sizes = results["sizes"]
    lines = [
        "| model | weights | LiteRT KiB | LiteRT, zeros stored KiB | ONNX KiB | SavedModel KiB | max runtime error |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, size in sizes.items():
        error = max(value["max_abs_diff"] for value in size.values())
        lines.append(
            f"| {name} (`{MODELS[name][0]}`) | {MODELS[name][1]} | {_kib(size['litert']['bytes'])} "
            f"| {_kib(size['litert_dense_storage']['bytes'])} | {_kib(size['onnx']['bytes'])} "
            f"| {_kib(size['tf_saved_model']['bytes'])} | {error:.1e} |"
        )
    lines += [
        "",
        "| sparse / dense file size | LiteRT | ONNX | SavedModel | target (LiteRT) |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for sparse, dense in PAIRS:
        if sparse in sizes and dense in sizes:
            ratios = [sizes[sparse][f]["bytes"] / sizes[dense][f]["bytes"] for f in FORMATS]
            target = TARGETS["flagship_litert_ratio" if sparse == "flagship" else "vgg16_litert_ratio"]
            met = "met" if ratios[0] <= target else "NOT met"
            lines.append(
                f"| {sparse} / {dense} | " + " | ".join(f"{r:.3f}" for r in ratios) + f" | ≤ {target}: {met} |"
            )
    if "flagship" in sizes:
        kib = sizes["flagship"]["litert"]["bytes"] / 1024
        lines += [
            "",
            f"Flagship LiteRT file: {kib:.0f} KiB (target ≤ {TARGETS['flagship_litert_kib']} KiB: "
            f"{'met' if kib <= TARGETS['flagship_litert_kib'] else 'NOT met'}).",
        ]
    if results["latency_ms"]:
        lines += [
            "",
            "| single image, ms (median) | runtime | sparse | dense | sparse / dense |",
            "| --- | --- | ---: | ---: | ---: |",
        ]
        runtimes = {"litert": "LiteRT interpreter", "onnx": "onnxruntime", "tf_saved_model": "SavedModel (TF)"}
        for pair, formats in results["latency_ms"].items():
            sparse, dense = pair.split(" vs ")
            for format, ms in formats.items():
                ratio = ms[sparse] / ms[dense]
                lines.append(f"| {pair} | {runtimes[format]} | {ms[sparse]:.2f} | {ms[dense]:.2f} | {ratio:.2f} |")
    lines += ["", caption(results)]
    return "\n".join(lines) + "\n"


def caption(results):
    m = results.get("machine", {})
    versions = ", ".join(f"{p} {m[p]}" for p in ("keras", "tensorflow") if p in m)
    return (
        f"Machine: {m.get('cpu', 'n/a')}, {m.get('cores', 'n/a')} cores ({versions}; shared with other jobs). "
        "Every file written on the TensorFlow backend by `keras_er.export` and verified by its runtime "
        "(max runtime error: the largest |runtime - Keras| logit over 4 raw-pixel images, all formats). "
        "LiteRT: the TFLite converter's sparse encoding; 'zeros stored': the same model with `sparse=False`. "
        "ONNX: sparse initializers (12 bytes per nonzero: value and int64 index); SavedModel stores its "
        "variables densely. Latency: none of the three runtimes has sparse kernels for these layers (LiteRT "
        "and onnxruntime expand the sparse tensors to dense ones when they load the file), so a sparse model "
        "is not faster: the sparse/dense latency ratios are about 1 by construction, and differences are noise."
    )


def main(argv, results_dir):
    parser = argparse.ArgumentParser(prog="python -m benchmarks export", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--rounds", type=int, default=200, help="timed single-image calls per model and runtime")
    parser.add_argument("--out", default=str(results_dir))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        result_file = Path(folder) / "export.json"
        env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT.parent)}
        command = [
            sys.executable,
            "-m",
            "benchmarks.export",
            "--worker",
            str(result_file),
            "--rounds",
            str(args.rounds),
        ]
        subprocess.run([*command, "--models", *args.models], env=env, check=True)
        results = json.loads(result_file.read_text())
    from benchmarks.common import machine

    results["machine"] = machine()
    text = markdown(results)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "export.json").write_text(json.dumps(results, indent=1))
    (out / "export.md").write_text(text)
    if out.resolve() == Path(results_dir).resolve():
        write_readme_table(README, text)
    print(text)


def write_readme_table(path, table):
    """Replace the text between the export-table markers of `path` with `table`."""
    start, end = README_MARKERS
    text = path.read_text()
    head, rest = text.split(start, 1)
    path.write_text(head + start + table + end + rest.split(end, 1)[1])


def _worker(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", required=True)
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--models", nargs="+", required=True)
    args = parser.parse_args(argv)
    Path(args.worker).write_text(json.dumps(measure(args.models, args.rounds), indent=1))


if __name__ == "__main__":
    _worker(sys.argv[1:])
