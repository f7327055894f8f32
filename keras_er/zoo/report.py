"""The zoo as a README table, from `index.json`.

keras-er list --markdown          # the README's zoo table
keras-er list --plot zoo.png      # top-1 vs density per scheme (keras_er.plotting)
"""

from keras_er import BACKENDS
from keras_er.zoo import registry


def final_density(entry):
    return entry["density"] * (entry["popup_density"] if entry.get("popup") else 1.0)


def _file_kib(entry, root):
    path = registry.zoo_root(root) / entry["file"]
    if path.is_file():
        return f"{path.stat().st_size / 1024:.0f}"
    if entry.get("origin"):  # kept out of the wheel
        return f"{entry['file_bytes'] / 1024:.0f} (not in wheel)"
    return "?"


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
        if entry.get("dst"):
            scheme += f" + {entry['dst']['method']}"
        if entry.get("prune"):
            scheme = f"{entry['prune']['method']} ({entry['prune']['scope']})"
        kept = entry.get("weights_kept")
        total = entry.get("weights_total")
        seconds = entry.get("train_seconds")
        lines.append(
            f"| `{entry['id']}` | {scheme} | {final_density(entry):g} "
            f"| {f'{kept:,} / {total:,}' if kept else '?'} "
            + "".join(f"| {_percent(entry.get('top1', {}).get(b))} " for b in BACKENDS)
            + f"| {_file_kib(entry, root)} "
            f"| {f'{seconds / 60:.0f} min' if seconds else '?'} |"
        )
    return "\n".join(lines) + "\n"


def mean_top1(entry):
    values = list(entry["top1"].values())
    return 100 * sum(values) / len(values)
