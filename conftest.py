"""Doctest namespace: the library's docstring examples run with these names (as a user would type them)."""

import pytest


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    import keras
    import numpy as np

    import keras_er

    doctest_namespace.update(keras=keras, np=np, keras_er=keras_er)
