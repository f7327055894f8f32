"""Every notebook runs end to end (smoke mode) on the backend under test."""

import json
import os
from pathlib import Path

import keras
import pytest

from keras_er import data

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
IDS = [path.stem for path in NOTEBOOKS]

pytestmark = pytest.mark.notebooks


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_notebook_runs_in_smoke_mode(path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    for name in ("cifar10", "fashion_mnist"):
        try:
            data.load_arrays(name, "test")
        except data.DatasetNotFoundError as error:
            pytest.skip(f"{name} is not available offline: {error}")
    monkeypatch.setenv("SMOKE", "1")
    monkeypatch.setenv("KERAS_BACKEND", keras.backend.backend())  # the kernel inherits it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    notebook = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    first_output = "".join(o.get("text", "") for o in notebook.cells[1].outputs)
    assert f"backend: {keras.backend.backend()} | smoke run: True" in first_output


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_shows_a_full_run(path):
    """GitHub shows the stored outputs: they must come from a full, error-free run."""
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    assert all(c["outputs"] for c in cells[:2]), "notebook committed without outputs"
    text = json.dumps([c["outputs"] for c in cells])
    assert "smoke run: False" in text
    assert '"output_type": "error"' not in text
    assert "image/png" in text, "plots missing: was it run with a non-inline matplotlib backend?"
