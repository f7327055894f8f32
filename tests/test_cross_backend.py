"""The promise: the same masks and the same zoo logits on TensorFlow, PyTorch and JAX.

Each backend runs in its own process (Keras fixes the backend at import).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_er import BACKENDS
from keras_er.zoo import registry
from tests.helpers import first_backend_pass_only

REPO = Path(__file__).resolve().parents[1]

pytestmark = first_backend_pass_only

SCRIPT = """
import hashlib, json, sys
import numpy as np, keras, keras_er
from keras_er.masks import masked_layers
hashes = {}
for scheme in ("erk", "uniform", "balanced", "pyramidal"):
    model = keras_er.zoo.build("resnet20", scheme, 0.05, pretrained=None, seed=11)
    digest = hashlib.sha256()
    for layer in masked_layers(model):
        digest.update(keras.ops.convert_to_numpy(layer.mask).astype(np.uint8).tobytes())
    hashes[scheme] = digest.hexdigest()
# SET's criterion is data-free: one update on the same published weights moves the same weights everywhere.
from keras_er import dst
model = keras_er.zoo.load("resnet20_erk_d0.1_cifar10", include_preprocessing=False)
for key in ("flagship", "after_set_update"):
    digest = hashlib.sha256()
    for layer in masked_layers(model):
        digest.update(keras.ops.convert_to_numpy(layer.mask).astype(np.uint8).tobytes())
    hashes[key] = digest.hexdigest()
    update = dst.SET(update_every=1, total_steps=1000, seed=3)
    update.set_model(model)
    update.update(step=10)
logits = {}
for entry in keras_er.zoo.registry.load_index():
    if not keras_er.zoo.weight_files.available_offline(entry):
        continue  # weights outside the wheel, not in the Keras cache here (CI)
    model = keras_er.zoo.load(entry["id"])  # by id: DST and pruned entries too
    batch = keras_er.zoo.reference_pixels(entry)  # zoo models take raw pixels
    logits[entry["id"]] = keras.ops.convert_to_numpy(model(batch, training=False))
np.savez(sys.argv[1], **logits)
print(json.dumps(hashes))
"""


@pytest.fixture(scope="module")
def per_backend(tmp_path_factory):
    """{backend: (mask hashes per scheme, {zoo id: logits})}, one process each."""
    folder = tmp_path_factory.mktemp("cross_backend")
    results = {}
    for backend in BACKENDS:
        env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
        env["KERAS_ER_DOWNLOAD_BASE"] = str(folder / "no_network")  # external weights: the cache's or none
        path = folder / f"{backend}.npz"
        done = subprocess.run([sys.executable, "-c", SCRIPT, str(path)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        results[backend] = (json.loads(done.stdout.strip().splitlines()[-1]), dict(np.load(path)))
    return results


@pytest.mark.cross_backend
def test_same_seed_gives_bit_identical_masks_and_set_updates_in_every_backend(per_backend):
    hashes = [per_backend[backend][0] for backend in BACKENDS]
    assert hashes[0] == hashes[1] == hashes[2]
    schemes = ("erk", "uniform", "balanced", "pyramidal")
    assert len({hashes[0][scheme] for scheme in schemes}) == 4, "each scheme draws different masks"
    assert hashes[0]["after_set_update"] != hashes[0]["flagship"], "the SET update moved weights"


@pytest.mark.cross_backend
@pytest.mark.skipif(not registry.load_index(), reason="the zoo has no entries")
def test_every_zoo_entry_gives_the_same_logits_in_every_backend(per_backend):
    shipped = {entry["id"] for entry in registry.load_index() if not entry.get("origin")}
    logits = {backend: per_backend[backend][1] for backend in BACKENDS}
    ids = sorted(logits[BACKENDS[0]])
    assert all(sorted(logits[backend]) == ids for backend in BACKENDS)
    assert shipped <= set(ids), "every entry the wheel ships is compared"
    worst = max(np.abs(logits[a][i] - logits[b][i]).max() for i in ids for a in BACKENDS for b in BACKENDS)
    print(f"max cross-backend logit difference: {worst:.2e}")
    assert worst < 1e-4
