"""Figures: a run's learning curves and the zoo's accuracy against density.

Figures are drawn on a `matplotlib.figure.Figure` (no pyplot state, no
backend switch), so calling these in a notebook leaves inline plots alone.
matplotlib is optional: without it the functions say so and return None.
"""

import csv
import sys


def _figure(**kwargs):
    try:
        from matplotlib.figure import Figure
    except ImportError:
        print("matplotlib is not installed: no figure.", file=sys.stderr)
        return None
    return Figure(**kwargs)


def learning_curves(log_csv, path):
    """Save train/test loss and accuracy per epoch from a run's `log.csv`; return the Figure."""
    figure = _figure(figsize=(9, 3.5))
    if figure is None:
        return None
    from matplotlib.ticker import MaxNLocator

    with open(log_csv, newline="") as file:
        rows = list(csv.DictReader(file))
    epochs = [int(row["epoch"]) + 1 for row in rows]
    for key, axis in zip(("loss", "accuracy"), figure.subplots(1, 2)):
        axis.plot(epochs, [float(row[key]) for row in rows], label="train")
        if "val_" + key in rows[0]:
            axis.plot(epochs, [float(row["val_" + key]) for row in rows], label="test")
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_title(key)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return figure


_MOVED_MARKERS = {"rigl": "D", "set": "d", "snip": "s", "synflow": "^", "magnitude": "v", "random": "P"}


def accuracy_vs_density(path, arch="resnet20", dataset="cifar10", root=None):
    """Save top-1 against final density, one line per scheme, from the zoo index."""
    from keras_er.masks.schemes import scheme_names
    from keras_er.zoo import registry
    from keras_er.zoo.report import final_density
    from keras_er.zoo.report import mean_top1

    figure = _figure(figsize=(5.5, 3.6))
    if figure is None:
        return None
    entries = [e for e in registry.load_index(root) if e["arch"] == arch and e["dataset"] == dataset and e.get("top1")]
    axis = figure.subplots()
    for scheme in scheme_names():
        points = sorted(
            (final_density(e), mean_top1(e))
            for e in entries
            if e["scheme"] == scheme and not (e.get("popup") or e.get("dst") or e.get("prune"))
        )
        if points:
            axis.plot(*zip(*points), marker="o", label=scheme)
    for entry in entries:
        if entry["scheme"] == "dense":
            axis.axhline(mean_top1(entry), color="black", linestyle="--", label="dense")
        moved = entry.get("dst") or entry.get("prune")
        if moved:  # a mask moved by DST or set by pruning: its own marker, not on the ER line
            marker = _MOVED_MARKERS.get(moved["method"], "X")
            kind = "DST" if entry.get("dst") else "pruned at init"
            axis.scatter(
                [final_density(entry)],
                [mean_top1(entry)],
                marker=marker,
                s=60,
                facecolors="none",
                edgecolors="black",
                label=f"{moved['method']} ({kind})",
                zorder=3,
            )
        if entry.get("popup"):
            axis.scatter(
                [final_density(entry)],
                [mean_top1(entry)],
                marker="*",
                s=120,
                color="purple",
                label="popup (weights untrained)",
                zorder=3,
            )
    axis.set_xscale("log")
    axis.set_xlabel("global density (fraction of weights kept)")
    axis.set_ylabel("top-1 accuracy, %")
    axis.set_title(f"{arch} on {dataset}, 30 epochs")
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return figure
