"""Every ```python block of docs/tfmot_migration.md runs as it is, on the backend under test."""

import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import keras_er

REPO = Path(__file__).resolve().parents[1]
PAGE = REPO / "docs" / "tfmot_migration.md"
TFMOT_APIS = (
    "prune_low_magnitude",
    "PolynomialDecay",
    "ConstantSparsity",
    "UpdatePruningStep",
    "PruningSummaries",
    "strip_pruning",
    "prune_scope",
    "PrunableLayer",
    "sparsity_m_by_n",
)


def python_blocks(path):
    """(first line number, code) of each ```python block."""
    text = path.read_text()
    return [
        (text[: match.start()].count("\n") + 2, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)
    ]


BLOCKS = python_blocks(PAGE)


def test_the_page_has_examples_and_maps_every_tfmot_pruning_api():
    headings = " ".join(re.findall(r"^## (.*)$", PAGE.read_text(), flags=re.MULTILINE))
    assert [api for api in TFMOT_APIS if f"`{api}`" not in headings] == []  # each has its section
    assert len(BLOCKS) >= len(TFMOT_APIS) - 1  # UpdatePruningStep has nothing to run


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_python_block_runs(line, code, tmp_path, monkeypatch):
    from keras_er import replacements

    registered = set(replacements.REPLACEMENTS)
    monkeypatch.chdir(tmp_path)  # examples write their files (log.csv, *.keras) here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # sparsify's note on weights left dense
            exec(compile(code, f"{PAGE.name}:{line}", "exec"), {"__name__": f"docs_example_{line}"})
    finally:
        for keras_class in set(replacements.REPLACEMENTS) - registered:  # what the example registered
            replacements.unregister_replacement(keras_class)


def test_loading_a_masked_model_needs_keras_er_layers_imported(tmp_path):
    """What the page says under `prune_scope`: `import keras_er` alone does not register the masked layers."""
    import keras

    model = keras_er.sparsify(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), density=0.5)
    path = tmp_path / "sparse.keras"
    model.save(path)
    load = f"import keras; keras.saving.load_model({str(path)!r})"
    alone = subprocess.run([sys.executable, "-c", f"import keras_er; {load}"], capture_output=True, text=True, cwd=REPO)
    assert alone.returncode != 0 and "Could not locate class 'MaskedDense'" in alone.stderr
    with_layers = subprocess.run(
        [sys.executable, "-c", f"import keras_er.layers; {load}"], capture_output=True, text=True, cwd=REPO
    )
    assert with_layers.returncode == 0, with_layers.stderr[-2000:]
