"""What a dynamic sparse training update costs, amortised over training (one backend process).

    KERAS_BACKEND=tensorflow python -m benchmarks.worker --dst --out tf.json   # one backend
    python -m benchmarks dst --backends tensorflow                             # table + files

The same ERK-masked model (same start, same batches) trains one epoch of
`steps` steps at a time three ways: static (no callback), SET and RigL, each
with `update_every` steps between mask updates (default 100, so 3 updates in
a 300-step epoch). The methods take turns, one epoch each per round, so load
on the machine shifts them alike; each method's epoch time is the median over
rounds. The callbacks are given a run far longer than the benchmark, so every
update moves the schedule's initial fraction (0.3) of each layer's weights:
the most an update ever costs. The data are random images through
`keras_er.data.ImageBatches` (augmentation on), so no dataset is needed.
"""

import statistics
import time

import keras
import numpy as np

import keras_er
from keras_er.training.loop import compile_for_training

METHODS = ("static", "set", "rigl")
TARGET = 1.05  # issue target: RigL epoch time / static epoch time, update_every=100


class _Cycle(keras.utils.PyDataset):
    """`steps` batches, cycling through the batches of `base`."""

    def __init__(self, base, steps):
        super().__init__()
        self.base, self.steps = base, steps

    def __len__(self):
        return self.steps

    def __getitem__(self, index):
        return self.base[index % len(self.base)]


def synthetic_batches(steps, batch_size, distinct=8, seed=0):
    """A `steps`-batch dataset of random uint8 CIFAR-shaped images (`distinct` batches, cycled)."""
    rng = np.random.default_rng(seed)
    n = min(steps, distinct) * batch_size
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, n)
    base = keras_er.data.ImageBatches(
        images, labels, (125.3, 123.0, 113.9), (63.0, 62.1, 66.7), batch_size, shuffle=True, augment=True, seed=seed
    )
    return _Cycle(base, steps)


def callback(method, update_every, data, total_steps):
    if method == "static":
        return None
    kwargs = dict(update_every=update_every, seed=0, total_steps=total_steps)
    if method == "rigl":
        return keras_er.dst.RigL(data=data, **kwargs)
    return keras_er.dst.SET(**kwargs)


def measure(arch="resnet20", density=0.1, steps=300, update_every=100, batch_size=128, rounds=2):
    """Epoch time and images/s of static, SET and RigL training, and their ratios to static.

    Returns a dict: settings, `epoch_seconds` / `images_per_s` per method, `time_ratio`
    (method / static epoch time, for set and rigl), `updates_per_epoch`, and
    `seconds_per_update` (extra epoch time over static, per update).
    """
    if steps % update_every:
        raise ValueError(f"`steps` ({steps}) must be a multiple of `update_every` ({update_every}).")
    data = synthetic_batches(steps, batch_size)
    recipe = keras_er.training.Recipe(epochs=rounds + 1, batch_size=batch_size, warmup_epochs=0)
    # Far longer than the benchmark: the drop fraction stays at its start value (0.3).
    total_steps = 1000 * (rounds + 1) * steps
    models, callbacks, start = {}, {}, None
    for method in METHODS:
        model = keras_er.zoo.build(
            arch,
            "erk",
            density,
            pretrained=None,
            include_preprocessing=False,
            input_shape=(32, 32, 3),
            classes=10,
        )
        if start is None:
            start = model.get_weights()
        model.set_weights(start)
        compile_for_training(model, recipe, steps)
        models[method] = model
        callbacks[method] = callback(method, update_every, data, total_steps)
    # Warm-up: compile the train step (2 steps), then one update outside the timing (its first call
    # traces or compiles what the update needs).
    for method, model in models.items():
        extra = [callbacks[method]] if callbacks[method] else []
        model.fit(_Cycle(data.base, 2), epochs=1, shuffle=False, verbose=0, callbacks=extra)
        if callbacks[method]:
            callbacks[method].update(batch=0)
    before = {m: len(c.history) for m, c in callbacks.items() if c}
    times = {method: [] for method in METHODS}
    for r in range(rounds):
        order = METHODS[r % len(METHODS) :] + METHODS[: r % len(METHODS)]
        for method in order:
            extra = [callbacks[method]] if callbacks[method] else []
            start_time = time.perf_counter()
            models[method].fit(data, epochs=1, shuffle=False, verbose=0, callbacks=extra)
            times[method].append(time.perf_counter() - start_time)
    epoch = {method: statistics.median(values) for method, values in times.items()}
    updates = {m: (len(c.history) - before[m]) / rounds for m, c in callbacks.items() if c}
    return {
        "backend": keras.backend.backend(),
        "arch": arch,
        "density": density,
        "batch_size": batch_size,
        "steps": steps,
        "update_every": update_every,
        "rounds": rounds,
        "jit_compile": str(models["static"].jit_compile),
        "epoch_seconds": epoch,
        "epoch_seconds_all": times,
        "images_per_s": {m: steps * batch_size / t for m, t in epoch.items()},
        "time_ratio": {m: epoch[m] / epoch["static"] for m in METHODS if m != "static"},
        "updates_per_epoch": updates,
        "seconds_per_update": {m: (epoch[m] - epoch["static"]) / updates[m] for m in updates if updates[m]},
    }


def markdown(runs):
    """The table `python -m benchmarks dst` prints and writes (runs: a list of `measure` results)."""
    lines = [
        "| backend | model | steps × batch | update every | static img/s | SET img/s | RigL img/s "
        f"| SET / static time | RigL / static time (target ≤ {TARGET}) | s per update SET / RigL |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in runs:
        ips, ratio, cost = r["images_per_s"], r["time_ratio"], r["seconds_per_update"]
        lines.append(
            f"| {r['backend']} | {r['arch']} ERK {r['density']:g} | {r['steps']} × {r['batch_size']} "
            f"| {r['update_every']} | {ips['static']:.0f} | {ips['set']:.0f} | {ips['rigl']:.0f} "
            f"| {ratio['set']:.3f} | {ratio['rigl']:.3f} | {cost.get('set', float('nan')):.2f} / "
            f"{cost.get('rigl', float('nan')):.2f} |"
        )
    lines.append("")
    lines.append(
        "Epoch = `steps` steps; each method's epoch time is the median of its rounds, methods taking turns. "
        "s per update = (method - static epoch time) / updates per epoch, so it carries the timing noise "
        "(negative: noise). Epoch seconds per round:"
    )
    for r in runs:
        rounds = "; ".join(
            f"{name} " + ", ".join(f"{t:.1f}" for t in r["epoch_seconds_all"][key])
            for key, name in (("static", "static"), ("set", "SET"), ("rigl", "RigL"))
        )
        lines.append(f"- {r['backend']} {r['arch']}: {rounds}.")
    return "\n".join(lines) + "\n"
