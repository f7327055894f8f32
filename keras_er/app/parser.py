"""The `keras-er` argument parser: commands, options and their defaults (imports no framework)."""

import argparse
import textwrap

from keras_er import BACKENDS
from keras_er import __version__
from keras_er.deploy.support import FORMATS

CONV_PATHS = ("auto", "native", "matmul")  # keras_er.layers.conv_paths.MODES, without importing keras here

DESCRIPTION = (
    "Train, evaluate and publish random (Erdos-Renyi) sparse networks with Keras 3, "
    "on TensorFlow, PyTorch or JAX. `keras-er COMMAND --help` describes each command."
)
EXAMPLES = """examples:
  keras-er list                                          the zoo's published weights
  keras-er evaluate --zoo resnet20_erk_d0.1_cifar10      accuracy of a zoo model on CIFAR-10
  keras-er train --model resnet20 --scheme erk --density 0.1 --out runs/r20
  keras-er train --model resnet20 --out runs/r20 --resume   continue a stopped run
  keras-er evaluate --run runs/r20 --backend jax         --backend goes before or after the command
  keras-er export runs/r20                               write the run as a zoo entry
  keras-er export-model resnet20_erk_d0.1_cifar10 --format litert --out r20.tflite
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' layout, and shows an option's default wherever it has one."""

    def _get_help_string(self, action):
        text = action.help or ""
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in text:
            text += " (default: %(default)s)"
        return text


def parser():
    """The argument parser; choices come from the registries (models, schemes, datasets)."""
    from keras_er.architectures import ARCHITECTURES
    from keras_er.data.specs import DATASET_SPECS
    from keras_er.masks.schemes import scheme_names

    root = argparse.ArgumentParser(
        prog="keras-er", description=textwrap.fill(DESCRIPTION, 79), epilog=EXAMPLES, formatter_class=_HelpFormatter
    )
    root.add_argument("--version", action="version", version=f"keras-er {__version__}")
    _add_common_arguments(root, None)
    commands = root.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, summary, description=None):
        sub = commands.add_parser(
            name, help=summary, description=textwrap.fill(description or summary, 79), formatter_class=_HelpFormatter
        )
        # Given after the command they override the root's; SUPPRESS leaves the root's value otherwise.
        _add_common_arguments(sub.add_argument_group("options also accepted before the command"), argparse.SUPPRESS)
        return sub

    train = command(
        "train",
        "train a sparse model on a dataset into a run folder",
        "Train a model whose masks are an Erdos-Renyi draw (or moved by DST, or set by pruning), with one "
        "recipe: SGD with nesterov momentum 0.9, cosine decay after a linear warm-up, pad-4 crop + flip on CIFAR.",
    )
    train.add_argument("--model", required=True, choices=sorted(ARCHITECTURES), help="architecture")
    train.add_argument(
        "--scheme", default="erk", choices=[*scheme_names(), "dense"], help="how the density is spread over the layers"
    )
    train.add_argument("--density", type=float, default=0.1, help="fraction of the conv/dense weights kept")
    train.add_argument("--popup", action="store_true", help="train popup scores only: the weights keep their init")
    train.add_argument(
        "--popup-density", type=float, default=0.5, help="with --popup: fraction of the masked weights kept"
    )
    train.add_argument("--dataset", default="cifar10", choices=sorted(DATASET_SPECS), help="training data")
    train.add_argument("--epochs", type=int, default=30, help="training epochs")
    train.add_argument("--batch-size", type=int, default=128, help="global batch size")
    train.add_argument("--lr", type=float, default=0.1, help="peak learning rate")
    train.add_argument("--warmup-epochs", type=int, help="linear warm-up epochs (default: 1, 0 for a 1-epoch run)")
    train.add_argument("--weight-decay", type=float, default=5e-4, help="weight decay on the kernels")
    train.add_argument("--label-smoothing", type=float, default=0.0, help="label smoothing of the loss")
    train.add_argument("--seed", type=int, default=0, help="seed of the masks, the initial weights and the data order")
    train.add_argument("--limit", type=int, help="use only the first N training images")
    train.add_argument("--out", required=True, help="run folder (weights, log, config, learning curves)")
    train.add_argument("--resume", action="store_true", help="continue the run in --out")
    train.add_argument(
        "--devices",
        type=_positive_int,
        help="data-parallel over N local devices with the backend's engine (JAX keras.distribution, "
        "TF MirroredStrategy, torch DDP under torchrun); the global batch stays --batch-size",
    )
    _add_sparse_training_arguments(train)

    evaluate = command(
        "evaluate",
        "top-1, top-5 and per-class accuracy on the test split",
        "Accuracy of a zoo model or of a trained run on its dataset's test split: top-1, top-5 and per class, "
        "as JSON on stdout (the progress bar goes to stderr).",
    )
    source = evaluate.add_mutually_exclusive_group(required=True)
    source.add_argument("--zoo", metavar="ID", help="a zoo entry id (see `keras-er list`)")
    source.add_argument("--run", metavar="DIR", help="a run folder from `keras-er train`")
    evaluate.add_argument("--limit", type=int, help="use only the first N test images")
    evaluate.add_argument(
        "--record",
        action="store_true",
        help="with --zoo: record this backend's accuracy in the zoo index and card",
    )

    export = command(
        "export",
        "write a finished run as a zoo entry (weights, card, index line)",
        "Write a finished run as a zoo entry (weights, card, index line). Only a run trained with the zoo's "
        "recipe (train's defaults, all training images) gets the published id; any other run's id ends with a "
        "tag naming each difference, e.g. resnet20_erk_d0.1_cifar10_e1_w0_limit1000 for --epochs 1 --limit 1000 "
        "(e epochs, b batch size, lr, m momentum, wd weight decay, w warm-up epochs, ls label smoothing, limit "
        "training images, u/drop/end DST and it pruning settings). An unfinished run, or an id the zoo already "
        "holds (without --replace), is refused before anything is written.",
    )
    export.add_argument("run", metavar="DIR", help="a finished run folder")
    export.add_argument("--root", help="zoo folder (default: the package's zoo/)")
    export.add_argument("--limit", type=int, help="evaluate on the first N test images")
    export.add_argument("--replace", action="store_true", help="replace an entry with the same id (refused otherwise)")
    export.add_argument(
        "--external",
        metavar="ASSETS",
        help="move the weights file to folder ASSETS, out of the wheel, to be published as a "
        "release asset; the entry downloads it on first use once released",
    )

    deploy = command(
        "export-model",
        "write a zoo model or a run as a LiteRT, ONNX or SavedModel file, verified by its runtime",
        "Write a zoo model or a finished run (raw-pixel front included) as a deployment file with "
        "keras_er.export: masks folded in, LiteRT's sparse encoding, the file checked in its own runtime "
        "against the Keras outputs before it is moved into place. Without --backend, a format the current "
        "backend cannot write is written on tensorflow.",
    )
    deploy.add_argument("source", metavar="ID|RUN", help="a zoo entry id (see `keras-er list`) or a run folder")
    deploy.add_argument("--format", required=True, choices=FORMATS, help="deployment format (Keras' names)")
    deploy.add_argument("--out", required=True, help="file to write (.tflite, .onnx) or SavedModel folder")
    deploy.add_argument("--overwrite", action="store_true", help="replace --out if it exists (refused otherwise)")

    listing = command(
        "list",
        "the zoo's published weights",
        "The zoo's entries: scheme, final density (popup's share included), top-1 per backend, and where "
        "the weights come from.",
    )
    listing.add_argument("--markdown", action="store_true", help="print the README's zoo table")
    listing.add_argument(
        "--seeds", action="store_true", help="print each configuration's top-1 per seed and mean ± std (markdown)"
    )
    listing.add_argument("--plot", metavar="PNG", help="save top-1 vs density per scheme")

    bench = commands.add_parser(
        "bench",
        help="run benchmarks/ (source checkout): speed, file size, mask sampling",
        description="Arguments after `bench` go to `python -m benchmarks` (see its --help).",
    )
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    return root


