"""softmax and log_softmax along one axis, with their gradients."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _array, _float, _same_dtype, _same_shape


def _axis_check(x, axis, fn):
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have at least 1 dimension")
    if not -x.ndim <= axis < x.ndim:
        raise IndexError(f"{fn}: axis {axis} is out of range for x of shape {x.shape}")


def _grad_check(gy, y, axis, fn):
    gy, y = _array(gy, fn, "gy"), _float(y, fn, "y")
    _same_dtype(y, "y", gy, "gy", fn)
    _same_shape(y, "y", gy, "gy", fn)
    _axis_check(y, axis, fn)
    return gy, y


@_scalars(axis="int")
def softmax_forward(x, axis=-1):
    """y = exp(x - max) / sum(exp(x - max)) along `axis`."""
    x = _float(x, "softmax_forward", "x")
    _axis_check(x, axis, "softmax_forward")
    if x.size == 0:
        return x.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isneginf(m), 0, m)
        e = np.exp(x - m)
        return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


@_scalars(axis="int")
def softmax_backward(gy, y, axis=-1):
    """gx = y (gy - sum(gy y))."""
    gy, y = _grad_check(gy, y, axis, "softmax_backward")
    return (y * (gy - np.sum(gy * y, axis=axis, keepdims=True))).astype(y.dtype)


@_scalars(axis="int")
def log_softmax_forward(x, axis=-1):
    """y = x - logsumexp(x) along `axis`."""
    x = _float(x, "log_softmax_forward", "x")
    _axis_check(x, axis, "log_softmax_forward")
    if x.size == 0:
        return x.copy()
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isneginf(m), 0, m)
        return (x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).astype(x.dtype)


@_scalars(axis="int")
def log_softmax_backward(gy, y, axis=-1):
    """gx = gy - exp(y) sum(gy)."""
    gy, y = _grad_check(gy, y, axis, "log_softmax_backward")
    return (gy - np.exp(y) * np.sum(gy, axis=axis, keepdims=True)).astype(y.dtype)
