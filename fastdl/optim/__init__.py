"""Optimizers (``fastdl.optim``) with PyTorch's signatures and update rules."""
from __future__ import annotations

from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD"]
