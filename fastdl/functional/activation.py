"""PyTorch's parametrised activations on the native ``activation_forward``/``activation_backward`` kernels,
and ``prelu`` (a learned slope per channel)."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..shapes import astype, float_arg, reshape
from ..tensor import Tensor, _result, as_tensor, contiguous

__all__ = ["leaky_relu", "elu", "selu", "celu", "gelu", "silu", "mish", "softplus", "hardtanh", "relu6",
           "hardsigmoid", "hardswish", "prelu", "glu", "logsigmoid", "softsign", "tanhshrink"]


def _act(x, kind, alpha=0.0, beta=0.0) -> Tensor:
    x = as_tensor(x)
    if x.dtype.kind != "f":
        raise TypeError(f"{kind}: input must be a floating-point tensor, got dtype {x.dtype}")
    kern = backend.ops(x.data)
    xd = x.data
    y = kern.activation_forward(xd, kind, alpha, beta)
    return _result(y, (x,), lambda g: (kern.activation_backward(contiguous(g), xd, kind, alpha, beta),))


def leaky_relu(input, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return _act(input, "leaky_relu", float_arg(negative_slope, "negative_slope", "leaky_relu", None, None))


def elu(input, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _act(input, "elu", float_arg(alpha, "alpha", "elu", None, None))


def selu(input, inplace: bool = False) -> Tensor:
    return _act(input, "selu")


def celu(input, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return _act(input, "celu", float_arg(alpha, "alpha", "celu", None, None))


def gelu(input, approximate: str = "none") -> Tensor:
    """x Phi(x) with the exact normal CDF (``approximate="none"``) or its tanh approximation (``"tanh"``)."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _act(input, "gelu" if approximate == "none" else "gelu_tanh")


def silu(input, inplace: bool = False) -> Tensor:
    return _act(input, "silu")


def mish(input, inplace: bool = False) -> Tensor:
    return _act(input, "mish")


def softplus(input, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold."""
    return _act(input, "softplus", float_arg(beta, "beta", "softplus", None, None),
                float_arg(threshold, "threshold", "softplus", None, None))


def hardtanh(input, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    return _act(input, "hardtanh", float_arg(min_val, "min_val", "hardtanh", None, None),
                float_arg(max_val, "max_val", "hardtanh", None, None))


def relu6(input, inplace: bool = False) -> Tensor:
    return _act(input, "hardtanh", 0.0, 6.0)


def hardsigmoid(input, inplace: bool = False) -> Tensor:
    return _act(input, "hardsigmoid")


def hardswish(input, inplace: bool = False) -> Tensor:
    return _act(input, "hardswish")


def logsigmoid(input) -> Tensor:
    """log(sigmoid(x)) = -softplus(-x), stable for large |x| (threshold 40: e^-40 is below double's resolution,
    where softplus's default 20 would cut 2e-9 off)."""
    return -softplus(-as_tensor(input), 1.0, 40.0)


def softsign(input) -> Tensor:
    x = as_tensor(input)
    return x / (x.abs() + 1)


def tanhshrink(input) -> Tensor:
    x = as_tensor(input)
    return x - x.tanh()


def glu(input, dim: int = -1) -> Tensor:
    """a * sigmoid(b) with a, b the two halves of ``input`` along ``dim``."""
    x = as_tensor(input)
    if x.shape[dim] % 2:
        raise ValueError(f"glu: dim {dim} must have an even size, got {x.shape[dim]}")
    a, b = x.chunk(2, dim)
    return a * b.sigmoid()


def prelu(input, weight) -> Tensor:
    """max(0, x) + weight * min(0, x), ``weight`` of one value or one per channel (dim 1)."""
    x, w = as_tensor(input), as_tensor(weight)
    if w.ndim != 1:
        raise ValueError(f"prelu: weight must be 1-D, got shape {w.shape}")
    if w.shape[0] != 1 and (x.ndim < 2 or x.shape[1] != w.shape[0]):
        raise ValueError(f"prelu: weight has {w.shape[0]} values but input has shape {x.shape} "
                         "(one value, or one per channel on dim 1)")
    if x.dtype != w.dtype:
        raise TypeError(f"prelu: input has dtype {x.dtype} but weight has {w.dtype}")
    shape = (1, -1) + (1,) * (x.ndim - 2) if w.shape[0] != 1 else (1,) * max(x.ndim, 1)
    xp = backend.array_namespace(x.data)
    wd, xd = reshape(w.data, shape), x.data
    neg = xd <= 0
    y = reshape(xp.where(neg, wd * xd, xd), x.shape)

    def bw(g):
        gx = reshape(xp.where(neg, g * wd, g), x.shape)
        gw = g * xp.where(neg, xd, xp.zeros_like(xd))
        gw = xp.broadcast_to(gw, np.broadcast_shapes(tuple(g.shape), tuple(wd.shape)))
        axes = tuple(i for i in range(gw.ndim) if i != 1 or w.shape[0] == 1)
        return gx, reshape(xp.sum(gw, axis=axes), w.shape)
    return _result(astype(y, x.dtype, copy=False), (x, w), bw)
