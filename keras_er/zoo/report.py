"""The zoo as a README table, from `index.json`.

keras-er list --markdown          # the README's zoo table
keras-er list --plot zoo.png      # top-1 vs density per scheme (keras_er.app.plotting)
"""

from keras_er import BACKENDS
from keras_er.zoo import registry
from keras_er.zoo import weight_files

BACKEND_LABELS = {"tensorflow": "TF", "torch": "torch", "jax": "JAX"}


def final_density(entry):
    """The density of the weights the entry uses: popup's share of its ER mask included."""
    return entry["density"] * (entry["popup_density"] if entry.get("popup") else 1.0)


def scheme_text(entry):
    """How the entry's masks were made, in words: "erk", "erk + popup 0.2", "erk + rigl", "snip (global)"."""
    if entry.get("prune"):
        return f"{entry['prune']['method']} ({entry['prune']['scope']})"
    scheme = entry["scheme"] + (f" + popup {entry['popup_density']:g}" if entry.get("popup") else "")
    return scheme + (f" + {entry['dst']['method']}" if entry.get("dst") else "")


def _file_kib(entry, root):
    path = registry.zoo_root(root) / entry["file"]
    if path.is_file():
        return f"{path.stat().st_size / 1024:.0f}"
    if entry.get("origin"):  # kept out of the wheel
        where = "not in wheel" if weight_files.released(entry) else weight_files.NOT_DISTRIBUTED
        return f"{entry['file_bytes'] / 1024:.0f} ({where})"
    return "?"


def percent(value, missing="—"):
    """A top-1 in percent with two decimals, or `missing` where none was measured."""
    return f"{100 * value:.2f}" if value is not None else missing


def markdown_table(root=None):
    """The zoo as a markdown table, one row per entry."""
    lines = [
        "| id | scheme | density | weights kept | "
        + "".join(f"top-1 % {BACKEND_LABELS[b]} | " for b in BACKENDS)
        + "file KiB | training time |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for entry in registry.load_index(root):
        kept = entry.get("weights_kept")
        total = entry.get("weights_total")
        seconds = entry.get("train_seconds")
        lines.append(
            f"| `{entry['id']}` | {scheme_text(entry)} | {final_density(entry):g} "
            f"| {f'{kept:,} / {total:,}' if kept else '?'} "
            + "".join(f"| {percent(entry.get('top1', {}).get(b))} " for b in BACKENDS)
            + f"| {_file_kib(entry, root)} "
            f"| {f'{seconds / 60:.0f} min' if seconds else '?'} |"
        )
    return "\n".join(lines) + "\n"


def mean_top1(entry):
    values = list(entry["top1"].values())
    return 100 * sum(values) / len(values)
