"""`python -m benchmarks load`: seconds from a fresh process to a loaded zoo model, per backend.

    python -m benchmarks load                                   # every backend, 3 processes per way
    python -m benchmarks load --backends jax --repeats 5 --entry resnet20_erk_d0.1_cifar10

Every measurement is a new Python process (nothing imported, nothing compiled yet), timed from before
`import keras` to the loaded model, as a user's first `keras_er.zoo.load` in a script is. Two ways take
turns, so load on the machine shifts them alike:

- `zoo.load`: `keras_er.zoo.load(entry)`, which builds the weights it loads as placeholders
  (`keras_er.layers.placeholders`);
- `initializers run`: the same model built at random (every initializer drawn; on JAX each weight shape
  compiles its draw) and then given the same file - what `zoo.load` did before.

Each process also checks its model's logits against the entry's reference (outside the timing) and, on JAX,
counts XLA compiles. Writes load_time.json and load_time.md; a run for some backends keeps the others' rows.
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

WAYS = ("zoo.load", "initializers run")
TARGET_SECONDS = {"jax": 12.0}  # fresh-process zoo.load of the flagship on the 2-core CPU machine
FLAGSHIP = "resnet20_erk_d0.1_cifar10"
ROOT = Path(__file__).resolve().parent


def count_compiles():
    """On JAX, a dict whose `count` / `seconds` grow with every XLA backend compile from now on."""
    import jax

    counter = {"count": 0, "seconds": 0.0}

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            counter["count"] += 1
            counter["seconds"] += duration

    jax.monitoring.register_event_duration_secs_listener(listener)
    return counter


def load_with_initializers(entry_id):
    """The entry's model built at random (every initializer runs), then given the entry's weight file."""
    from keras_er import zoo
    from keras_er.zoo import builder
    from keras_er.zoo import registry
    from keras_er.zoo import weight_files
    from keras_er.zoo.weights_io import load_weights

    entry = next(e for e in registry.load_index() if e["id"] == entry_id)
    model = zoo.build(
        entry["arch"],
        entry["scheme"],
        1.0 if entry.get("prune") else entry["density"],
        pretrained=None,
        seed=registry.entry_seed(entry),
        popup=bool(entry.get("popup")),
        popup_density=entry.get("popup_density") or 0.5,
        input_shape=tuple(entry["input_shape"]),
        classes=entry["classes"],
        include_preprocessing=False,
    )
    load_weights(model, weight_files.weight_path(entry), sha256=entry["sha256"])
    return builder.with_preprocessing(model, *builder.input_normalization(entry))


def child(way, entry_id):
    """One fresh process's measurement: seconds to import keras and to build + load, logits error, compiles."""
    start = time.perf_counter()
    import keras
    import numpy as np

    compiles = count_compiles() if keras.backend.backend() == "jax" else None
    imported = time.perf_counter()
    import keras_er

    model = keras_er.zoo.load(entry_id) if way == "zoo.load" else load_with_initializers(entry_id)
    done = time.perf_counter()
    compiled = dict(compiles) if compiles else {"count": None, "seconds": None}  # the eager forward below compiles too
    entry = next(e for e in keras_er.zoo.registry.load_index() if e["id"] == entry_id)
    logits = keras.ops.convert_to_numpy(model(keras_er.zoo.reference_pixels(entry), training=False))
    error = float(np.abs(logits - np.array(entry["reference_logits"])).max())
    return {
        "seconds": done - start,
        "import_keras_s": imported - start,
        "build_and_load_s": done - imported,
        "max_logit_error": error,
        "xla_compiles": compiled["count"],
        "xla_compile_s": compiled["seconds"],
        "load_average": os.getloadavg()[0],
    }


