"""Activations (relu, tanh, sigmoid) and dropout with a counter-based mask."""
from __future__ import annotations

import numpy as np

from ._checks import _array, _float, _mask, _same_dtype, _same_shape, _scalars, _want_alloc


def relu_forward(x):
    """y = max(x, 0); NaN stays NaN."""
    x = _float(x, "relu_forward", "x")
    return np.where(x < 0, np.zeros((), x.dtype), x)


def _grad_check(gy, y, fn):
    """gy and y of one float dtype and shape: the arguments of every activation's backward."""
    gy, y = _array(gy, fn, "gy"), _float(y, fn, "y")
    _same_dtype(y, "y", gy, "gy", fn)
    _same_shape(y, "y", gy, "gy", fn)
    return gy, y


def relu_backward(gy, y):
    """gx = gy where y > 0, else 0."""
    gy, y = _grad_check(gy, y, "relu_backward")
    return np.where(y > 0, gy, np.zeros((), y.dtype)).astype(y.dtype)


def tanh_forward(x):
    """y = tanh(x)."""
    return np.tanh(_float(x, "tanh_forward", "x"))


def tanh_backward(gy, y):
    """gx = gy (1 - y^2)."""
    gy, y = _grad_check(gy, y, "tanh_backward")
    return (gy * (1 - y * y)).astype(y.dtype)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), computed without overflow."""
    x = _float(x, "sigmoid_forward", "x")
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def sigmoid_backward(gy, y):
    """gx = gy y (1 - y)."""
    gy, y = _grad_check(gy, y, "sigmoid_backward")
    return (gy * y * (1 - y)).astype(y.dtype)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@_scalars(shape="ints", p="float", seed="int")
def dropout_mask(shape, p, seed):
    """Keep-mask (uint8) of inverted dropout: u_i >= p with u_i = splitmix64(seed + (i+1) golden) / 2^64.

    Counter-based, so it is the same for any thread count and for both backends.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout_mask: p must be in [0, 1], got {p}")
    if seed < 0:
        raise ValueError(f"dropout_mask: seed must be >= 0, got {seed}")
    if any(s < 0 for s in shape):
        raise ValueError("dropout_mask: shape has a negative size")
    _want_alloc(shape, "dropout_mask", "the mask", itemsize=1)
    n = int(np.prod(shape, dtype=np.int64))
    out = np.empty(n, np.uint8)
    for b in range(0, n, 1 << 20):  # in chunks: the temporaries stay small whatever the mask's size
        i = np.arange(b + 1, min(n, b + (1 << 20)) + 1, dtype=np.uint64)
        h = _splitmix64(np.uint64(seed) + i * _GOLDEN)
        out[b:b + len(i)] = (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0) >= p
    return out.reshape(shape)


@_scalars(scale="float")
def dropout_apply(x, mask, scale):
    """y = x * mask * scale (inverted dropout; also its backward)."""
    x = _float(x, "dropout_apply", "x")
    mask = _mask(mask, x, "dropout_apply")
    with np.errstate(over="ignore"):
        if not np.isfinite(x.dtype.type(scale)):
            raise ValueError(f"dropout_apply: scale must be finite in the input's dtype, got {scale}")
    return (x * (mask * x.dtype.type(scale))).astype(x.dtype)
