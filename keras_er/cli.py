"""`keras-er` command line: parses the arguments and hands each command to its module.

keras-er train --model resnet20 --scheme erk --density 0.1 --epochs 30 --out runs/r20
keras-er train ... --out runs/r20 --resume      # continue a stopped run
keras-er evaluate --run runs/r20                # or --zoo ID
keras-er export runs/r20                        # -> zoo/<id>/ + index.json
keras-er list
"""

import argparse
import os
import subprocess
import sys
from pathlib import Path

from keras_er import BACKENDS

CONV_PATHS = ("auto", "native", "matmul")  # keras_er.layers.conv_paths.MODES, without importing keras here


def parser():
    """The argument parser; choices come from the registries (models, schemes, datasets)."""
    from keras_er.data.specs import DATASET_SPECS
    from keras_er.masks.schemes import scheme_names
    from keras_er.architectures import ARCHITECTURES

    root = argparse.ArgumentParser(prog="keras-er", description=__doc__.split("\n")[0])
    root.add_argument("--backend", choices=BACKENDS, help="Keras backend (sets KERAS_BACKEND)")
    root.add_argument(
        "--conv-path",
        choices=CONV_PATHS,
        help="how keras_er's Conv2D layers compute (keras_er.layers.set_conv_path); default auto: the backend's "
        "convolution, except a matmul where XLA:CPU is pathologically slow",
    )
    commands = root.add_subparsers(dest="command", required=True)

    train = commands.add_parser("train", help="train an ER-sparse model")
    train.add_argument("--model", required=True, choices=sorted(ARCHITECTURES))
    train.add_argument("--scheme", default="erk", choices=[*scheme_names(), "dense"])
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
    train.add_argument(
        "--devices",
        type=_positive_int,
        help="data-parallel over N local devices with the backend's engine (JAX keras.distribution, "
        "TF MirroredStrategy, torch DDP under torchrun); the global batch stays --batch-size",
    )
    _add_sparse_training_arguments(train)

    evaluate = commands.add_parser("evaluate", help="top-1/top-5 and per-class accuracy")
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--zoo", metavar="ID", help="a zoo entry id")
    source.add_argument("--run", metavar="DIR", help="a run folder from `train`")
    evaluate.add_argument("--limit", type=int, help="use only the first N test images")
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="with --zoo: record this backend's accuracy in the zoo index and card",
    )

    export = commands.add_parser("export", help="write a run as a zoo entry")
    export.add_argument("run", metavar="DIR")
    export.add_argument("--root", help="zoo folder (default: the package's zoo/)")
    export.add_argument("--limit", type=int, help="evaluate on the first N test images")
    export.add_argument("--replace", action="store_true", help="replace an entry with the same id (refused otherwise)")
    export.add_argument(
        "--external",
        metavar="ASSETS",
        help="move the weights file to folder ASSETS, out of the wheel, to be published as a "
        "release asset; the entry downloads it on first use",
    )

    listing = commands.add_parser("list", help="published zoo weights")
    listing.add_argument("--markdown", action="store_true", help="print the README's zoo table")
    listing.add_argument("--plot", metavar="PNG", help="save top-1 vs density per scheme")

    bench = commands.add_parser(
        "bench",
        help="run benchmarks/ (source checkout): speed, file size, mask sampling",
        description="Arguments after `bench` go to `python -m benchmarks` (see its --help).",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return root


def _add_sparse_training_arguments(train):
    from keras_er import dst
    from keras_er import pruning

    moving = train.add_argument_group("dynamic sparse training (Evci et al. 2020): masks move during training")
    moving.add_argument("--dst", choices=dst.method_names(), help="drop and regrow weights every --update-every steps")
    moving.add_argument("--update-every", type=int, default=100)
    moving.add_argument("--drop-fraction", type=float, default=0.3)
    moving.add_argument("--end-fraction", type=float, default=0.75)
    pruned = train.add_argument_group("pruning at initialisation: masks from scores instead of an ER draw")
    pruned.add_argument("--prune", choices=pruning.method_names(), help="prune the dense model to --density first")
    pruned.add_argument(
        "--prune-scope",
        choices=("global", "scheme"),
        default="global",
        help="rank over all layers, or within --scheme's per-layer densities",
    )
    pruned.add_argument("--prune-iterations", type=int, default=100, help="SynFlow's pruning rounds")


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv  # recorded as the command that reproduces a run
    _devices_before_frameworks_load(args)
    if args.backend:
        _switch_backend(args.backend, argv)
    if args.conv_path:
        from keras_er.layers import set_conv_path

        set_conv_path(args.conv_path)
    from keras_er.files import FolderLockedError

    try:
        return COMMANDS[args.command](args)
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
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend  # keras is not imported yet: it will read this
        return
    import keras

    if keras.backend.backend() != backend:  # keras is loaded on another backend: start again
        env = {**os.environ, "KERAS_BACKEND": backend}
        os.execvpe(sys.executable, [sys.executable, "-m", "keras_er", *argv], env)


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def _train(args):
    import keras

    devices = args.devices if args.devices and args.devices > 1 else None
    if devices and keras.backend.backend() == "torch" and "WORLD_SIZE" not in os.environ:
        return _relaunch_under_torchrun(devices, args.argv)
    from keras_er.training import runs

    final = runs.train_run(
        runs.config_from_args(args),
        runs.recipe_from_args(args),
        Path(args.out),
        resume=args.resume,
        argv=args.argv,
        devices=args.devices,
    )
    if final is not None:  # the chief's (other processes return None)
        print(runs.json_text(final))
    return 0


def _relaunch_under_torchrun(devices, argv):
    """torch trains one process per device: start `devices` of them on this host."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}"]
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    return subprocess.run([*launcher, "-m", "keras_er", *argv], env=env).returncode


def _devices_before_frameworks_load(args):
    """JAX on a CPU shows one device unless asked for more before it starts."""
    several_processes = "KERAS_DISTRIBUTION_JOB_ADDRESSES" in os.environ  # then --devices is per process
    if getattr(args, "devices", None) and args.devices > 1 and "jax" not in sys.modules and not several_processes:
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def _evaluate(args):
    from keras_er import evaluation

    report = evaluation.evaluate(zoo_id=args.zoo, run=args.run, limit=args.limit, record=args.record)
    print(evaluation.json_text(report))
    return 0


def _export(args):
    from keras_er.zoo import publish

    entry = publish.export_run(Path(args.run), root=args.root, limit=args.limit, replace=args.replace)
    if args.external:
        entry = publish.move_out(entry["id"], args.external, root=args.root)
        print(f"weights moved to {args.external}; publish them at {entry['origin']}")
    top1 = next(iter(entry["top1"].values()), None)
    shown = "not measured on the full test set" if top1 is None else f"{top1:.4f}"
    print(f"exported {entry['id']} (sha256 {entry['sha256'][:12]}, top-1 {shown})")
    return 0


def _list(args):
    from keras_er import zoo
    from keras_er.zoo import report

    if args.markdown:
        print(report.markdown_table(), end="")
    elif not zoo.available_weights(print_fn=print):
        print("No zoo weights are published yet.")
    if args.plot:
        from keras_er import plotting

        plotting.accuracy_vs_density(args.plot)
        print(f"wrote {args.plot}")
    return 0


def _bench(args):
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        raise FileNotFoundError(
            "`keras-er bench` needs the source checkout (benchmarks/ is not part of the "
            "installed package): clone the repository and install it with `pip install -e .`."
        )
    command = [sys.executable, "-m", "benchmarks", *args.bench_args]
    return subprocess.run(command, cwd=checkout).returncode


COMMANDS = {"train": _train, "evaluate": _evaluate, "export": _export, "list": _list, "bench": _bench}
