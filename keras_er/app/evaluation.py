"""Accuracy of a zoo entry or a run on its dataset's test split, and recording it."""


def accuracy_report(model, dataset, limit=None, verbose=0):
    """Top-1, top-5 and per-class accuracy of `model` on `dataset`'s test split.

    A model keras_er built (the zoo's, a run's) gets the raw pixels it takes;
    a bare network (`include_preprocessing=False`) the normalised images
    `keras_er.data.load(..., normalize=True)` gives. `per_class` maps
    each class name of the dataset's spec (its label number where the spec
    names none) to its accuracy, for the classes among the images evaluated.
    `verbose` is `model.predict`'s (1: a progress bar).
    """
    import keras
    import numpy as np

    from keras_er import data
    from keras_er.data.specs import class_names
    from keras_er.zoo.builder import takes_raw_pixels

    x, y = data.load(dataset, "test", as_numpy=True, limit=limit, normalize=not takes_raw_pixels(model))
    logits = keras.ops.convert_to_numpy(model.predict(x, batch_size=256, verbose=verbose))
    top5 = np.argsort(-logits, axis=1)[:, :5]
    predicted = top5[:, 0]
    return {
        "dataset": dataset,
        "backend": keras.backend.backend(),
        "images": int(len(y)),
        "top1": float(np.mean(predicted == y)),
        "top5": float(np.mean((top5 == y[:, None]).any(axis=1))),
        "per_class": {
            name: round(float(np.mean(predicted[y == c] == c)), 4)
            for c, name in enumerate(class_names(dataset)[: logits.shape[1]])
            if (y == c).any()
        },
        # The subset the zoo tests re-check on every backend in CI.
        "top1_first1000": float(np.mean(predicted[:1000] == y[:1000])),
    }


def evaluate(zoo_id=None, run=None, limit=None, record=False, verbose=0):
    """The accuracy report of zoo entry `zoo_id` or of the finished run folder `run`.

    With `record=True` (zoo entries, full test set only) this backend's
    top-1 goes into the entry's metadata, the index and its card. `verbose`
    as in `accuracy_report`.
    """
    if (zoo_id is None) == (run is None):
        raise ValueError("Give exactly one of `zoo_id` and `run`.")
    if record and (zoo_id is None or limit):
        raise ValueError("--record needs --zoo and the full test set (no --limit).")
    if zoo_id is not None:
        from keras_er import zoo

        model = zoo.load(zoo_id)  # names the published entries if there is none
        entry = next(e for e in zoo.registry.load_index() if e["id"] == zoo_id)
        report = accuracy_report(model, entry["dataset"], limit, verbose=verbose)
        if record:
            record_accuracy(entry, report)
        return report
    from keras_er.app.runs import load_run

    config, model = load_run(run)
    return accuracy_report(model, config["dataset"], limit, verbose=verbose)


def record_accuracy(entry, report, root=None):
    """Write this backend's top-1 into the zoo entry, its index line and its card."""
    import keras

    from keras_er.files import folder_lock
    from keras_er.files import write_text_atomic
    from keras_er.zoo import registry
    from keras_er.zoo.cards import render_card

    backend = keras.backend.backend()

    def add_accuracy(current):
        if current["sha256"] != entry["sha256"]:
            raise ValueError(
                f"{entry['id']} was re-exported while it was evaluated; evaluate it again to record its accuracy."
            )
        current.setdefault("top1", {})[backend] = report["top1"]
        current.setdefault("top1_first1000", {})[backend] = report["top1_first1000"]

    with folder_lock(registry.zoo_root(root), purpose="being written"):
        updated = registry.update_entry(entry["id"], add_accuracy, root)
        write_text_atomic(registry.zoo_root(root) / entry["id"] / "card.md", render_card(updated))
    return updated
