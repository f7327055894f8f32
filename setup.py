"""Package discovery: every `keras_er*` package, plus the top-level zoo/ shipped as keras_er.zoo_files.

pyproject.toml holds the metadata; a static list there would silently miss a new subpackage.
"""

from setuptools import find_packages
from setuptools import setup

setup(packages=[*find_packages(include=["keras_er", "keras_er.*"]), "keras_er.zoo_files"])
