"""Optimizers (``fastdl.optim``) with PyTorch's signatures and update rules, and LR schedules."""
from __future__ import annotations

from . import lr_scheduler
from .adam import Adam, AdamW, RMSprop
from .adaptive import Adadelta, Adagrad, Adamax, NAdam, RAdam
from .lbfgs import LBFGS
from .ema import ExponentialMovingAverage
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam", "LBFGS",
           "ExponentialMovingAverage", "lr_scheduler"]
