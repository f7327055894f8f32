"""The zoo folder survives kills and concurrent exporters; files are what they claim."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_er import zoo
from keras_er.masks import masked_layers
from keras_er.zoo import registry
from keras_er.zoo.weights_io import load_weights
from keras_er.zoo.weights_io import sha256_of
from tests.helpers import to_numpy

REPO = Path(__file__).resolve().parents[2]

EXPORTER = textwrap.dedent(
    """
    import sys
    from keras_er import zoo
    root, densities, rounds = sys.argv[1], [float(d) for d in sys.argv[2].split(",")], int(sys.argv[3])
    models = {d: zoo.build("resnet20", "erk", d, pretrained=None, seed=i)
              for i, d in enumerate(densities)}
    print("ready", flush=True)
    for i in range(rounds):
        d = densities[i % len(densities)]
        zoo.export(models[d], "resnet20", "erk", d, root=root, notes=f"round {i}", replace=True)
    """
)


def start_exporter(root, densities, rounds):
    return subprocess.Popen(
        [sys.executable, "-c", EXPORTER, str(root), ",".join(map(str, densities)), str(rounds)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def assert_zoo_is_whole(root, expected_ids=None):
    entries = registry.load_index(root)  # parses: not truncated
    ids = {entry["id"] for entry in entries}
    if expected_ids is not None:
        assert ids == set(expected_ids)
    for entry in entries:
        assert sha256_of(Path(root) / entry["file"]) == entry["sha256"], entry["id"]
    return ids


def test_killed_exporter_leaves_every_indexed_entry_loadable(tmp_path):
    rng = random.Random(0)
    for _ in range(3):
        exporter = start_exporter(tmp_path, [0.1, 0.2], rounds=1000)
        assert exporter.stdout.readline().strip() == "ready", exporter.stderr.read()
        while not (tmp_path / "index.json").exists():
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 1.5))
        exporter.send_signal(signal.SIGKILL)
        exporter.wait()
        assert_zoo_is_whole(tmp_path)
    ids = assert_zoo_is_whole(tmp_path)
    entry = registry.load_index(tmp_path)[0]
    model = zoo.build("resnet20", "erk", entry["density"], pretrained=None)
    load_weights(model, tmp_path / entry["file"], sha256=entry["sha256"])
    assert ids


def test_two_concurrent_exporters_lose_no_entry(tmp_path):
    exporters = [start_exporter(tmp_path, [d], rounds=4) for d in (0.1, 0.2)]
    for exporter in exporters:
        assert exporter.wait(timeout=600) == 0, exporter.stderr.read()[-2000:]
    assert_zoo_is_whole(tmp_path, {"resnet20_erk_d0.1_cifar10", "resnet20_erk_d0.2_cifar10"})
    leftovers = [p.name for p in tmp_path.rglob("*") if p.name.endswith(".tmp") or "staged" in p.name]
    assert leftovers == []


def test_re_export_replaces_the_file_and_removes_the_old_one(tmp_path):
    model = zoo.build("resnet20", "erk", 0.1, pretrained=None, seed=0)
    first = zoo.export(model, "resnet20", "erk", 0.1, root=tmp_path)
    other = zoo.build("resnet20", "erk", 0.1, pretrained=None, seed=1)
    second = zoo.export(other, "resnet20", "erk", 0.1, root=tmp_path, replace=True)
    assert first["file"] != second["file"]
    files = sorted(p.name for p in (tmp_path / second["id"]).glob("*.npz"))
    assert files == [second["file"].split("/")[1]]
    assert_zoo_is_whole(tmp_path, {second["id"]})


def test_a_file_swapped_for_another_entrys_is_refused(tmp_path):
    for density, seed in ((0.1, 0), (0.2, 1)):
        model = zoo.build("resnet20", "erk", density, pretrained=None, seed=seed)
        zoo.export(model, "resnet20", "erk", density, root=tmp_path)
    entries = {e["density"]: e for e in registry.load_index(tmp_path)}
    # Point the 0.1 entry at the 0.2 entry's file, checksum updated with it.
    swapped = dict(entries[0.1], file=entries[0.2]["file"], sha256=entries[0.2]["sha256"])
    registry.write_entry(swapped, tmp_path)
    with pytest.raises(ValueError, match=r"not the requested weights \(id: file has 'resnet20_erk_d0.2"):
        zoo.resnet20_erk(0.1, root=tmp_path)


def test_a_bfloat16_model_exports_and_loads_back(tmp_path):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("bfloat16")
    try:
        model = zoo.build("resnet20", "erk", 0.1, pretrained=None)
        entry = zoo.export(model, "resnet20", "erk", 0.1, root=tmp_path)
        loaded = zoo.resnet20_erk(0.1, root=tmp_path)
    finally:
        keras.config.set_dtype_policy(previous)
    for a, b in zip(model.weights, loaded.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(keras.ops.cast(a, "float32")),
            keras.ops.convert_to_numpy(keras.ops.cast(b, "float32")),
        )
    assert entry["id"] == "resnet20_erk_d0.1_cifar10"


def _zoo_bytes(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def test_an_export_over_an_existing_entry_is_refused_and_changes_nothing(tmp_path):
    first = zoo.export(
        zoo.build("resnet20", "erk", 0.1, pretrained=None, seed=0), "resnet20", "erk", 0.1, root=tmp_path
    )
    before = _zoo_bytes(tmp_path)
    other = zoo.build("resnet20", "erk", 0.1, pretrained=None, seed=1)
    with pytest.raises(ValueError, match=rf"already holds {first['id']} .*replace=True"):
        zoo.export(other, "resnet20", "erk", 0.1, root=tmp_path)
    assert _zoo_bytes(tmp_path) == before  # index, card and weights byte-identical


def test_a_seed_other_than_0_is_its_own_entry_and_seed_0_stays_the_default(tmp_path):
    seed0 = zoo.export(
        zoo.build("resnet20", "erk", 0.1, pretrained=None, seed=0), "resnet20", "erk", 0.1, root=tmp_path
    )
    seed1 = zoo.export(
        zoo.build("resnet20", "erk", 0.1, pretrained=None, seed=1), "resnet20", "erk", 0.1, seed=1, root=tmp_path
    )
    assert (seed0["id"], seed1["id"]) == ("resnet20_erk_d0.1_cifar10", "resnet20_erk_d0.1_cifar10_s1")
    assert registry.find_entry("resnet20", "erk", 0.1, False, None, root=tmp_path)["id"] == seed0["id"]
    loaded = {entry["id"]: zoo.load(entry["id"], root=tmp_path) for entry in (seed0, seed1)}
    first, second = (masked_layers(loaded[entry["id"]])[1].mask for entry in (seed0, seed1))
    assert (to_numpy(first) != to_numpy(second)).any(), "each id loads its own file's masks"
