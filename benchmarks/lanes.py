"""`python -m benchmarks lanes`: how a training queue should use the cores: a process per core, or one on all.

    python -m benchmarks lanes                                  # TensorFlow, 3 rounds of 40 timed steps
    python -m benchmarks lanes --backend torch --steps 20 --rounds 2

Two ways take turns (a round is one of each, so drift in the machine's speed shifts both alike):

- `lanes`: one process per core, each pinned to its core with one thread, all training at once, as
  `tools/queue.sh` runs its lanes;
- `one process`: one process on all the cores, with as many threads.

Each process trains the zoo's ResNet20 (ERK 0.1, built at random) on the training pipeline the zoo
recipe uses (`keras_er.data.ImageBatches`: shuffled, pad-4 crop + flip, raw pixels; random images), for
warm-up steps and then `--steps` timed steps. A way's speed is the images per second of all its processes
together. Writes lanes.json and lanes.md. Threads are set by the thread variables of TensorFlow, OpenMP
(torch) and XLA's CPU client (JAX); on Linux every process is pinned with `sched_setaffinity`.
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

WAYS = ("lanes", "one process")
ROOT = Path(__file__).resolve().parent
WARMUP_STEPS = 5


def thread_environment(threads):
    """Variables that hold a TensorFlow, torch or JAX process to `threads` compute threads."""
    return {
        "TF_NUM_INTRAOP_THREADS": str(threads),
        "TF_NUM_INTEROP_THREADS": "1",
        "OMP_NUM_THREADS": str(threads),
        "XLA_FLAGS": f"--xla_cpu_multi_thread_eigen={'true' if threads > 1 else 'false'}",
        "TF_CPP_MIN_LOG_LEVEL": "3",
    }


def train_rate(steps, batch_size=128):
    """Images per second of the zoo's ResNet20 over `steps` training steps after the warm-up (this process)."""
    import keras
    import numpy as np

    from benchmarks.common import compile_model
    from keras_er import zoo
    from keras_er.data import ImageBatches

    rng = np.random.default_rng(0)
    count = batch_size * (WARMUP_STEPS + steps)
    images = rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8)
    batches = ImageBatches(images, rng.integers(0, 10, count), batch_size=batch_size, shuffle=True, augment=True)
    model = compile_model(zoo.build("resnet20", "erk", 0.1, pretrained=None))
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter())

    model.fit(batches, epochs=1, verbose=0, callbacks=[Clock()])
    return batch_size * steps / (times[-1] - times[WARMUP_STEPS - 1])


def run_way(way, backend, cores, steps):
    """Start the way's processes together; the images per second of each."""
    groups = [[core] for core in cores] if way == "lanes" else [list(cores)]
    with tempfile.TemporaryDirectory() as folder:
        processes = []
        for index, group in enumerate(groups):
            out = Path(folder) / f"{index}.json"
            env = {**os.environ, **thread_environment(len(group)), "KERAS_BACKEND": backend}
            env["PYTHONPATH"] = os.pathsep.join([str(ROOT.parent), *filter(None, [env.get("PYTHONPATH")])])
            command = [sys.executable, "-m", "benchmarks.lanes", "--worker", "--steps", str(steps), "--out", str(out)]
            command += ["--cores", *map(str, group)]
            with open(out.with_suffix(".log"), "w") as log:  # the frameworks' start-up notices, kept for a failure
                processes.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), out))
        for process, out in processes:
            if process.wait():
                tail = out.with_suffix(".log").read_text()[-2000:]
                raise RuntimeError(f"a `{way}` worker failed with exit {process.returncode}:\n{tail}")
        return [json.loads(out.read_text())["images_per_second"] for _, out in processes]


def measure(backend="tensorflow", steps=40, rounds=3, cores=None):
    """Take turns between the ways; their processes' rates per round, the median totals and their ratio."""
    cores = sorted(cores or os.sched_getaffinity(0))
    if len(cores) < 2:
        raise ValueError(f"`cores` must name at least two cores to compare lanes; got {cores}.")
    per_round = {way: [] for way in WAYS}
    for _ in range(rounds):
        for way in WAYS:
            per_round[way].append(run_way(way, backend, cores, steps))
    totals = {way: statistics.median(sum(rates) for rates in per_round[way]) for way in WAYS}
    return {
        "backend": backend,
        "cores": cores,
        "steps": steps,
        "rounds": per_round,
        "images_per_second": totals,
        "lanes_over_one_process": totals["lanes"] / totals["one process"],
    }


def markdown(result):
    """The result as the page benchmarks/results/lanes.md."""
    cores = len(result["cores"])
    lines = [
        f"Training throughput on {cores} cores, {result['backend']}, ResNet20 ERK 0.1, batch 128, "
        f"{result['steps']} timed steps per process, median of {len(result['rounds']['lanes'])} rounds:",
        "",
        "| way | processes × threads | images/s (all processes) |",
        "| --- | --- | ---: |",
        f"| lanes | {cores} × 1 | {result['images_per_second']['lanes']:.0f} |",
        f"| one process | 1 × {cores} | {result['images_per_second']['one process']:.0f} |",
        "",
        f"Lanes give {result['lanes_over_one_process']:.2f}× the images per second of one process.",
    ]
    return "\n".join(lines) + "\n"


def main(argv, out_folder):
    parser = argparse.ArgumentParser(prog="python -m benchmarks lanes", description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="tensorflow", choices=("tensorflow", "torch", "jax"))
    parser.add_argument("--steps", type=int, default=40, help="timed steps per process")
    parser.add_argument("--rounds", type=int, default=3, help="turns of each way (the median is reported)")
    args = parser.parse_args(argv)
    for name in ("steps", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be a positive integer; got {getattr(args, name)}.")
    result = measure(args.backend, args.steps, args.rounds)
    out_folder = Path(out_folder)
    out_folder.mkdir(parents=True, exist_ok=True)
    (out_folder / "lanes.json").write_text(json.dumps(result, indent=1))
    (out_folder / "lanes.md").write_text(markdown(result))
    print(markdown(result), end="")
    return 0


def worker(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", action="store_true")
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--cores", type=int, nargs="+", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    os.sched_setaffinity(0, args.cores)  # before any framework starts its threads
    rate = train_rate(args.steps)
    Path(args.out).write_text(json.dumps({"images_per_second": rate, "cores": args.cores}))
    return 0


if __name__ == "__main__":
    sys.exit(worker(sys.argv[1:]))
