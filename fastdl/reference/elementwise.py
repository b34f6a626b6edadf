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


ACTIVATIONS = ("leaky_relu", "elu", "selu", "celu", "gelu", "gelu_tanh", "silu", "mish", "softplus", "hardtanh",
               "hardsigmoid", "hardswish")
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772848170429916717, 1.0507009873554804934193349852946
_SQRT_2_PI = 0.79788456080286535587989211986876  # sqrt(2 / pi)


def _act_args(kind, alpha, beta, fn):
    if kind not in ACTIVATIONS:
        raise ValueError(f"{fn}: unknown activation kind '{kind}'")
    if not (np.isfinite(alpha) and np.isfinite(beta)):
        raise ValueError(f"{fn}: alpha and beta must be finite, got {alpha:f} and {beta:f}")
    if kind in ("celu", "softplus") and alpha == 0.0:
        raise ValueError(f"{fn}: alpha must be nonzero for {kind}")
    if kind == "hardtanh" and alpha > beta:
        raise ValueError(f"{fn}: hardtanh needs alpha (min) <= beta (max), got {alpha:f} > {beta:f}")


def _erf(x):
    import math
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64)) if x.size else x.astype(np.float64)


def _sig(x):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-x))


def _softplus20(x):
    with np.errstate(over="ignore"):
        return np.where(x > 20, x, np.log1p(np.exp(np.minimum(x, 20))))


@_scalars(kind="str", alpha="float", beta="float")
def activation_forward(x, kind, alpha=0.0, beta=0.0):
    """PyTorch's parametrised activations by ``kind`` (see csrc/elementwise.h for alpha and beta)."""
    _act_args(kind, alpha, beta, "activation_forward")
    x = _float(x, "activation_forward", "x")
    a, b = x.dtype.type(alpha), x.dtype.type(beta)
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "leaky_relu":
            y = np.where(x > 0, x, a * x)
        elif kind == "elu":
            y = np.where(x > 0, x, a * np.expm1(np.minimum(x, 0)))
        elif kind == "selu":
            y = _SELU_SCALE * np.where(x > 0, x, _SELU_ALPHA * np.expm1(np.minimum(x, 0)))
        elif kind == "celu":
            y = np.where(x > 0, x, a * np.expm1(np.minimum(x, 0) / a))
        elif kind == "gelu":
            y = 0.5 * x * (1 + _erf(x / np.sqrt(2.0)))
        elif kind == "gelu_tanh":
            y = 0.5 * x * (1 + np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3)))
        elif kind == "silu":
            y = x * _sig(x)
        elif kind == "mish":
            y = x * np.tanh(_softplus20(x))
        elif kind == "softplus":
            y = np.where(x * a > b, x, np.log1p(np.exp(np.where(x * a > b, 0, a * x))) / a)
        elif kind == "hardtanh":
            y = np.where(x < a, a, np.where(x > b, b, x))
        elif kind == "hardsigmoid":
            y = np.where(x <= -3, 0, np.where(x >= 3, 1, x / 6 + 0.5))
        else:  # hardswish
            y = np.where(x <= -3, 0, np.where(x >= 3, x, x * (x + 3) / 6))
    return np.asarray(y).astype(x.dtype)


@_scalars(kind="str", alpha="float", beta="float")
def activation_backward(gy, x, kind, alpha=0.0, beta=0.0):
    """gx = gy f'(x) for the activation ``kind``; NaN in x gives NaN."""
    _act_args(kind, alpha, beta, "activation_backward")
    gy, x = _array(gy, "activation_backward", "gy"), _float(x, "activation_backward", "x")
    _same_dtype(x, "x", gy, "gy", "activation_backward")
    _same_shape(x, "x", gy, "gy", "activation_backward")
    a, b = x.dtype.type(alpha), x.dtype.type(beta)
    nan = np.isnan(x)
    with np.errstate(over="ignore", invalid="ignore"):
        if kind == "leaky_relu":
            d = np.where(x > 0, 1, a)
        elif kind == "elu":
            d = np.where(x > 0, 1, a * np.exp(np.minimum(x, 0)))
        elif kind == "selu":
            d = np.where(x > 0, _SELU_SCALE, _SELU_SCALE * _SELU_ALPHA * np.exp(np.minimum(x, 0)))
        elif kind == "celu":
            d = np.where(x > 0, 1, np.exp(np.minimum(x, 0) / a))
        elif kind == "gelu":
            d = 0.5 * (1 + _erf(x / np.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi)
        elif kind == "gelu_tanh":
            t = np.tanh(_SQRT_2_PI * (x + 0.044715 * x ** 3))
            d = 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * _SQRT_2_PI * (1 + 3 * 0.044715 * x * x)
        elif kind == "silu":
            s = _sig(x)
            d = s * (1 + x * (1 - s))
        elif kind == "mish":
            t = np.tanh(_softplus20(x))
            d = t + x * (1 - t * t) * _sig(x)
        elif kind == "softplus":
            d = np.where(x * a > b, 1, _sig(a * x))
        elif kind == "hardtanh":
            d = ((x > a) & (x < b)).astype(x.dtype)
        elif kind == "hardsigmoid":
            d = np.where((x > -3) & (x < 3), 1 / 6, 0)
        else:  # hardswish
            d = np.where(x <= -3, 0, np.where(x < 3, x / 3 + 0.5, 1))
        d = np.where(nan, np.nan, d)
    return (gy * d).astype(x.dtype)
