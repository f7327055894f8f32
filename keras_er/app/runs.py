"""Run folders: what `keras-er train` writes, and how a run is rebuilt from one.

A run folder holds `config.json` (what model, on what data), `recipe.json`
(how it is trained), `log.csv`, epoch backups, and when finished
`model.weights.h5`, `summary.json` and `curves.png`. It is locked while a
`train` writes to it and checked before anything is written.

A run's model takes raw pixels and normalises them itself, as every model
keras_er builds; its config says so (`"inputs": "pixels"`). A folder without
that field was trained as a bare network on normalised batches: it resumes
exactly so, and `load_run` puts the raw-pixel front on its trained network,
so evaluating and exporting it work as for any run.
"""

import contextlib
import json
import shlex
import time
from pathlib import Path

from keras_er import arguments
from keras_er.files import json_text

CONFIG_KEYS = ("model", "scheme", "density", "popup", "popup_density", "dataset", "seed", "limit")
# `config["inputs"]`: what the run's model takes. Run folders without the field hold a bare network.
RAW_PIXELS, NORMALISED = "pixels", "normalised"


def config_from_args(args):
    """The run's `config.json` fields from parsed `keras-er train` arguments.

    `dst` and `prune` are None for a plain ER run (and absent from older run
    folders, which reads the same).
    """
    config = {key: getattr(args, key) for key in CONFIG_KEYS}
    config["inputs"] = RAW_PIXELS
    config["dst"] = None
    if getattr(args, "dst", None):
        config["dst"] = {
            "method": args.dst,
            "update_every": args.update_every,
            "drop_fraction": args.drop_fraction,
            "end_fraction": args.end_fraction,
        }
    config["prune"] = None
    if getattr(args, "prune", None):
        config["prune"] = {"method": args.prune, "scope": args.prune_scope, "iterations": args.prune_iterations}
    return config


def recipe_from_args(args):
    from keras_er.training.recipe import Recipe

    warmup = min(1, args.epochs - 1) if args.warmup_epochs is None else args.warmup_epochs
    return Recipe(
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        weight_decay=args.weight_decay,
        seed=args.seed,
        label_smoothing=args.label_smoothing,
        warmup_epochs=warmup,
    )


def run_inputs(config):
    """What the model of the run `config` takes: `RAW_PIXELS`, or `NORMALISED` for folders without the field."""
    inputs = config.get("inputs", NORMALISED)
    if inputs not in (RAW_PIXELS, NORMALISED):
        raise ValueError(f"The run's config.json has inputs {inputs!r}; expected {RAW_PIXELS!r} or {NORMALISED!r}.")
    return inputs


def build_model(config, pretrained=None):
    """The model a run's `config` describes (the zoo's builder; raw pixels in unless the run is a bare network)."""
    from keras_er import zoo
    from keras_er.data.specs import get_spec

    spec = get_spec(config["dataset"])
    pruned = bool(config.get("prune"))  # all-ones masks first; `prune` (or the weight file) sets them
    raw = run_inputs(config) == RAW_PIXELS
    return zoo.build(
        config["model"],
        "uniform" if pruned else config["scheme"],
        1.0 if pruned else config["density"],
        pretrained=pretrained,
        seed=config["seed"],
        popup=config["popup"],
        popup_density=config["popup_density"],
        input_shape=spec.shape,
        classes=spec.classes,
        include_preprocessing=raw,
        dataset=config["dataset"] if raw and pretrained is None else None,
    )


