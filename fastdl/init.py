"""Weight initialisation, in place on Tensors/Parameters (under no_grad).

Fans follow PyTorch: for a weight (out, in, *kernel), fan_in = in * prod(kernel)
and fan_out = out * prod(kernel).

The curriculum's "Xavier" initialisation draws with variance 1/fan_in (for
tanh); Glorot & Bengio's original uses 2/(fan_in + fan_out), which is what
PyTorch calls ``xavier_normal_`` and what ``xavier_*`` mean here too (this
module is also ``fastdl.nn.init``).  The curriculum's variant has its own name:

=================================  =========================  ==========================
fastdl                             variance                   PyTorch equivalent
=================================  =========================  ==========================
``he_normal_``                     2 / fan_in                 ``kaiming_normal_`` (relu)
``lecun_normal_`` =                1 / fan_in  (curriculum)   —  (LeCun normal)
``xavier_normal_(variant="fan_in")``
``xavier_normal_`` (default)       2 / (fan_in + fan_out)     ``xavier_normal_``
= ``glorot_normal_``
=================================  =========================  ==========================
"""
from __future__ import annotations

import math

import numpy as np

from .backend import to_device
from .rng import generator
from .tensor import Tensor


def _fans(t: Tensor):
    shape = t.shape
    if len(shape) < 2:
        raise ValueError(f"init: fan in/out need a tensor with at least 2 dimensions, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _fill(t: Tensor, values) -> Tensor:
    """``t``'s values replaced (drawn on the host, as the CPU run draws them), on ``t``'s device."""
    host = np.asarray(values, dtype=t.dtype).reshape(t.shape)
    if not host.flags.c_contiguous or not host.flags.writeable:
        host = np.array(host, order="C")
    t.data = to_device(host, t.device)
    return t


def calculate_gain(nonlinearity: str, param=None) -> float:
    gains = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5.0 / 3, "relu": math.sqrt(2.0), "conv2d": 1.0}
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity not in gains:
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}")
    return gains[nonlinearity]


def zeros_(t: Tensor) -> Tensor:
    return _fill(t, np.zeros(t.shape))


def ones_(t: Tensor) -> Tensor:
    return _fill(t, np.ones(t.shape))


def constant_(t: Tensor, value: float) -> Tensor:
    return _fill(t, np.full(t.shape, value))


def _draw_dtype(t: Tensor):
    return np.float32 if t.dtype == np.float32 else np.float64  # float32 draws: twice as fast for big layers


def normal_(t: Tensor, mean: float = 0.0, std: float = 1.0) -> Tensor:
    z = generator().standard_normal(t.shape, dtype=_draw_dtype(t))
    z *= std
    z += mean
    return _fill(t, z)


def uniform_(t: Tensor, a: float = 0.0, b: float = 1.0) -> Tensor:
    u = generator().random(t.shape, dtype=_draw_dtype(t))
    u *= b - a
    u += a
    return _fill(t, u)


def he_normal_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu") -> Tensor:
    """N(0, gain^2 / fan) with gain sqrt(2) for ReLU: variance 2/fan_in (He et al.)."""
    fan = _fans(t)[0 if mode == "fan_in" else 1]
    std = calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return normal_(t, 0.0, std)


def he_uniform_(t: Tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "relu") -> Tensor:
    """U(-b, b) with b = gain sqrt(3 / fan): the same variance as :func:`he_normal_`."""
    fan = _fans(t)[0 if mode == "fan_in" else 1]
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(t, -bound, bound)


kaiming_normal_ = he_normal_
kaiming_uniform_ = he_uniform_


def _xavier_var(t: Tensor, variant: str) -> float:
    fan_in, fan_out = _fans(t)
    if variant == "fan_in":
        return 1.0 / fan_in
    if variant == "glorot":
        return 2.0 / (fan_in + fan_out)
    raise ValueError(f"xavier: variant must be 'fan_in' (curriculum) or 'glorot', got {variant!r}")


def xavier_normal_(t: Tensor, gain: float = 1.0, variant: str = "glorot") -> Tensor:
    """N(0, gain^2 var): var = 2/(fan_in+fan_out) as PyTorch's, or 1/fan_in (the curriculum's) with variant="fan_in"."""
    return normal_(t, 0.0, gain * math.sqrt(_xavier_var(t, variant)))


def xavier_uniform_(t: Tensor, gain: float = 1.0, variant: str = "glorot") -> Tensor:
    """U(-b, b) with the variance of :func:`xavier_normal_` (b = gain sqrt(3 var))."""
    bound = gain * math.sqrt(3.0 * _xavier_var(t, variant))
    return uniform_(t, -bound, bound)


def glorot_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """Glorot & Bengio: var 2/(fan_in + fan_out) (PyTorch's ``xavier_normal_``)."""
    return xavier_normal_(t, gain, variant="glorot")


def glorot_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    """PyTorch's ``xavier_uniform_``: U(-b, b), b = gain sqrt(6/(fan_in + fan_out))."""
    return xavier_uniform_(t, gain, variant="glorot")


def lecun_normal_(t: Tensor, gain: float = 1.0) -> Tensor:
    """N(0, gain^2 / fan_in): the curriculum's "Xavier" for tanh layers."""
    return xavier_normal_(t, gain, variant="fan_in")


def lecun_uniform_(t: Tensor, gain: float = 1.0) -> Tensor:
    return xavier_uniform_(t, gain, variant="fan_in")
