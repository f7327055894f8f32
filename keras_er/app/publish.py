"""`keras-er export`: a finished run folder becomes a zoo entry, with what was measured."""

import json
import re
import shutil
from pathlib import Path


def export_run(run, root=None, limit=None, replace=False):
    """Evaluate the run `run`, write it as a zoo entry (see `zoo.export`); return the entry.

    Records hold only what was measured: with `limit`, the entry has no
    top-1 and its card says which images were used. An entry with the run's
    id (seed included) is refused before anything is evaluated, unless `replace`.

    Only a run trained with the zoo's recipe (what `keras-er train` does by
    default: `Recipe()`, all training images, the default DST/pruning
    settings) gets the published id, the one `keras_er.zoo.build` loads. Any
    other run's id ends with a tag naming each difference (`recipe_variant`):
    a 1-epoch run on 1000 images of the flagship's settings becomes
    `resnet20_erk_d0.1_cifar10_e1_w0_limit1000`, which no constructor picks.
    A run whose log holds fewer epochs than its recipe is refused. Every
    refusal comes before anything is written.
    """
    import keras

    from keras_er.app.evaluation import accuracy_report
    from keras_er.app.runs import epoch_stats
    from keras_er.app.runs import load_run
    from keras_er.data import load_arrays
    from keras_er.data.specs import get_spec
    from keras_er.files import atomic_write
    from keras_er.zoo import registry
    from keras_er.zoo.exporter import export
    from keras_er.zoo.exporter import refuse_existing

    run = Path(run)
    config, model = load_run(run)
    recipe = _read_recipe(run)
    epochs, epoch_seconds = epoch_stats(run / "log.csv")
    if epochs < recipe.get("epochs", 0):
        raise ValueError(
            f"{run}/log.csv records {epochs} epochs but the run's recipe has {recipe['epochs']}: the run did not "
            "finish. Resume it (keras-er train ... --resume) before exporting it."
        )
    variant = recipe_variant(config, recipe)
    if not replace:
        refuse_existing(_run_entry_id(config, variant), root)  # before minutes of evaluation
    report = accuracy_report(model, config["dataset"], limit)
    spec = get_spec(config["dataset"])
    recipe["input_normalization"] = {"mean": list(spec.mean), "std": list(spec.std), "units": "pixels 0-255"}
    test_size = len(load_arrays(config["dataset"], "test")[1])
    full = limit is None or report["images"] == test_size
    backend = keras.backend.backend()
    entry = export(
        model,
        config["model"],
        config["scheme"],
        config["density"],
        dataset=config["dataset"],
        seed=config["seed"],
        popup=config["popup"],
        popup_density=config["popup_density"] if config["popup"] else None,
        top1={backend: report["top1"]} if full else {},
        recipe=recipe,
        notes=_notes(run, config, report, epochs, epoch_seconds, full),
        train_seconds=round(epochs * epoch_seconds, 1),
        top1_first1000=({backend: report["top1_first1000"]} if report["images"] >= min(1000, test_size) else {}),
        dst=config.get("dst"),
        prune=config.get("prune"),
        variant=variant,
        root=root,
        replace=replace,
    )
    curves = run / "curves.png"
    if curves.is_file():
        with atomic_write(registry.zoo_root(root) / entry["id"] / "curves.png") as temporary:
            shutil.copyfile(curves, temporary)
    return entry


# How each setting that differs from the zoo's recipe is named in an entry id's tag.
_RECIPE_TAGS = {
    "epochs": "e",
    "batch_size": "b",
    "learning_rate": "lr",
    "momentum": "m",
    "weight_decay": "wd",
    "warmup_epochs": "w",
    "label_smoothing": "ls",
}
_DST_TAGS = {"update_every": "u", "drop_fraction": "drop", "end_fraction": "end"}


def published_settings():
    """What the zoo's entries were trained with: `keras-er train`'s defaults (`recipe`, `dst`, `prune`)."""
    from keras_er.app.parser import parser
    from keras_er.app.runs import recipe_from_args

    args = parser().parse_args(["train", "--model", "resnet20", "--out", "-"])
    recipe = recipe_from_args(args).to_dict()
    dst = {"update_every": args.update_every, "drop_fraction": args.drop_fraction, "end_fraction": args.end_fraction}
    return {"recipe": recipe, "dst": dst, "prune": {"iterations": args.prune_iterations}}


def recipe_variant(config, recipe):
    """The id tag of a run trained otherwise than the zoo's entries (None: the zoo's recipe).

    One part per difference, in a fixed order: recipe fields (`e1` epochs,
    `b64` batch size, `lr0.05`, `m0.8` momentum, `nonesterov`, `wd0` weight
    decay, `w0` warm-up epochs, `ls0.1` label smoothing, any other field as
    name and value), `limit1000` (training images), then DST (`u50`,
    `drop0.5`, `end0.5`) and pruning (`it10`) settings. The seed is in the id already.

    >>> recipe_variant({"limit": 1000}, {"epochs": 1, "warmup_epochs": 0, "seed": 0})
    'e1_w0_limit1000'
    >>> recipe_variant({"limit": None}, {"epochs": 30, "seed": 3}) is None
    True
    """
    published = published_settings()
    parts = []
    for key, value in recipe.items():
        default = published["recipe"].get(key)
        if key == "seed" or value == default:
            continue
        if key == "nesterov":
            parts.append("nesterov" if value else "nonesterov")
        else:
            parts.append(f"{_RECIPE_TAGS.get(key, key.replace('_', ''))}{_tag_number(value)}")
    if config.get("limit") is not None:
        parts.append(f"limit{config['limit']}")
    for key, value in (config.get("dst") or {}).items():
        if key in _DST_TAGS and value != published["dst"][key]:
            parts.append(f"{_DST_TAGS[key]}{_tag_number(value)}")
    iterations = (config.get("prune") or {}).get("iterations")
    if iterations is not None and iterations != published["prune"]["iterations"]:
        parts.append(f"it{iterations}")
    return "_".join(parts) or None


