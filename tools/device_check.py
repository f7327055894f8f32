"""One prepared check of keras_er on a lent GPU (or, tiny, on this CPU).

    python -m tools.device_check prepare          # here: .device/ data + CPU predictions
    KERAS_BACKEND=torch python -m tools.device_check run --out torch.json
    python -m tools.device_check report OUT_DIR   # device_check.{json,md}; exit 1 on a failure

`tools/device_check.sh` drives the three steps (and installs the carried
wheels on the GPU machine). Per backend, `run` confirms where the model runs,
then: every zoo entry's logits on its reference batch against the stored ones
(at full float32 precision, and at the framework's default, which may use TF32
on a GPU); top-1 on the first test images against the CPU's predictions from
`prepare`; the dataset-free layer/mask/popup/sparsify tests; and dense, masked
and popup train/inference images/s in float32 and mixed bfloat16. It rewrites
its JSON after every section, so a run cut off by a time limit still reports
what it measured.
"""

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
LOGIT_TOLERANCE = 1e-4
DATASET = "cifar10"
DATASET_FREE_TESTS = ("tests/layers", "tests/masks", "tests/test_conversion.py", "tests/masks/test_model.py")


def zoo_entries():
    """The entries whose weights are here: shipped ones, and external ones (e.g. the dense VGG16) only if cached."""
    from keras_er.zoo import registry
    from keras_er.zoo import weight_files

    return [entry for entry in registry.load_index() if weight_files.available_offline(entry)]


def load_entry(entry):
    from keras_er import zoo

    return zoo.load(entry["id"], include_preprocessing=False)  # fed normalised images


def predictions(model, x, batch_size=500):
    import keras

    logits = [
        keras.ops.convert_to_numpy(model(x[i : i + batch_size], training=False)) for i in range(0, len(x), batch_size)
    ]
    return np.concatenate(logits).argmax(axis=1)


def test_images(data_dir, images):
    from keras_er import data

    if data_dir is not None and (Path(data_dir) / f"{DATASET}.npz").is_file():
        os.environ["KERAS_ER_DATA"] = str(data_dir)
    return data.load(DATASET, "test", as_numpy=True, limit=images, normalize=True)  # for the bare networks


# --- prepare (on this machine) ------------------------------------------------------


def prepare(args):
    """The first `--images` test images, and every entry's CPU predictions on them."""
    import keras

    from keras_er import data

    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    x, y = data.load_arrays(DATASET, "test")
    x, y = x[: args.images], y[: args.images]
    subset = folder / f"{DATASET}.npz"
    temporary = subset.with_suffix(".tmp.npz")
    np.savez_compressed(temporary, x_test=x, y_test=y, x_train=x[:0], y_train=y[:0])
    temporary.replace(subset)
    x_normalised, _ = test_images(folder, args.images)
    expected = {"backend": keras.backend.backend(), "images": int(len(y)), "entries": {}}
    for entry in zoo_entries():
        predicted = predictions(load_entry(entry), x_normalised)
        expected["entries"][entry["id"]] = {
            "top1": float(np.mean(predicted == y)),
            "predictions": predicted.tolist(),
        }
        print(f"prepared {entry['id']}: top-1 {expected['entries'][entry['id']]['top1']:.4f}")
    (folder / "expected.json").write_text(json.dumps(expected))
    return 0


# --- run (one backend per process) -------------------------------------------------


def device_info():
    """Where this backend puts a variable, and whether that is a GPU."""
    import keras

    backend = keras.backend.backend()
    value = keras.Variable(np.zeros(2, "float32")).value
    if backend == "torch":
        import torch

        device = str(value.device)
        name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        version = torch.__version__
    elif backend == "jax":
        import jax

        device = str(next(iter(value.devices())))
        name, version = jax.devices()[0].device_kind, jax.__version__
    else:
        import tensorflow as tf

        device, name, version = value.device, "cpu", tf.__version__
    on_gpu = any(word in device.lower() for word in ("cuda", "gpu"))
    return {
        "backend": backend,
        "device": device,
        "device_name": name,
        "on_gpu": on_gpu,
        "framework": version,
        "keras": keras.__version__,
    }


