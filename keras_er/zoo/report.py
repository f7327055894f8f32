"""The zoo's tables for the README and the docs, from `index.json`: per entry, and per configuration over seeds.

keras-er list --markdown          # the README's zoo table
keras-er list --seeds             # each configuration's top-1 as mean ± std over its seeds
keras-er list --plot zoo.png      # top-1 vs density per scheme (keras_er.app.plotting)
"""

import dataclasses
import statistics

from keras_er import BACKENDS
from keras_er.architectures import ARCHITECTURES
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


def measured_top1(entry):
    """The entry's top-1 per backend that measured it (a backend recorded as None has not)."""
    return {backend: value for backend, value in (entry.get("top1") or {}).items() if value is not None}


def mean_top1(entry):
    """The entry's top-1 in percent, averaged over the backends that measured it."""
    values = list(measured_top1(entry).values())
    return 100 * sum(values) / len(values)


def configuration_id(entry):
    """The id the entry would have as seed 0: what its seeds share (model, masks, method, data, recipe)."""
    return registry.entry_id(
        entry["arch"],
        entry["scheme"],
        entry.get("density"),
        bool(entry.get("popup")),
        entry.get("popup_density"),
        entry["dataset"],
        entry.get("dst"),
        entry.get("prune"),
        seed=0,
        variant=entry.get("variant"),
    )


@dataclasses.dataclass(frozen=True)
class SeedSummary:
    """One configuration's entries, one per seed, and their top-1 (percent).

    `std` is the sample standard deviation (n - 1 in the denominator), None
    for a single seed.
    """

    configuration: str
    entries: tuple

    @property
    def entry(self):
        """The lowest seed's entry: what the configuration's entries share (scheme, density, method) is read here."""
        return self.entries[0]

    @property
    def density(self):
        """The configuration's final density (`final_density` of its entries)."""
        return final_density(self.entry)

    @property
    def seeds(self):
        return tuple(registry.entry_seed(entry) for entry in self.entries)

    @property
    def top1(self):
        return tuple(mean_top1(entry) for entry in self.entries)

    @property
    def mean(self):
        return statistics.fmean(self.top1)

    @property
    def std(self):
        return statistics.stdev(self.top1) if len(self.entries) > 1 else None

    def text(self):
        """`84.18 ± 0.15` (two decimals), or the one value where there is one seed."""
        return f"{self.mean:.2f}" + (f" ± {self.std:.2f}" if self.std is not None else "")


def static_er(entry):
    """Whether the entry's masks are an ER draw of its scheme kept through training (or dense): no popup, DST or
    pruning."""
    return not (entry.get("popup") or entry.get("dst") or entry.get("prune"))


def seed_summaries(root=None, arch=None, dataset=None, variants=True):
    """Every configuration with a measured top-1, its seeds in order, in the index's order of first appearance.

    `arch` and `dataset` keep only those; `variants=False` leaves out entries
    trained with another recipe than the zoo's.
    """
    if arch is not None and arch not in ARCHITECTURES:
        raise ValueError(f"Unknown `arch` {arch!r}; expected one of {', '.join(ARCHITECTURES)}.")
    groups = {}
    for entry in registry.load_index(root):
        wanted = (arch is None or entry["arch"] == arch) and (dataset is None or entry["dataset"] == dataset)
        if wanted and measured_top1(entry) and (variants or not entry.get("variant")):
            groups.setdefault(configuration_id(entry), []).append(entry)
    return [
        SeedSummary(configuration, tuple(sorted(entries, key=registry.entry_seed)))
        for configuration, entries in groups.items()
    ]


def seed_table(root=None):
    """The configurations as a markdown table: top-1 per seed and mean ± std over the seeds.

    A configuration is named by its seed-0 id, published or not.
    """
    lines = [
        "| configuration | scheme | density | seeds | top-1 % per seed | top-1 % mean ± std |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for summary in seed_summaries(root):
        lines.append(
            f"| `{summary.configuration}` | {scheme_text(summary.entry)} | {summary.density:g} "
            f"| {', '.join(map(str, summary.seeds))} "
            f"| {' / '.join(f'{value:.2f}' for value in summary.top1)} | {summary.text()} |"
        )
    return "\n".join(lines) + "\n"


def scheme_density_table(arch="resnet20", dataset="cifar10", root=None):
    """Top-1 of the dense model and the static ER configurations (zoo recipe) as mean ± std over seeds.

    A row per scheme, a column per density; masks moved by DST, set by
    pruning or found by popup are left out (`seed_table` has every
    configuration). A cell reads `84.19 ± 0.02 (n=3)`. An empty string where
    the zoo has no such entry.
    """
    from keras_er.masks.schemes import scheme_names

    summaries = seed_summaries(root, arch=arch, dataset=dataset, variants=False)
    cells = {(s.entry["scheme"], s.density): s for s in summaries if static_er(s.entry)}
    if not cells:
        return ""
    densities = sorted({density for _, density in cells}, reverse=True)
    schemes = [scheme for scheme in ("dense", *scheme_names()) if any(scheme == key[0] for key in cells)]
    lines = [
        f"| {arch}, {dataset} | " + " | ".join(f"density {d:g}" for d in densities) + " |",
        "| --- |" + " ---: |" * len(densities),
    ]
    for scheme in schemes:
        row = [_cell(cells.get((scheme, density))) for density in densities]
        lines.append(f"| {scheme} | " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def _cell(summary):
    return f"{summary.text()} (n={len(summary.entries)})" if summary else ""


def method_table(arch="resnet20", dataset="cifar10", density=0.1, root=None):
    """The paper's comparison at one density: static ER masks, pruning at initialisation, DST and the dense model.

    A row per configuration (zoo recipe; popup left out), grouped by how the
    masks start and move and, within a group, by mean top-1: `83.97 ± 0.39`
    over `n` seeds. An empty string where the zoo has none of them.
    """
    summaries = seed_summaries(root, arch=arch, dataset=dataset, variants=False)
    rows = [(_method_group(s.entry), -s.mean, s) for s in summaries if _in_comparison(s, density)]
    if not rows:
        return ""
    lines = ["| start | masks | top-1 % | n |", "| --- | --- | ---: | ---: |"]
    for group, _, summary in sorted(rows, key=lambda row: row[:2]):
        lines.append(
            f"| {METHOD_GROUPS[group]} | {_masks_text(summary.entry)} | {summary.text()} | {len(summary.entries)} |"
        )
    return "\n".join(lines) + "\n"


METHOD_GROUPS = ("random ER, before training", "pruning at initialisation", "random ER, dynamic", "dense")


def _in_comparison(summary, density):
    entry = summary.entry
    return not entry.get("popup") and (entry["scheme"] == "dense" or summary.density == density)


def _method_group(entry):
    if entry["scheme"] == "dense":
        return 3
    return 1 if entry.get("prune") else 2 if entry.get("dst") else 0


def _masks_text(entry):
    dst = entry.get("dst")
    if entry["scheme"] == "dense":
        return "—"
    if not dst:
        return f"{scheme_text(entry)}, static"
    return (
        f"{dst['method']} from the {entry['scheme']} mask (update every {dst['update_every']} steps, "
        f"drop {dst['drop_fraction']:.0%} decaying to 0 by {dst['end_fraction']:.0%} of training)"
    )