def _tag_number(value):
    return f"{value:g}" if isinstance(value, float) else str(value)


def _read_recipe(run):
    path = Path(run) / "recipe.json"
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} cannot be read ({error}); the run cannot be exported.") from None
    if not isinstance(recipe, dict):
        raise ValueError(f"{path} must hold the run's recipe as a JSON object.")
    return recipe


def _run_entry_id(config, variant=None):
    from keras_er.zoo import registry

    popup_density = config["popup_density"] if config["popup"] else None
    density = 1.0 if config["scheme"] == "dense" else config["density"]
    return registry.entry_id(
        config["model"],
        config["scheme"],
        density,
        config["popup"],
        popup_density,
        config["dataset"],
        config.get("dst"),
        config.get("prune"),
        config["seed"],
        variant,
    )


def _notes(run, config, report, epochs, epoch_seconds, full):
    import keras

    command = re.sub(r"--out \S+", f"--out runs/{run.name}", config.get("command", ""))
    devices = config.get("devices", 1)
    where = f" on {devices} devices ({config.get('engine')}, global batch as one device's)" if devices > 1 else ""
    if config.get("hardware"):
        where += f" on {config['hardware']}"
    notes = (
        f"## Reproduce\n\n```bash\n{command}\n```\n\n"
        f"Trained on the {config.get('backend')} backend{where}; {epochs} epochs; "
        f"top-1 {report['top1']:.4f} on {report['images']} test images "
        f"({keras.backend.backend()} backend); training time {epochs * epoch_seconds:.0f} s "
        f"({epochs} epochs x the median epoch, {epoch_seconds:.0f} s; the median leaves out "
        "epochs slowed by a pause or by another job for part of the run)."
    )
    if (run / "curves.png").is_file():
        notes += "\n\n![learning curves](curves.png)"
    if not full:
        notes += (
            f"\n\nNot a published accuracy: evaluated on the first {report['images']} "
            "test images only (export --limit)."
        )
    return notes


def move_out(entry_id, assets, root=None, base=None):
    """Move entry `entry_id`'s weights file out of the zoo folder (and so out of the wheel).

    The file goes to `assets` as `weight_files.asset_name(entry)`, to be published
    at `base` (default `weight_files.ASSET_BASE`); the entry records that URL as
    its `origin`, the file's size and `"released": false` (nothing is uploaded
    yet: `keras-er list` says "not distributed"), and loads from the Keras cache
    from then on, or from `$KERAS_ER_DOWNLOAD_BASE`; once the file is uploaded,
    `mark_released` lets it download from its origin (`weight_files.weight_path`).
    Copied and checked before the entry changes and the zoo's copy goes, so a
    kill leaves a loadable zoo.
    """
    from keras_er.files import atomic_write
    from keras_er.files import folder_lock
    from keras_er.files import sha256_of
    from keras_er.files import write_text_atomic
    from keras_er.zoo import registry
    from keras_er.zoo import weight_files
    from keras_er.zoo.cards import render_card

    with folder_lock(registry.zoo_root(root), purpose="being written"):  # re-entrant: update_entry takes it too
        entry = next((e for e in registry.load_index(root) if e["id"] == entry_id), None)
        if entry is None:
            raise ValueError(f"No zoo entry {entry_id!r} in {registry.zoo_root(root)}.")
        local = registry.zoo_root(root) / entry["file"]
        if entry.get("origin") and not local.exists():
            raise ValueError(f"Zoo entry {entry_id!r} is already outside the zoo folder (origin {entry['origin']}).")
        target = Path(assets) / weight_files.asset_name(entry)
        target.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(target) as temporary:
            shutil.copyfile(local, temporary)
        if sha256_of(target) != entry["sha256"]:
            raise ValueError(f"{target} does not match the entry's sha256 after copying; the entry is unchanged.")
        size = target.stat().st_size

        def record(entry):
            entry["origin"] = f"{(base or weight_files.ASSET_BASE).rstrip('/')}/{target.name}"
            entry["file_bytes"] = size
            entry["released"] = False

        updated = registry.update_entry(entry_id, record, root)
        write_text_atomic(registry.zoo_root(root) / entry_id / "card.md", render_card(updated))
        local.unlink()
    return updated


def mark_released(entry_id, root=None):
    """Record that the weights of entry `entry_id` are uploaded to its `origin`; return the entry.

    From then on the entry downloads from there on first use, and its card and
    `keras-er list` say so.
    """
    from keras_er.files import folder_lock
    from keras_er.files import write_text_atomic
    from keras_er.zoo import registry
    from keras_er.zoo.cards import render_card

    def release(entry):
        if not entry.get("origin"):
            raise ValueError(f"Zoo entry {entry_id!r} is shipped in the zoo folder; it has no origin to release.")
        entry["released"] = True

    with folder_lock(registry.zoo_root(root), purpose="being written"):
        updated = registry.update_entry(entry_id, release, root)
        write_text_atomic(registry.zoo_root(root) / entry_id / "card.md", render_card(updated))
    return updated