@contextlib.contextmanager
def full_float32():
    """Turn off TF32 (GPU matmuls/convs in float32 at reduced mantissa) while inside."""
    import keras

    backend = keras.backend.backend()
    if backend == "torch":
        import torch

        saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        try:
            yield
        finally:
            torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
    elif backend == "jax":
        import jax

        with jax.default_matmul_precision("highest"):
            yield
    else:
        yield


def check_entries(entries, data_dir, images):
    """Per entry, built once: reference-batch logits and top-1 against the CPU's predictions.

    Returns `{"logits": {id: row}, "accuracy": {id: row}}`; logits are compared
    with the stored ones at full float32 and at the default precision, top-1 is
    measured at full float32 on the first `images` test images.
    """
    import keras

    from keras_er import zoo

    x, y = test_images(data_dir, images)
    expected_file = Path(data_dir) / "expected.json" if data_dir else None
    expected = json.loads(expected_file.read_text()) if expected_file and expected_file.is_file() else {}
    logit_rows, accuracy_rows = {}, {}
    for entry in entries:
        model = load_entry(entry)
        batch = zoo.reference_batch(tuple(entry["input_shape"]))
        stored = np.array(entry["reference_logits"])
        default = keras.ops.convert_to_numpy(model(batch, training=False))
        with full_float32():
            logits = keras.ops.convert_to_numpy(model(batch, training=False))
            predicted = predictions(model, x)
        difference = float(np.abs(logits - stored).max())
        logit_rows[entry["id"]] = {
            "logits": logits.tolist(),
            "max_diff_full_float32": difference,
            "max_diff_default_precision": float(np.abs(default - stored).max()),
            "ok": difference < LOGIT_TOLERANCE,
        }
        row = {"images": int(len(y)), "top1": float(np.mean(predicted == y))}
        reference = expected.get("entries", {}).get(entry["id"])
        if reference is not None and len(reference["predictions"]) >= len(y):
            cpu = np.array(reference["predictions"][: len(y)])
            row["cpu_top1"] = float(np.mean(cpu == y))
            row["cpu_backend"] = expected["backend"]
            row["predictions_differing_from_cpu"] = int(np.sum(cpu != predicted))
            row["ok"] = row["predictions_differing_from_cpu"] == 0
        accuracy_rows[entry["id"]] = row
    return {"logits": logit_rows, "accuracy": accuracy_rows}


def run_dataset_free_tests(targets, timeout):
    """pytest over the layer/mask/popup/sparsify tests, with its pass/fail counts."""
    report = Path(os.environ.get("TMPDIR", "/tmp")) / f"device_check_{os.getpid()}.xml"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-m",
        "not slow",
        "-p",
        "no:cacheprovider",
        f"--junitxml={report}",
        *targets,
    ]
    start = time.perf_counter()
    try:
        process = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        tail, exit_code = process.stdout[-2000:], process.returncode
    except subprocess.TimeoutExpired as error:
        tail, exit_code = f"timed out after {timeout} s\n{(error.stdout or b'')[-1500:]!r}", None
    result = {"exit_code": exit_code, "seconds": round(time.perf_counter() - start, 1), "tail": tail}
    if report.is_file():
        suite = ElementTree.parse(report).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        result.update(counts)
        report.unlink()
    result["ok"] = exit_code == 0
    return result


def measure_speed(models, batch_size, repeats, warmup):
    """Train and inference images/s of dense, masked and popup models, float32 and mixed bf16."""
    import keras

    from benchmarks import worker

    rows = []
    for precision in ("float32", "mixed_bfloat16"):
        for arch in models:
            keras.config.set_dtype_policy(precision)
            row = {"arch": arch, "precision": precision, "batch": batch_size}
            try:
                row.update(worker.throughput(arch, repeats, batch_size=batch_size, warmup=warmup))
            except Exception as error:  # one failing setting must not lose the others
                row["error"] = f"{type(error).__name__}: {error}"[:500]
            finally:
                keras.config.set_dtype_policy("float32")
            rows.append(row)
            yield rows


