"""The zoo as a README table and an accuracy-vs-density plot, from `index.json`.

    keras-er list --markdown          # the README's zoo table
    keras-er list --plot zoo.png      # top-1 vs density per scheme
"""

from keras_er.zoo import registry

BACKENDS = ("tensorflow", "torch", "jax")


def _final_density(entry):
    return entry["density"] * (entry["popup_density"] if entry.get("popup") else 1.0)


def _file_kib(entry, root):
    path = registry.zoo_root(root) / entry["file"]
    return f"{path.stat().st_size / 1024:.0f}" if path.is_file() else "?"


def _percent(value):
    return f"{100 * value:.2f}" if value is not None else "—"


def markdown_table(root=None):
    """The zoo as a markdown table, one row per entry."""
    lines = [
        "| id | scheme | density | weights kept | top-1 % TF | top-1 % torch | top-1 % JAX "
        "| file KiB | training time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in registry.load_index(root):
        scheme = entry["scheme"] + (f" + popup {entry['popup_density']:g}" if entry.get("popup") else "")
        kept = entry.get("weights_kept")
        total = entry.get("weights_total")
        seconds = entry.get("train_seconds")
        lines.append(
            f"| `{entry['id']}` | {scheme} | {_final_density(entry):g} "
            f"| {f'{kept:,} / {total:,}' if kept else '?'} "
            + "".join(f"| {_percent(entry.get('top1', {}).get(b))} " for b in BACKENDS)
            + f"| {_file_kib(entry, root)} "
            f"| {f'{seconds / 60:.0f} min' if seconds else '?'} |"
        )
    return "\n".join(lines) + "\n"


def plot_accuracy_vs_density(path, arch="resnet20", dataset="cifar10", root=None):
    """Save a plot of top-1 against final density, one line per scheme."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = [e for e in registry.load_index(root)
               if e["arch"] == arch and e["dataset"] == dataset and e.get("top1")]
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for scheme in ("erk", "balanced", "pyramidal", "uniform"):
        points = sorted((_final_density(e), _mean_top1(e)) for e in entries
                        if e["scheme"] == scheme and not e.get("popup"))
        if points:
            ax.plot(*zip(*points), marker="o", label=scheme)
    for e in entries:
        if e["scheme"] == "dense":
            ax.axhline(_mean_top1(e), color="black", linestyle="--", label="dense")
        if e.get("popup"):
            ax.scatter([_final_density(e)], [_mean_top1(e)], marker="*", s=120, color="purple",
                       label="popup (weights untrained)", zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("global density (fraction of weights kept)")
    ax.set_ylabel("top-1 accuracy, %")
    ax.set_title(f"{arch} on {dataset}, 30 epochs")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _mean_top1(entry):
    values = list(entry["top1"].values())
    return 100 * sum(values) / len(values)