def train_run(config, recipe, out, resume=False, argv=(), devices=None):
    """Train the model `config` describes with `recipe` into the run folder `out`.

    Everything is checked before the first write; the folder is locked while
    training. `devices`: train data-parallel on that many devices with the
    backend's engine (`keras_er.training.distribute`); only the chief process
    writes the folder. Returns the final epoch's metrics (None in the other processes).
    """
    import keras

    from keras_er import data
    from keras_er import training
    from keras_er.app import plotting
    from keras_er.files import folder_lock
    from keras_er.files import write_text_atomic
    from keras_er.masks.schemes import validate_density
    from keras_er.training import distribute
    from keras_er.training.checkpoint import has_backup
    from keras_er.training.checkpoint import save_weights_atomic
    from keras_er.training.loop import check_run_folder

    out = Path(out)
    if resume:  # a folder keeps the pixel convention it was started with
        config = {**config, "inputs": _saved_inputs(out, config)}
    if config["scheme"] != "dense":
        validate_density(config["density"])  # before the run folder is created
    check_config_values(config)
    check_sparse_training(config)
    several = devices not in (None, 1) or distribute.launched()  # one process of several: always distributed
    engine = distribute.data_parallel(devices) if several else distribute.Engine()
    chief = engine.is_chief
    if chief:
        check_config(out, config, resume)  # before the lock creates the folder
    with folder_lock(out, wait=False, purpose="training") if chief else contextlib.nullcontext():
        if chief:
            check_config(out, config, resume)  # again, now that no one else writes
            check_run_folder(out, recipe, resume)  # before anything is written
        # Masks are seeded on their own; this seeds the kernel initialisers, so the
        # command in the card rebuilds the same initial model (on the same backend).
        keras.utils.set_random_seed(config["seed"])
        with engine.scope():
            model = build_model(config)
        normalised = run_inputs(config) == NORMALISED

        def train_batches(normalize):
            options = {"seed": config["seed"], "limit": config["limit"], "normalize": normalize}
            return data.load(config["dataset"], "train", recipe.batch_size, **options)

        train_data = train_batches(normalised)
        test_data = data.load(config["dataset"], "test", 256, normalize=normalised)
        # A resumed run's masks come from its backup; a run killed before its first
        # backup prunes again (deterministic: same seed, same first batch, same masks).
        if config.get("prune") and not (resume and has_backup(out / "backup")):
            prune_at_start(model, config, train_batches(True))
        if not resume and chief:
            record = {**config, "command": "keras-er " + shlex.join(argv), "backend": keras.backend.backend()}
            write_text_atomic(out / "config.json", json_text({**record, **engine.describe()}))
        start = time.perf_counter()
        callbacks = dst_callbacks(config, train_data)
        history = training.fit(
            model,
            train_data,
            recipe,
            validation=test_data,
            out_dir=out,
            resume=resume,
            callbacks=callbacks,
            distribution=engine,
        )
        check_final_density(model, config)
        if not chief:
            return None
        save_weights_atomic(model, out / "model.weights.h5")
        final = {key: values[-1] for key, values in history.history.items()}
        summary = {
            "backend": keras.backend.backend(),
            "wall_seconds_this_session": time.perf_counter() - start,
            "final": final,
        }
        write_text_atomic(out / "summary.json", json_text(summary))
        plotting.learning_curves(out / "log.csv", out / "curves.png")
    return final


def check_config_values(config):
    """Refuse a bad seed, limit or popup density before anything is written."""
    seed, limit = config["seed"], config["limit"]
    arguments.seed(seed, "--seed")
    if limit is not None:
        arguments.integer(limit, "--limit", minimum=1, unit=" (a number of training images)")
    if config["popup"]:
        from keras_er.masks.schemes import validate_density

        validate_density(config["popup_density"], name="--popup-density")


def check_sparse_training(config):
    """Refuse impossible combinations before anything is written."""
    if config["popup"] and config["scheme"] == "dense":
        raise ValueError(
            "--popup needs a sparse --scheme (erk, uniform, ...): popup selects "
            "weights inside an ER mask, and a dense model has none."
        )
    moves_masks = bool(config.get("dst") or config.get("prune"))
    if moves_masks and config["popup"]:
        raise ValueError("--dst and --prune set the masks of trained weights; --popup trains scores instead.")
    if moves_masks and config["scheme"] == "dense":
        raise ValueError("--dst and --prune need a sparse --scheme and --density, not dense.")
    if config.get("dst"):
        from keras_er.dst import schedule

        settings = config["dst"]
        schedule.check_arguments(settings["update_every"], settings["drop_fraction"], settings["end_fraction"])
    if config.get("prune") and config["prune"]["iterations"] < 1:
        raise ValueError(f"--prune-iterations must be a positive int; got {config['prune']['iterations']}.")


