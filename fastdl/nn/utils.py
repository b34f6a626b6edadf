"""Gradient clipping (``fastdl.nn.utils``)."""
from __future__ import annotations

import numpy as np

from ..tensor import Tensor


def _grads(parameters):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    return [p for p in parameters if p.grad is not None]


def clip_grad_norm_(parameters, max_norm: float, norm_type: float = 2.0) -> float:
    """Scale all gradients together so that their joint norm is at most ``max_norm``; returns the norm before."""
    ps = _grads(parameters)
    if not ps:
        return 0.0
    if norm_type == float("inf"):
        total = max(float(np.max(np.abs(p.grad.data))) for p in ps)
    else:
        total = float(sum(float(np.sum(np.abs(p.grad.data.astype(np.float64)) ** norm_type)) for p in ps)) ** (1.0 / norm_type)
    coef = max_norm / (total + 1e-6)
    if coef < 1.0:
        for p in ps:
            p.grad.data = p.grad.data * p.grad.dtype.type(coef)
    return total


def clip_grad_value_(parameters, clip_value: float) -> None:
    """Clamp every gradient entry to [-clip_value, clip_value]."""
    for p in _grads(parameters):
        p.grad.data = np.clip(p.grad.data, -clip_value, clip_value)


def freeze(module) -> None:
    """Stop training ``module``'s parameters (transfer learning: keep a pretrained trunk fixed)."""
    module.requires_grad_(False)


def unfreeze(module) -> None:
    module.requires_grad_(True)


def trainable_parameters(module) -> list:
    """The parameters that still require grad: what to give an optimizer after freezing."""
    return [p for p in module.parameters() if p.requires_grad]
