from __future__ import annotations

import numpy as np
import pytest

import fastdl


@pytest.fixture(autouse=True)
def _seed_and_backend():
    """Every test starts seeded, on the native backend, with grad mode on."""
    fastdl.manual_seed(0)
    fastdl.set_backend("native")
    fastdl.set_grad_enabled(True)
    yield
    fastdl.set_backend("native")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)