def check_final_density(model, config):
    """A trained sparse run must still have the density it was asked for (exact sampling and pruning)."""
    if config["scheme"] == "dense" or config["popup"]:
        return
    from keras_er.masks.model import summary

    report = summary(model, print_fn=None)
    masked = sum(1 for row in report["layers"] if row["masked"])
    # Exact sampling and pruning round each layer's count (to at least one weight): at most one weight a layer off.
    expected = config["density"] * report["size"]
    if abs(report["nonzeros"] - expected) > masked:
        raise ValueError(
            f"The trained model keeps {report['nonzeros']} of {report['size']} weights (density "
            f"{report['global_density']:.4f}), where the run's density {config['density']:g} allows "
            f"{expected:.0f} +- {masked} (one weight a masked layer for rounding): its masks are not the run's "
            "(not restored from the backup, or changed by a callback). Not saved."
        )


def prune_at_start(model, config, train_data):
    """Prune the all-ones masked model to the run's density with the run's method.

    The network behind the raw-pixel front is pruned, on `train_data`'s normalised batches: the scores
    (and so the masks) are those of the network itself, whichever pixels the run's model takes.
    """
    from keras_er import pruning
    from keras_er.layers.pixels import without_preprocessing

    settings = config["prune"]
    pruning.prune(
        without_preprocessing(model),
        settings["method"],
        config["density"],
        scheme=config["scheme"] if settings["scope"] == "scheme" else None,
        data=train_data,
        seed=config["seed"],
        iterations=settings["iterations"],
    )


def dst_callbacks(config, train_data):
    """The run's dynamic-sparse-training callback, if any (RigL reads its gradient batches from `train_data`)."""
    settings = config.get("dst")
    if not settings:
        return []
    from keras_er import dst

    options = {key: value for key, value in settings.items() if key != "method"}
    return [dst.get(settings["method"], seed=config["seed"], data=train_data, **options)]


def check_config(out, config, resume):
    """Refuse a fresh run into a used folder, and a resume with other settings."""
    path = Path(out) / "config.json"
    if not resume:
        if path.exists():
            raise ValueError(
                f"{out} already holds a run (config.json); pass --resume to continue it, or choose another --out."
            )
        return
    if not path.is_file():
        raise ValueError(f"--resume: {out} holds no run to continue (no config.json).")
    from keras_er.training.loop import describe_changes

    saved = json.loads(path.read_text())
    details = describe_changes({"inputs": NORMALISED, **saved}, config)
    if details:
        raise ValueError(f"--resume with other settings than the run in {out}: {details}.")


def load_run(run):
    """`(config, model)` of a finished run folder, its trained weights loaded; the model takes raw pixels.

    A folder trained as a bare network (no `"inputs"` in its config) gets the raw-pixel front of its
    dataset after its weights are loaded.
    """
    run = Path(run)
    if not (run / "config.json").is_file() or not (run / "model.weights.h5").is_file():
        raise FileNotFoundError(f"{run} is not a finished run (config.json + model.weights.h5).")
    config = json.loads((run / "config.json").read_text())
    model = build_model(config)
    model.load_weights(str(run / "model.weights.h5"))
    if run_inputs(config) == NORMALISED:
        from keras_er.zoo.builder import input_normalization
        from keras_er.zoo.builder import with_preprocessing

        model = with_preprocessing(model, *input_normalization(dataset=config["dataset"]))
    return config, model


def _saved_inputs(out, config):
    """The pixel convention of the run folder `out` (the new run's, if it holds no readable config yet)."""
    path = Path(out) / "config.json"
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return config.get("inputs", RAW_PIXELS)  # check_config names the problem
    return run_inputs(saved)


def epoch_stats(log_csv):
    """Number of epochs and the median epoch wall time from a run's log.csv."""
    import statistics

    lines = Path(log_csv).read_text().strip().splitlines()
    column = lines[0].split(",").index("epoch_seconds")
    seconds = [float(line.split(",")[column]) for line in lines[1:]]
    return len(seconds), statistics.median(seconds) if seconds else 0.0
