"""A built wheel carries the zoo and loads its weights offline, outside the checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import keras_er

REPO = Path(__file__).resolve().parents[1]

LOAD_SCRIPT = """
import numpy as np, keras, keras_er
from keras_er.zoo import registry
root = registry.zoo_root()
assert root.parent.name == "keras_er" and root.name == "zoo_files", root
model = keras_er.zoo.resnet20_erk(0.1)  # pretrained=True: from the wheel
(entry,) = registry.load_index()
logits = keras.ops.convert_to_numpy(model(keras_er.zoo.reference_pixels(entry)))  # raw pixels in
assert np.abs(logits - np.array(entry["reference_logits"])).max() < 1e-4
print("loaded", entry["id"], "from", root)
"""


def test_wheel_ships_the_zoo_and_loads_weights_offline(tmp_path):
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(".git", "*.egg-info", "build", "__pycache__"))
    shutil.rmtree(source / "zoo")
    model = keras_er.zoo.resnet20_erk(0.1, pretrained=None, seed=1)
    entry = keras_er.zoo.export(model, "resnet20", "erk", 0.1, root=source / "zoo")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
    )
    (wheel,) = (tmp_path / "dist").glob("keras_er-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "keras_er/zoo_files/index.json" in names
    assert f"keras_er/zoo_files/{entry['file']}" in names
    for per_entry in ("config.json", "metadata.json", "card.md"):  # each entry folder describes itself
        assert f"keras_er/zoo_files/{entry['id']}/{per_entry}" in names
    assert not [name for name in names if name.endswith((".lock", ".tmp"))]
    top_level = {name.split("/")[0] for name in names if not name.startswith("keras_er-")}
    assert top_level == {"keras_er"}, "only the library ships: tools/, benchmarks/ and tests/ stay in the checkout"
    assert not [name for name in names if name.endswith(".py") and name.startswith("keras_er/zoo_files/")]
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site), str(wheel)],
        check=True,
    )
    env = {k: v for k, v in os.environ.items() if k != "KERAS_ER_ZOO_DIR"}
    env["PYTHONPATH"] = str(site)
    result = subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "loaded resnet20_erk_d0.1_cifar10" in result.stdout
