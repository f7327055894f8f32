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
    """Save top-1 against final density, one line per scheme, from the zoo index.

    Each point is a configuration's mean over its seeds, with an error bar of
    one standard deviation where it has more than one seed. Entries trained
    with another recipe than the zoo's (a `variant`) are left out.
    """
    from keras_er.masks.schemes import scheme_names
    from keras_er.zoo import report

    summaries = report.seed_summaries(root, arch=arch, dataset=dataset, variants=False)
    if not summaries:
        raise ValueError(f"The zoo has no {arch} entry on {dataset} with a measured top-1: nothing to plot.")
    figure = _figure(figsize=(7.5, 3.8))
    if figure is None:
        return None
    axis = figure.subplots()
    for scheme in scheme_names():
        on_line = sorted(
            (s for s in summaries if s.entry["scheme"] == scheme and report.static_er(s.entry)),
            key=lambda s: s.density,
        )
        if on_line:
            axis.errorbar(
                [s.density for s in on_line],
                [s.mean for s in on_line],
                yerr=[s.std or 0.0 for s in on_line],
                marker="o",
                capsize=3,
                label=scheme,
            )
    for summary in summaries:
        _mark_off_the_lines(axis, summary)
    most_seeds = max((len(s.entries) for s in summaries), default=1)
    axis.set_xscale("log")
    densities = sorted({round(s.density, 6) for s in summaries if s.entry["scheme"] != "dense"})
    axis.set_xticks(densities, [f"{d:g}" for d in densities])
    axis.minorticks_off()
    axis.set_xlabel("global density (fraction of weights kept)")
    axis.set_ylabel("top-1 accuracy, %" + (" (mean ± std over seeds)" if most_seeds > 1 else ""))
    axis.set_title(f"{arch} on {dataset}, 30 epochs")
    axis.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5))
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    return figure


def _mark_off_the_lines(axis, summary):
    """The dense line (and its ± std band), and a marker of its own for masks moved by DST, set by pruning or
    found by popup."""
    entry = summary.entry
    if entry["scheme"] == "dense":
        axis.axhline(summary.mean, color="black", linestyle="--", label="dense")
        if summary.std is not None:
            axis.axhspan(summary.mean - summary.std, summary.mean + summary.std, color="black", alpha=0.1)
    moved = entry.get("dst") or entry.get("prune")
    if moved:
        kind = "DST" if entry.get("dst") else "pruned at init"
        style = {"fmt": _MOVED_MARKERS.get(moved["method"], "X"), "markersize": 8, "markerfacecolor": "none"}
        _point(axis, summary, f"{moved['method']} ({kind})", color="black", **style)
    if entry.get("popup"):
        _point(axis, summary, "popup (weights untrained)", fmt="*", markersize=11, color="purple")


def _point(axis, summary, label, **style):
    """One configuration as a marker at its density, with a one-std error bar where it has several seeds."""
    errors = [summary.std] if summary.std is not None else None
    if label in axis.get_legend_handles_labels()[1]:
        label = "_nolegend_"  # one legend row per method, however many configurations use it
    axis.errorbar([summary.density], [summary.mean], yerr=errors, capsize=3, label=label, zorder=3, **style)
