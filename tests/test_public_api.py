"""The declared API: what `__all__` and the docs name exists, is exported, and no attribute hides a module."""

import importlib
import json
import pkgutil
import re
import sys
from pathlib import Path

import pytest

import keras_er

REPO = Path(__file__).resolve().parents[1]
USER_DOCS = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
# The application (CLI, run folders, publishing) is documented but is not library API.
APPLICATION = "app"
REFERENCE = re.compile(r"keras_er(?:\.[A-Za-z_]\w*)+")


def _resolve(dotted):
    """The object `dotted` names: its longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:end]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[end:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(dotted)


def _references():
    found = set()
    for path in USER_DOCS:
        found.update((path.name, ref) for ref in REFERENCE.findall(path.read_text()))
    for path in NOTEBOOKS:
        cells = json.loads(path.read_text())["cells"]
        found.update((path.name, ref) for cell in cells for ref in REFERENCE.findall("".join(cell["source"])))
    # package data and file names, not Python objects
    return sorted((name, ref) for name, ref in found if not ref.startswith("keras_er.zoo_files"))


def _public_packages():
    for name in keras_er.__all__:
        value = getattr(keras_er, name)
        if hasattr(value, "__path__"):
            yield value


@pytest.mark.parametrize("package", [keras_er, *_public_packages()], ids=lambda package: package.__name__)
def test_every_name_in_all_exists(package):
    missing = [name for name in package.__all__ if not hasattr(package, name)]
    assert not missing, f"{package.__name__}.__all__ names what it does not have: {missing}"


def test_what_the_docs_and_notebooks_name_exists_and_is_exported():
    references = _references()
    assert len(references) > 50  # the docs do name the API
    for source, reference in references:
        try:
            _resolve(reference)
        except (AttributeError, ModuleNotFoundError) as error:
            pytest.fail(f"{source} names {reference}, which does not exist ({error})")
        top = reference.split(".")[1]
        if source == "api.md":  # the reference pages name where each object is defined
            continue
        assert top in keras_er.__all__ or top == APPLICATION, (
            f"{source} names {reference}: keras_er.{top} is not exported"
        )


def test_no_package_attribute_hides_a_submodule():
    for package_info in pkgutil.walk_packages(keras_er.__path__, "keras_er."):
        if not package_info.ispkg:
            continue
        package = importlib.import_module(package_info.name)
        for module in pkgutil.iter_modules(package.__path__):
            full = f"{package.__name__}.{module.name}"
            importlib.import_module(full)
            assert getattr(package, module.name) is sys.modules[full], f"{package.__name__}.{module.name} is shadowed"
