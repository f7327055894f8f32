"""Zoo cards: `card.md` rendered from an index entry alone, never edited in place."""

from keras_er.zoo.weight_files import released

POPUP_CARD_LINE = (
    "- strong ticket: the kernels were never trained (they are what the recorded seed and "
    "initializer produce); only the popup scores and the BatchNorm moving statistics were "
    "learned. The table counts the active (top-k) weights."
)


def render_card(entry):
    """The markdown card of `entry` (an index entry with its `layers` and `notes`)."""
    lines = [
        f"# {entry['id']}",
        "",
        f"- architecture: {entry['arch']}; scheme: {entry['scheme']}; "
        f"density: {entry['density']:g}"
        + (f"; popup density: {entry['popup_density']:g}" if entry.get("popup") else ""),
        f"- dataset: {entry['dataset']}; input {tuple(entry['input_shape'])}, "
        f"{entry['classes']} classes; mask seed {entry['seed']}",
        f"- masks: {_mask_origin(entry)}",
        f"- input: raw pixels 0-255 (the model normalises them with mean "
        f"{_normalization(entry, 'mean')} and std {_normalization(entry, 'std')})",
        _weights_line(entry),
        f"- exported on the {entry['exported_on']} backend",
        f"- top-1 (full test set): {entry.get('top1') or 'not measured'}",
        f"- recipe: {_recipe(entry)}",
    ]
    if entry.get("popup"):
        lines.append(POPUP_CARD_LINE)
    if entry.get("layers"):
        lines += ["", "| layer | shape | weights | kept | density |", "| --- | --- | ---: | ---: | ---: |"]
        lines += [
            f"| {r['name']} | {tuple(r['shape'])} | {r['size']} | {r['nonzeros']} | {r['density']:.4f} |"
            for r in entry["layers"]
        ]
        kept, total = entry["weights_kept"], entry["weights_total"]
        lines.append(f"| total | | {total} | {kept} | {kept / total:.4f} |")
    if entry.get("paper"):
        lines += ["", f"Weights under {entry.get('license', 'Apache-2.0')}. Method: {entry['paper']}."]
    if entry.get("notes"):
        lines += ["", entry["notes"]]
    return "\n".join(lines) + "\n"


def _mask_origin(entry):
    if entry.get("prune"):
        prune = entry["prune"]
        scope = "ranked over all layers"
        if prune["scope"] != "global":
            scope = f"within {entry['scheme']}'s layer densities"
        return f"pruned at initialisation by {prune['method']} ({scope}), then trained; stored in the weight file"
    if entry.get("dst"):
        dst = entry["dst"]
        return (
            f"an Erdos-Renyi draw ({entry['scheme']}, seed {entry['seed']}) moved during training by "
            f"{dst['method']} (every {dst['update_every']} steps, drop fraction {dst['drop_fraction']:g}, "
            f"until {dst['end_fraction']:g} of training); stored in the weight file"
        )
    if entry["scheme"] == "dense":
        return "none (dense reference)"
    return f"an Erdos-Renyi draw ({entry['scheme']}, seed {entry['seed']}), fixed during training"


def _normalization(entry, key):
    values = entry.get("recipe", {}).get("input_normalization", {}).get(key)
    return list(values) if values else "?"


def _recipe(entry):
    recipe = {k: v for k, v in (entry.get("recipe") or {}).items() if k != "input_normalization"}
    return recipe or "not recorded"


def _weights_line(entry):
    if entry.get("origin"):
        name, megabytes = entry["origin"].rsplit("/", 1)[-1], entry.get("file_bytes", 0) / 1e6
        where = (
            f"downloaded from {entry['origin']} on first use"
            if released(entry)
            else f"not distributed yet, to be published at {entry['origin']}: reproduce it with the command below"
        )
        return f"- weights: `{name}` ({megabytes:.0f} MB, not in the wheel: {where}), sha256 `{entry['sha256']}`"
    return f"- weights: `{entry['file'].split('/')[-1]}`, sha256 `{entry['sha256']}`"
