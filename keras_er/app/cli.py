"""`keras-er` command line: hands each command (parsed by `keras_er.app.parser`) to its module.

The parser imports no framework (`--help` and `--version` are instant), and
`list` reads the zoo index without keras. Before a command imports keras,
`keras_er.framework_logs.quiet()` hides TensorFlow's start-up notices unless
`-v` is given or `TF_CPP_MIN_LOG_LEVEL` is set.
"""

import contextlib
import os
import subprocess
import sys
from pathlib import Path

from keras_er.app.parser import parser
from keras_er.files import json_text


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser().parse_args(argv)
    args.argv = argv  # recorded as the command that reproduces a run
    _devices_before_frameworks_load(args)
    if args.backend:
        _switch_backend(args.backend, argv)
    if not args.verbose:
        from keras_er import framework_logs

        framework_logs.quiet()
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
    except BrokenPipeError:  # `keras-er list | head`: the reader left; Python's exit flush must not complain
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (ValueError, TypeError, OSError, FolderLockedError) as error:
        # No traceback: bad settings, missing/corrupt/unwritable files. The message keeps its lines.
        print(f"keras-er {args.command}: error: {str(error) or type(error).__name__}", file=sys.stderr)
        return 2


def _switch_backend(backend, argv):
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend  # keras is not imported yet: it will read this
        return
    import keras

    if keras.backend.backend() != backend:  # keras is loaded on another backend: start again
        from keras_er import framework_logs

        env = framework_logs.for_child({**os.environ, "KERAS_BACKEND": backend})
        os.execvpe(sys.executable, [sys.executable, "-m", "keras_er", *argv], env)


def _train(args):
    import keras

    devices = args.devices if args.devices and args.devices > 1 else None
    if devices and keras.backend.backend() == "torch" and "WORLD_SIZE" not in os.environ:
        return _relaunch_under_torchrun(devices, args.argv)
    from keras_er.app import runs

    final = runs.train_run(
        runs.config_from_args(args),
        runs.recipe_from_args(args),
        Path(args.out),
        resume=args.resume,
        argv=args.argv,
        devices=args.devices,
    )
    if final is not None:  # the chief's (other processes return None)
        print(json_text(final))
    return 0


def _relaunch_under_torchrun(devices, argv):
    """torch trains one process per device: start `devices` of them on this host."""
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={devices}"]
    from keras_er import framework_logs

    env = framework_logs.for_child({**os.environ, "KERAS_BACKEND": "torch"})
    return subprocess.run([*launcher, "-m", "keras_er", *argv], env=env).returncode


def _devices_before_frameworks_load(args):
    """JAX on a CPU shows one device unless asked for more before it starts."""
    several_processes = "KERAS_DISTRIBUTION_JOB_ADDRESSES" in os.environ  # then --devices is per process
    if getattr(args, "devices", None) and args.devices > 1 and "jax" not in sys.modules and not several_processes:
        flag = f"--xla_force_host_platform_device_count={args.devices}"
        if "xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()


def _evaluate(args):
    from keras_er.app import evaluation

    with contextlib.redirect_stdout(sys.stderr):  # Keras' progress bar: stdout holds the report only
        report = evaluation.evaluate(zoo_id=args.zoo, run=args.run, limit=args.limit, record=args.record, verbose=1)
    print(json_text(report))
    return 0


def _export(args):
    from keras_er.app import publish

    entry = publish.export_run(Path(args.run), root=args.root, limit=args.limit, replace=args.replace)
    if args.external:
        entry = publish.move_out(entry["id"], args.external, root=args.root)
        print(
            f"weights moved to {args.external}; upload them as {entry['origin']}, then mark the entry "
            f"released: keras_er.app.publish.mark_released({entry['id']!r})"
        )
    top1 = next(iter(entry["top1"].values()), None)
    shown = "not measured on the full test set" if top1 is None else f"{top1:.4f}"
    print(f"exported {entry['id']} (sha256 {entry['sha256'][:12]}, top-1 {shown})")
    return 0


def _export_model(args):
    if Path(args.out).exists() and not args.overwrite:
        raise FileExistsError(f"{args.out} exists; pass --overwrite to replace it.")
    import keras

    from keras_er.deploy.support import refusal

    if not args.backend and refusal(args.format, keras.backend.backend()):
        print(f"keras-er export-model: {args.format} is written on tensorflow.", file=sys.stderr)
        _switch_backend("tensorflow", args.argv)
    import keras_er

    model = _deployable_model(args.source)
    try:
        report = keras_er.export(model, args.out, format=args.format, overwrite=args.overwrite)
    except (ImportError, keras_er.deploy.ExportVerificationError) as error:  # a runtime missing, a mismatch
        print(f"keras-er export-model: error: {error}", file=sys.stderr)
        return 2
    print(json_text(report))
    return 0


def _deployable_model(source):
    """A zoo entry's model, or a run's network behind its dataset's raw-pixel normalisation."""
    if Path(source).is_dir():
        from keras_er.app.runs import load_run
        from keras_er.zoo.builder import input_normalization
        from keras_er.zoo.builder import with_preprocessing

        config, model = load_run(source)
        return with_preprocessing(model, *input_normalization(None, config["dataset"]))
    from keras_er import zoo

    return zoo.load(source)


def _list(args):
    from keras_er.zoo import listing
    from keras_er.zoo import report

    if args.plot:  # first: a bad path, an empty zoo or no matplotlib stop the command before it prints anything
        from keras_er.app import plotting

        figure_path = _checked_figure_path(args.plot)
        if plotting.accuracy_vs_density(figure_path) is None:
            return 1  # no matplotlib: it said so, and nothing was written
    if args.markdown:
        print(report.markdown_table(), end="")
    if args.seeds:
        print(("\n" if args.markdown else "") + report.seed_table(), end="")  # two tables, not one
    if not (args.markdown or args.seeds) and not listing.available_weights(print_fn=print):
        print("No zoo weights are published yet.")
    if args.plot:
        print(f"wrote {figure_path}")
    return 0


FIGURE_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _checked_figure_path(path):
    path = Path(path).expanduser()
    if path.suffix.lower() not in FIGURE_SUFFIXES:
        raise ValueError(f"`--plot` {str(path)!r} must end in one of {', '.join(FIGURE_SUFFIXES)}.")
    if not path.parent.is_dir():
        raise ValueError(f"`--plot` {str(path)!r}: the folder {str(path.parent)!r} does not exist.")
    return path


def _bench(args):
    checkout = Path(__file__).resolve().parents[1]
    if not (checkout / "benchmarks" / "__main__.py").is_file():
        raise FileNotFoundError(
            "`keras-er bench` needs the source checkout (benchmarks/ is not part of the "
            "installed package): clone the repository and install it with `pip install -e .`."
        )
    command = [sys.executable, "-m", "benchmarks", *args.bench_args]
    return subprocess.run(command, cwd=checkout).returncode


COMMANDS = {
    "train": _train,
    "evaluate": _evaluate,
    "export": _export,
    "export-model": _export_model,
    "list": _list,
    "bench": _bench,
}