def run(args):
    result = {
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_mode": args.cpu,
        "settings": vars(args) | {"handler": None},
    }
    out = Path(args.out)

    def save():  # atomically: a time limit may kill this process at any moment
        temporary = out.with_suffix(".tmp")
        temporary.write_text(json.dumps(result, indent=1, default=str))
        os.replace(temporary, out)

    result["device"] = device_info()
    save()
    if not args.cpu and not result["device"]["on_gpu"]:
        result["error"] = f"expected a GPU, but variables live on {result['device']['device']}"
        save()
        print(result["error"], file=sys.stderr)
        return 1
    entries = [entry for entry in zoo_entries() if entry["arch"] in args.models]  # --models: which archs
    for name, measure in (
        ("zoo", lambda: check_entries(entries, args.data_dir, args.images)),
        ("tests", lambda: {"tests": run_dataset_free_tests(args.tests, args.test_timeout)} if args.tests else {}),
    ):
        start = time.perf_counter()
        result.update(measure())
        print(f"[{result['device']['backend']}] {name}: {time.perf_counter() - start:.0f} s", flush=True)
        save()
    for rows in measure_speed(args.models, args.batch, args.repeats, args.warmup):
        result["speed"] = rows
        print(f"[{result['device']['backend']}] speed: {rows[-1]['arch']} {rows[-1]['precision']}", flush=True)
        save()
    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save()
    return 0


# --- report (all backends) ---------------------------------------------------------


def report(args):
    folder = Path(args.folder)
    runs = {
        name: {"error": "wrote no result (crashed before its first section)"}
        for name in getattr(args, "expect", None) or ()
    }
    for path in sorted(folder.glob("*.json")):
        if path.name != "device_check.json":
            try:
                runs[path.stem] = json.loads(path.read_text())
            except ValueError as error:
                runs[path.stem] = {"error": f"unreadable result {path.name} ({error})"}
    summary = {"backends": runs, "cross_backend_max_logit_diff": cross_backend_difference(runs)}
    summary["failures"] = failures(runs, summary["cross_backend_max_logit_diff"])
    (folder / "device_check.json").write_text(json.dumps(summary, indent=1))
    text = markdown(summary)
    (folder / "device_check.md").write_text(text)
    print(text)
    return 1 if summary["failures"] else 0


def cross_backend_difference(runs):
    """Largest logit difference between any two backends, over every entry (full float32)."""
    largest = 0.0
    names = [name for name in runs if "logits" in runs[name]]
    for i, first in enumerate(names):
        for second in names[i + 1 :]:
            for entry_id, row in runs[first]["logits"].items():
                other = runs[second]["logits"].get(entry_id)
                if other is not None:
                    difference = np.abs(np.array(row["logits"]) - np.array(other["logits"])).max()
                    largest = max(largest, float(difference))
    return largest


def failures(runs, cross_difference):
    found = []
    for name, result in runs.items():
        if "error" in result:
            found.append(f"{name}: {result['error']}")
        if "finished" not in result:
            done = [section for section in ("logits", "tests", "speed") if section in result]
            found.append(f"{name}: did not finish (got as far as: {', '.join(done) or 'device'})")
        for section in ("logits", "accuracy"):
            for entry_id, row in (result.get(section) or {}).items():
                if row.get("ok") is False:
                    found.append(f"{name}: {section} of {entry_id}")
        if (result.get("tests") or {}).get("ok") is False:
            found.append(f"{name}: dataset-free tests")
        found += [
            f"{name}: speed of {row['arch']} {row['precision']}: {row['error']}"
            for row in result.get("speed", [])
            if "error" in row
        ]
    if cross_difference >= LOGIT_TOLERANCE:
        found.append(f"cross-backend logit difference {cross_difference:.2e}")
    if not runs:
        found.append("no backend reported")
    return found