def run_child(backend, way, entry_id, timeout=600):
    """`child(way, entry_id)` in a new process on `backend`."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT.parent)}
        command = [sys.executable, "-m", "benchmarks.load_time", "--child", way, "--entry", entry_id, "--out", str(out)]
        subprocess.run(command, env=env, check=True, timeout=timeout, capture_output=True)
        return json.loads(out.read_text())


def measure(backend, entry_id, repeats):
    """{way: {"runs": [...], "median_s": ...}} for `backend`, the ways taking turns `repeats` times."""
    runs = {way: [] for way in WAYS}
    for _ in range(repeats):
        for way in WAYS:
            runs[way].append(run_child(backend, way, entry_id))
    return {
        way: {"runs": values, "median_s": statistics.median(r["seconds"] for r in values)}
        for way, values in runs.items()
    }


def markdown(results):
    """Table: per backend, median seconds of each way, their ratio, JAX compiles, the target."""
    lines = [
        "| backend | entry | zoo.load s | initializers run s | zoo.load / initializers run | XLA compiles "
        "| max logit error | target |",
        "| --- | --- | ---: | ---: | ---: | --- | ---: | --- |",
    ]
    for backend, row in results["backends"].items():
        load, before = row["ways"]["zoo.load"], row["ways"]["initializers run"]
        compiles = " / ".join(str(w["runs"][0]["xla_compiles"]) for w in (load, before))
        error = max(r["max_logit_error"] for w in row["ways"].values() for r in w["runs"])
        lines.append(
            f"| {backend} | {row['entry']} | {load['median_s']:.2f} | {before['median_s']:.2f} "
            f"| {load['median_s'] / before['median_s']:.2f} | {compiles if backend == 'jax' else 'n/a'} "
            f"| {error:.1e} | {_target(backend, load['median_s'])} |"
        )
    lines += ["", caption(results), *_previous_code(results.get("previous_code"))]
    return "\n".join(lines) + "\n"


def _previous_code(record):
    """Lines for a recorded comparison with the code before a change (`{"note", "seconds": {backend: ...}}`)."""
    if not record:
        return []
    rows = [
        f"{backend} {statistics.median(times['before']):.1f} s -> {statistics.median(times['after']):.1f} s"
        for backend, times in record["seconds"].items()
    ]
    return ["", f"{record['note']}: {'; '.join(rows)} (medians)."]


def _target(backend, seconds):
    limit = TARGET_SECONDS.get(backend)
    if limit is None:
        return "no slower than initializers run"
    return f"≤ {limit:.0f} s: {'met' if seconds <= limit else 'MISSED'}"


def caption(results):
    m = results["machine"]
    loads = [r["load_average"] for row in results["backends"].values() for w in row["ways"].values() for r in w["runs"]]
    load = f" (1-minute load average {min(loads):.1f}-{max(loads):.1f})" if loads else ""
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores{load}. Seconds from a fresh process's start (before "
        f"`import keras`) to the loaded model, median of {results['repeats']} processes per way, the ways "
        "taking turns. "
        "'initializers run': the same model built at random and then given the same weight file (what "
        "`zoo.load` did before it built placeholder weights). XLA compiles: zoo.load / initializers run. "
        "Max logit error: against the entry's reference logits, over every process."
    )


def main(argv, out):
    """`python -m benchmarks load`: measure, merge with earlier backends in `out`/load_time.json, write json + md."""
    from benchmarks import roofline
    from keras_er import BACKENDS  # keras-free

    parser = argparse.ArgumentParser(prog="python -m benchmarks load", description=__doc__.splitlines()[0])
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--entry", default=FLAGSHIP)
    parser.add_argument("--repeats", type=int, default=3, help="fresh processes per way and backend (median)")
    parser.add_argument("--out", default=str(out))
    args = parser.parse_args(argv)
    path = Path(args.out) / "load_time.json"
    results = json.loads(path.read_text()) if path.exists() else {"backends": {}}
    results.update(machine=roofline.cpu_facts(), repeats=args.repeats, target_seconds=TARGET_SECONDS)
    results.pop("previous_code", None)  # a hand-recorded comparison belongs to the run it was made beside
    for backend in args.backends:
        print(f"[{backend}] {args.entry}", flush=True)
        results["backends"][backend] = {"entry": args.entry, "ways": measure(backend, args.entry, args.repeats)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1))
    path.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def _child_main():
    parser = argparse.ArgumentParser(description="one fresh-process measurement (run by `python -m benchmarks load`)")
    parser.add_argument("--child", required=True, choices=WAYS)
    parser.add_argument("--entry", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    Path(args.out).write_text(json.dumps(child(args.child, args.entry)))


if __name__ == "__main__":
    _child_main()