def _add_common_arguments(parser, default):
    """--backend, --conv-path and -v; `default` None on the root, SUPPRESS after the command."""
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default=default,
        help="Keras backend (default: $KERAS_BACKEND, else Keras' default, tensorflow)",
    )
    parser.add_argument(
        "--conv-path",
        choices=CONV_PATHS,
        default=default,
        help="how keras_er's Conv2D layers compute (keras_er.layers.set_conv_path); default auto: the backend's "
        "convolution, except a matmul where XLA:CPU is pathologically slow",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=False if default is None else default,
        help="show TensorFlow's start-up notices and INFO/WARNING logs (hidden unless $TF_CPP_MIN_LOG_LEVEL is set)",
    )


def _add_sparse_training_arguments(train):
    from keras_er import dst
    from keras_er import pruning

    moving = train.add_argument_group("dynamic sparse training (Evci et al. 2020): masks move during training")
    moving.add_argument("--dst", choices=dst.method_names(), help="drop and regrow weights every --update-every steps")
    moving.add_argument("--update-every", type=int, default=100, help="optimizer steps between mask updates")
    moving.add_argument(
        "--drop-fraction", type=float, default=0.3, help="share of each layer's weights moved at the first update"
    )
    moving.add_argument(
        "--end-fraction", type=float, default=0.75, help="part of training after which the masks stay fixed"
    )
    pruned = train.add_argument_group("pruning at initialisation: masks from scores instead of an ER draw")
    pruned.add_argument("--prune", choices=pruning.method_names(), help="prune the dense model to --density first")
    pruned.add_argument(
        "--prune-scope",
        choices=("global", "scheme"),
        default="global",
        help="rank over all layers, or within --scheme's per-layer densities",
    )
    pruned.add_argument("--prune-iterations", type=int, default=100, help="SynFlow's pruning rounds")


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value
