"""Activation layers with PyTorch's names, arguments and ``repr`` (on ``functional.activation``)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..shapes import float_arg, int_arg
from .module import Module, Parameter


class _Act(Module):
    fn = None
    args: tuple = ()

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace  # accepted for PyTorch's signatures; the result is always a new tensor

    def forward(self, x):
        return type(self).fn(x, *[getattr(self, a) for a in self.args])

    def extra_repr(self):
        return ", ".join(f"{a}={getattr(self, a)}" for a in self.args)


class LeakyReLU(_Act):
    fn, args = F.leaky_relu, ("negative_slope",)

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__(inplace)
        self.negative_slope = float_arg(negative_slope, "negative_slope", "LeakyReLU")


class ELU(_Act):
    fn, args = F.elu, ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.alpha = float_arg(alpha, "alpha", "ELU")


class CELU(_Act):
    fn, args = F.celu, ("alpha",)

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.alpha = float_arg(alpha, "alpha", "CELU")
        if self.alpha == 0:
            raise ValueError("CELU: alpha must be nonzero")


class GELU(_Act):
    fn, args = F.gelu, ("approximate",)

    def __init__(self, approximate: str = "none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate


class Softplus(_Act):
    fn, args = F.softplus, ("beta", "threshold")

    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = float_arg(beta, "beta", "Softplus"), float_arg(threshold, "threshold", "Softplus")
        if self.beta == 0:
            raise ValueError("Softplus: beta must be nonzero")


class Hardtanh(_Act):
    fn, args = F.hardtanh, ("min_val", "max_val")

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__(inplace)
        self.min_val, self.max_val = float_arg(min_val, "min_val", "Hardtanh"), float_arg(max_val, "max_val", "Hardtanh")
        if self.min_val > self.max_val:
            raise ValueError(f"Hardtanh: min_val ({min_val}) must be <= max_val ({max_val})")


class ReLU6(Hardtanh):
    def __init__(self, inplace: bool = False):
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self):
        return ""


class GLU(_Act):
    fn, args = F.glu, ("dim",)

    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = int_arg(dim, "dim", "GLU", None)


def _plain(name, f):
    return type(name, (_Act,), {"fn": f, "__doc__": f"``{f.__name__}`` as a layer."})


SELU = _plain("SELU", F.selu)
SiLU = _plain("SiLU", F.silu)
Mish = _plain("Mish", F.mish)
Hardsigmoid = _plain("Hardsigmoid", F.hardsigmoid)
Hardswish = _plain("Hardswish", F.hardswish)
LogSigmoid = _plain("LogSigmoid", F.logsigmoid)
Softsign = _plain("Softsign", F.softsign)
Tanhshrink = _plain("Tanhshrink", F.tanhshrink)


class PReLU(Module):
    """max(0, x) + a min(0, x) with a learned ``weight`` a: one value, or one per channel (dim 1)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, dtype=np.float32):
        super().__init__()
        self.num_parameters = int_arg(num_parameters, "num_parameters", "PReLU", 1)
        self.weight = Parameter(np.full(self.num_parameters, float_arg(init, "init", "PReLU"), dtype=dtype))

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"
