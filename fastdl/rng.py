"""The library's random state: every random draw (init, dropout masks,
shuffling, sampling) comes from here, so ``manual_seed(n)`` repeats a run."""
from __future__ import annotations

import numpy as np

_gen = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Seed every random draw of fastdl; returns the generator."""
    global _gen
    seed = int(seed)
    if seed < 0:
        raise ValueError(f"manual_seed: seed must be >= 0, got {seed}")
    _gen = np.random.default_rng(seed)
    return _gen


def generator() -> np.random.Generator:
    return _gen


def next_seed() -> int:
    """A fresh 63-bit seed for a native counter-based generator."""
    return int(_gen.integers(0, 2**63 - 1))


def get_state() -> dict:
    return _gen.bit_generator.state


def set_state(state: dict) -> None:
    _gen.bit_generator.state = state
