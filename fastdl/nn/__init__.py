"""Layers and containers (``fastdl.nn``), shaped like ``torch.nn``."""
from __future__ import annotations

from . import utils
from .layers import (BCEWithLogitsLoss, CrossEntropyLoss, Dropout, Flatten, Identity, Linear, LogSoftmax,
                     MSELoss, NLLLoss, ReLU, Sigmoid, Softmax, Tanh)
from .module import Module, ModuleList, Parameter, Sequential

__all__ = [
    "Module", "ModuleList", "Parameter", "Sequential", "Identity", "Linear", "ReLU", "Tanh", "Sigmoid",
    "Softmax", "LogSoftmax", "Dropout", "Flatten", "CrossEntropyLoss", "NLLLoss", "MSELoss",
    "BCEWithLogitsLoss", "utils",
]