def markdown(summary):
    lines = []
    for name, result in summary["backends"].items():
        device = result.get("device", {})
        lines.append(
            f"- **{name}** on {device.get('device_name')} ({device.get('device')}), "
            f"framework {device.get('framework')}, Keras {device.get('keras')}, "
            f"started {result.get('started')}"
        )
    lines += [
        "",
        "| check | " + " | ".join(summary["backends"]) + " |",
        "| --- |" + " --- |" * len(summary["backends"]),
    ]
    lines += [
        "| " + label + " | " + " | ".join(cell(result) for result in summary["backends"].values()) + " |"
        for label, cell in CHECK_ROWS
    ]
    lines += [
        "",
        f"Largest logit difference between backends (full float32): "
        f"{summary['cross_backend_max_logit_diff']:.2e} (bound {LOGIT_TOLERANCE:g}).",
    ]
    speed_rows = [(name, row) for name, result in summary["backends"].items() for row in result.get("speed", [])]
    if speed_rows:
        lines += [
            "",
            "| backend | model | precision | dense train img/s | masked / dense | "
            "popup / dense | dense inference img/s | masked / dense inference |",
            "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name, row in speed_rows:
            if "error" in row:
                lines.append(f"| {name} | {row['arch']} | {row['precision']} | {row['error'][:80]} |" + " |" * 4)
                continue
            train, ratio = row["train_images_per_s"], row["train_ratio"]
            lines.append(
                f"| {name} | {row['arch']} | {row['precision']} | {train['dense']:.0f} | "
                f"{ratio['masked']:.2f} | {ratio['popup']:.2f} | "
                f"{row['infer_images_per_s']['dense']:.0f} | {row['infer_ratio']['masked']:.2f} |"
            )
    lines += ["", "Failures: " + ("; ".join(summary["failures"]) or "none") + "."]
    return "\n".join(lines) + "\n"


def _logit_cell(result):
    rows = result.get("logits") or {}
    if not rows:
        return "not run"
    worst = max(row["max_diff_full_float32"] for row in rows.values())
    default = max(row["max_diff_default_precision"] for row in rows.values())
    passed = sum(row["ok"] for row in rows.values())
    return f"{passed}/{len(rows)} entries, max {worst:.1e} (default precision {default:.1e})"


def _accuracy_cell(result):
    rows = result.get("accuracy") or {}
    if not rows:
        return "not run"
    compared = [row for row in rows.values() if "ok" in row]
    images = next(iter(rows.values()))["images"]
    differing = sum(row["predictions_differing_from_cpu"] for row in compared)
    return f"{len(rows)} entries on {images} images; " + (
        f"{differing} predictions differ from the CPU's" if compared else "no CPU predictions to compare"
    )


def _tests_cell(result):
    tests = result.get("tests")
    if not tests:
        return "not run"
    if "tests" not in tests:
        return f"exit {tests['exit_code']}"
    failed = tests["failures"] + tests["errors"]
    return f"{tests['passed']} passed, {failed} failed ({tests['seconds']:.0f} s)"


CHECK_ROWS = (
    ("device", lambda r: "GPU" if r.get("device", {}).get("on_gpu") else "CPU"),
    ("zoo logits vs stored (< 1e-4)", _logit_cell),
    ("top-1 vs the CPU", _accuracy_cell),
    ("dataset-free tests", _tests_cell),
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare_parser = commands.add_parser("prepare", help="write the data subset and CPU predictions")
    prepare_parser.add_argument("--dir", default=str(ROOT / ".device"))
    prepare_parser.add_argument("--images", type=int, default=2000)
    prepare_parser.set_defaults(handler=prepare)
    run_parser = commands.add_parser("run", help="every check on this process's backend")
    run_parser.add_argument("--out", required=True)
    run_parser.add_argument("--data-dir", help="a folder from `prepare` (default: $KERAS_ER_DATA)")
    run_parser.add_argument("--images", type=int, default=2000)
    run_parser.add_argument("--models", nargs="+", default=["resnet20", "vgg16"])
    run_parser.add_argument("--batch", type=int, default=128)
    run_parser.add_argument("--repeats", type=int, default=20)
    run_parser.add_argument("--warmup", type=int, default=3)
    run_parser.add_argument("--test-timeout", type=int, default=150)
    run_parser.add_argument(
        "--tests", nargs="*", default=list(DATASET_FREE_TESTS), help="pytest targets (none: skip the section)"
    )
    run_parser.add_argument("--cpu", action="store_true", help="do not require a GPU")
    run_parser.set_defaults(handler=run)
    report_parser = commands.add_parser("report", help="merge the per-backend JSONs")
    report_parser.add_argument("folder")
    report_parser.add_argument("--expect", nargs="*", help="backends that must have reported")
    report_parser.set_defaults(handler=report)
    args = parser.parse_args(argv)
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
