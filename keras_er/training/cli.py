"""`keras-er` command line: train, evaluate, export, list.

    keras-er train --model resnet20 --scheme erk --density 0.1 --epochs 30 --out runs/r20
    keras-er train ... --out runs/r20 --resume      # continue a stopped run
    keras-er evaluate --run runs/r20                # or --zoo ID
    keras-er export runs/r20                        # -> zoo/<id>/ + index.json
    keras-er list
"""

import argparse
import json
import os
import re
import shutil
import shlex
import sys
import time
from pathlib import Path

BACKENDS = ("tensorflow", "torch", "jax")
SCHEMES = ("erk", "uniform", "balanced", "pyramidal", "dense")


def parser():
    from keras_er.data.specs import DATASET_SPECS
    from keras_er.models import ARCHITECTURES

    root = argparse.ArgumentParser(prog="keras-er", description=__doc__.split("\n")[0])
    root.add_argument("--backend", choices=BACKENDS, help="Keras backend (sets KERAS_BACKEND)")
    commands = root.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train an ER-sparse model")
    train.add_argument("--model", required=True, choices=sorted(ARCHITECTURES))
    train.add_argument("--scheme", default="erk", choices=SCHEMES)
    train.add_argument("--density", type=float, default=0.1)
    train.add_argument("--popup", action="store_true", help="train popup scores only")
    train.add_argument("--popup-density", type=float, default=0.5)
    train.add_argument("--dataset", default="cifar10", choices=sorted(DATASET_SPECS))
    train.add_argument("--epochs", type=int, default=30)
    train.add_argument("--batch-size", type=int, default=128)
    train.add_argument("--lr", type=float, default=0.1)
    train.add_argument("--warmup-epochs", type=int, help="default: 1 (0 for a 1-epoch run)")
    train.add_argument("--weight-decay", type=float, default=5e-4)
    train.add_argument("--label-smoothing", type=float, default=0.0)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--limit", type=int, help="use only the first N training images")
    train.add_argument("--out", required=True, help="run folder")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")

    evaluate = commands.add_parser("evaluate", help="top-1/top-5 and per-class accuracy")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--zoo", metavar="ID", help="a zoo entry id")
    source.add_argument("--run", metavar="DIR", help="a run folder from `train`")
    evaluate.add_argument("--limit", type=int, help="use only the first N test images")
    evaluate.add_argument(
        "--record", action="store_true",
        help="with --zoo: record this backend's accuracy in the zoo index and card",
    )

    export = commands.add_parser("export", help="write a run as a zoo entry")
    export.add_argument("run", metavar="DIR")
    export.add_argument("--root", help="zoo folder (default: the package's zoo/)")
    export.add_argument("--limit", type=int, help="evaluate on the first N test images")

    listing = commands.add_parser("list", help="published zoo weights")
    listing.add_argument("--markdown", action="store_true", help="print the README's zoo table")
    listing.add_argument("--plot", metavar="PNG", help="save top-1 vs density per scheme")

    bench = commands.add_parser(
        "bench", help="run benchmarks/ (source checkout): speed, file size, mask sampling",
        description="Arguments after `bench` go to `python -m benchmarks` (see its --help).",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return root


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv  # recorded as the command that reproduces a run
    if args.backend:
        _switch_backend(args.backend, argv)
    from keras_er.files import FolderLockedError

    commands = {"train": train, "evaluate": evaluate, "export": export, "list": list_zoo,
                "bench": run_benchmarks}
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        hint = " (continue it with the same command and --resume)" if args.command == "train" else ""
        print(f"keras-er {args.command}: interrupted{hint}.", file=sys.stderr)
        return 130
    except (ValueError, TypeError, OSError, FolderLockedError) as error:
        # One line, no traceback: bad settings, missing/corrupt/unwritable files.
        message = str(error).replace("\n", " ") or type(error).__name__
        print(f"keras-er {args.command}: error: {message}", file=sys.stderr)
        return 2


def _switch_backend(backend, argv):
    import keras

    if keras.backend.backend() == backend:
        return
    # keras is imported already (with keras_er), so start again with the variable set.
    env = {**os.environ, "KERAS_BACKEND": backend}
    os.execvpe(sys.executable, [sys.executable, "-m", "keras_er", *argv], env)


def _build(config, pretrained=None):
    from keras_er import zoo
    from keras_er.data.specs import get_spec

    spec = get_spec(config["dataset"])
    return zoo.build(
        config["model"], config["scheme"], config["density"], pretrained=pretrained,
        seed=config["seed"], popup=config["popup"], popup_density=config["popup_density"],
        input_shape=spec.shape, classes=spec.classes,
    )


def train(args):
    import keras
    from keras_er import data
    from keras_er import training
    from keras_er.files import folder_lock
    from keras_er.files import write_text_atomic
    from keras_er.training.checkpoint import save_weights_atomic
    from keras_er.training.fit import check_run_folder

    out = Path(args.out)
    config = {
        "model": args.model, "scheme": args.scheme, "density": args.density,
        "popup": args.popup, "popup_density": args.popup_density,
        "dataset": args.dataset, "seed": args.seed, "limit": args.limit,
    }
    from keras_er.masks.schemes import validate_density

    if args.scheme != "dense":
        validate_density(args.density)  # before the run folder is created
    if args.popup and args.scheme == "dense":
        raise ValueError("--popup needs a sparse --scheme (erk, uniform, ...): popup selects "
                         "weights inside an ER mask, and a dense model has none.")
    recipe = training.Recipe(
        epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.lr,
        weight_decay=args.weight_decay, seed=args.seed, label_smoothing=args.label_smoothing,
        warmup_epochs=min(1, args.epochs - 1) if args.warmup_epochs is None else args.warmup_epochs,
    )
    _check_config(out, config, args.resume)  # before the lock creates the folder
    with folder_lock(out, wait=False, purpose="training"):
        _check_config(out, config, args.resume)  # again, now that no one else writes
        check_run_folder(out, recipe, args.resume)  # before anything is written
        # Masks are seeded on their own; this seeds the kernel initialisers, so the
        # command in the card rebuilds the same initial model (on the same backend).
        keras.utils.set_random_seed(args.seed)
        model = _build(config)
        train_data = data.load(args.dataset, "train", args.batch_size, seed=args.seed,
                               limit=args.limit)
        test_data = data.load(args.dataset, "test", 256)
        if not args.resume:
            config.update(command="keras-er " + shlex.join(args.argv),
                          backend=keras.backend.backend())
            write_text_atomic(out / "config.json", json.dumps(config, indent=1))
        start = time.perf_counter()
        history = training.fit(
            model, train_data, recipe, validation=test_data, out_dir=out, resume=args.resume,
        )
        save_weights_atomic(model, out / "model.weights.h5")
        summary = {
            "backend": keras.backend.backend(),
            "wall_seconds_this_session": time.perf_counter() - start,
            "final": {k: v[-1] for k, v in history.history.items()},
        }
        write_text_atomic(out / "summary.json", json.dumps(summary, indent=1))
        _plot_curves(out)
    print(json.dumps(summary["final"], indent=1))
    return 0


def _check_config(out, config, resume):
    path = out / "config.json"
    if not resume:
        if path.exists():
            raise ValueError(f"{out} already holds a run (config.json); pass --resume to continue "
                             "it, or choose another --out.")
        return
    if not path.is_file():
        raise ValueError(f"--resume: {out} holds no run to continue (no config.json).")
    from keras_er.training.fit import describe_changes

    details = describe_changes(json.loads(path.read_text()), config)
    if details:
        raise ValueError(f"--resume with other settings than the run in {out}: {details}.")


def _plot_curves(out):
    try:
        import matplotlib
        import matplotlib.ticker

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no learning-curve PNG.", file=sys.stderr)
        return
    import csv

    rows = list(csv.DictReader(open(out / "log.csv")))
    epochs = [int(r["epoch"]) + 1 for r in rows]
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, axis in (("loss", left), ("accuracy", right)):
        axis.plot(epochs, [float(r[key]) for r in rows], label="train")
        if "val_" + key in rows[0]:
            axis.plot(epochs, [float(r["val_" + key]) for r in rows], label="test")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        axis.set_title(key)
        axis.legend()
    figure.tight_layout()
    figure.savefig(out / "curves.png", dpi=100)


def accuracy_report(model, dataset, limit=None):
    """Top-1, top-5 and per-class accuracy of `model` on a test split."""
    import numpy as np
    import keras
    from keras_er import data

    x, y = data.load(dataset, "test", as_numpy=True, limit=limit)
    logits = keras.ops.convert_to_numpy(model.predict(x, batch_size=256, verbose=0))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    predicted = top5[:, 0]
    classes = logits.shape[1]
    return {
        "images": int(len(y)),
        "top1": float(np.mean(predicted == y)),
        "top5": float(np.mean((top5 == y[:, None]).any(axis=1))),
        "per_class": [float(np.mean(predicted[y == c] == c)) for c in range(classes) if (y == c).any()],
        # The subset the zoo tests re-check on every backend in CI.
        "top1_first1000": float(np.mean(predicted[:1000] == y[:1000])),
    }


def evaluate(args):
    from keras_er.zoo import registry

    if args.record and (not args.zoo or args.limit):
        raise ValueError("--record needs --zoo and the full test set (no --limit).")
    if args.zoo:
        from keras_er import zoo

        entry = next((e for e in registry.load_index() if e["id"] == args.zoo), None)
        model = zoo.load(args.zoo)  # names the published entries if there is none
        config = {"dataset": entry["dataset"]}
    else:
        config, model = _load_run(Path(args.run))
    report = accuracy_report(model, config["dataset"], args.limit)
    if args.record:
        _record_accuracy(entry, report)
    print(json.dumps(report, indent=1))
    return 0


def _record_accuracy(entry, report):
    import keras
    from keras_er.files import folder_lock
    from keras_er.files import write_text_atomic
    from keras_er.zoo import registry

    backend = keras.backend.backend()

    def record(current):
        if current["sha256"] != entry["sha256"]:
            raise ValueError(f"{entry['id']} was re-exported while it was evaluated; "
                             "evaluate it again to record its accuracy.")
        current.setdefault("top1", {})[backend] = report["top1"]
        current.setdefault("top1_first1000", {})[backend] = report["top1_first1000"]

    with folder_lock(registry.zoo_root(), purpose="being written"):
        updated = registry.update_entry(entry["id"], record)
        card = registry.zoo_root() / entry["id"] / "card.md"
        if card.is_file():
            line = f"- top-1 (full test set): {updated['top1']}"
            write_text_atomic(card, re.sub(r"^- top-1.*$", line, card.read_text(), count=1, flags=re.M))


def _load_run(run):
    if not (run / "config.json").is_file() or not (run / "model.weights.h5").is_file():
        raise FileNotFoundError(f"{run} is not a finished run (config.json + model.weights.h5).")
    config = json.loads((run / "config.json").read_text())
    model = _build(config)
    model.load_weights(str(run / "model.weights.h5"))
    return config, model


def export(args):
    import keras
    from keras_er import zoo
    from keras_er.data.specs import get_spec
    from keras_er.data import load_arrays
    from keras_er.files import atomic_write

    run = Path(args.run)
    config, model = _load_run(run)
    report = accuracy_report(model, config["dataset"], args.limit)
    recipe = json.loads((run / "recipe.json").read_text())
    spec = get_spec(config["dataset"])
    recipe["input_normalization"] = {
        "mean": list(spec.mean), "std": list(spec.std), "units": "pixels 0-255",
    }
    log = (run / "log.csv").read_text().strip().splitlines()
    epochs, epoch_seconds = _epoch_stats(log)
    train_seconds = epochs * epoch_seconds
    command = re.sub(r"--out \S+", f"--out runs/{run.name}", config.get("command", ""))
    curves = run / "curves.png"
    notes = (
        f"## Reproduce\n\n```bash\n{command}\n```\n\n"
        f"Trained on the {config.get('backend')} backend; {epochs} epochs; "
        f"top-1 {report['top1']:.4f} on {report['images']} test images "
        f"({keras.backend.backend()} backend); training time {train_seconds:.0f} s "
        f"({epochs} epochs x the median epoch, {epoch_seconds:.0f} s; the median leaves out "
        "epochs slowed by a pause or by another job for part of the run)."
        + ("\n\n![learning curves](curves.png)" if curves.is_file() else "")
    )
    backend = keras.backend.backend()
    # Records hold only what was measured: a --limit evaluation is not a top-1.
    test_size = len(load_arrays(config["dataset"], "test")[1])
    full = args.limit is None or report["images"] == test_size
    first1000 = report["images"] >= min(1000, test_size)
    if not full:
        notes += (f"\n\nNot a published accuracy: evaluated on the first {report['images']} "
                  "test images only (export --limit).")
    entry = zoo.export(
        model, config["model"], config["scheme"], config["density"],
        dataset=config["dataset"], seed=config["seed"], popup=config["popup"],
        popup_density=config["popup_density"] if config["popup"] else None,
        top1={backend: report["top1"]} if full else {}, recipe=recipe, notes=notes,
        train_seconds=round(train_seconds, 1),
        top1_first1000={backend: report["top1_first1000"]} if first1000 else {},
        root=args.root,
    )
    if curves.is_file():
        with atomic_write(zoo.registry.zoo_root(args.root) / entry["id"] / "curves.png") as tmp:
            shutil.copyfile(curves, tmp)
    print(f"exported {entry['id']} (sha256 {entry['sha256'][:12]}, top-1 {report['top1']:.4f})")
    return 0


def run_benchmarks(args):
    checkout = Path(__file__).resolve().parents[2]
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        raise FileNotFoundError(
            "`keras-er bench` needs the source checkout (benchmarks/ is not part of the "
            "installed package): clone the repository and install it with `pip install -e .`."
        )
    import subprocess

    command = [sys.executable, "-m", "benchmarks", *args.bench_args]
    return subprocess.run(command, cwd=checkout).returncode


def _epoch_stats(log_lines):
    """Number of epochs and the median epoch wall time from a run's log.csv."""
    import statistics

    header = log_lines[0].split(",")
    column = header.index("epoch_seconds")
    seconds = [float(line.split(",")[column]) for line in log_lines[1:]]
    return len(seconds), statistics.median(seconds)


def list_zoo(args):
    from keras_er import zoo
    from keras_er.zoo import report

    if args.markdown:
        print(report.markdown_table(), end="")
    elif not zoo.available_weights(print_fn=print):
        print("No zoo weights are published yet.")
    if args.plot:
        report.plot_accuracy_vs_density(args.plot)
        print(f"wrote {args.plot}")
    return 0
