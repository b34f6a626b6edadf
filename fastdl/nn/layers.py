"""Basic layers with PyTorch's names, signatures and parameter layouts."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from ..tensor import Tensor, as_tensor
from ..shapes import float_arg, int_arg, want_memory
from .module import Module, Parameter


class Identity(Module):
    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Linear(Module):
    """y = x W^T + b; weight (out_features, in_features), bias (out_features,).

    Initialised as PyTorch: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, dtype=np.float32):
        super().__init__()
        in_features, out_features = int_arg(in_features, "in_features", "Linear"), \
            int_arg(out_features, "out_features", "Linear")
        want_memory(in_features * out_features, np.dtype(dtype).itemsize, "Linear", "the weight")
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        bound = 1.0 / math.sqrt(in_features) if in_features > 0 else 0.0
        init.uniform_(self.weight, -bound, bound)
        if bias:
            self.bias = Parameter(np.empty(out_features, dtype=dtype))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        x = as_tensor(x)
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear: expected input (..., {self.in_features}), got shape {x.shape}")
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class ReLU(Module):
    def forward(self, x):
        return F.relu(x)


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, axis=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, axis=self.dim)


class Dropout(Module):
    """Inverted dropout with drop probability ``p`` (keep_prob = 1 - p); identity in eval mode."""

    def __init__(self, p: float = 0.5, keep_prob: float | None = None):
        super().__init__()
        if keep_prob is not None:
            p = 1.0 - float_arg(keep_prob, "keep_prob", "Dropout", 0.0, 1.0)
        self.p = float_arg(p, "p", "Dropout", 0.0, 1.0)

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return as_tensor(x).flatten(self.start_dim, self.end_dim)


class _Loss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy from logits (N, C) and integer targets (N,) or class probabilities."""

    def __init__(self, weight=None, ignore_index: int = -100, reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(reduction)
        if weight is not None and not isinstance(weight, Tensor):
            weight = Tensor(np.asarray(weight))
        self.weight, self.ignore_index, self.label_smoothing = weight, ignore_index, label_smoothing

    def forward(self, input, target) -> Tensor:
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_Loss):
    def __init__(self, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__(reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, self.ignore_index, self.reduction)


class MSELoss(_Loss):
    def forward(self, input, target):
        return F.mse_loss(input, target, self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Binary cross-entropy on logits (``weight`` per element, ``pos_weight`` per class, as PyTorch's);
    ``forward(input, target, mask=None)`` ignores masked-out labels."""

    def __init__(self, weight=None, reduction: str = "mean", pos_weight=None):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight

    def forward(self, input, target, mask=None):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight, mask=mask)


class Unflatten(Module):
    """Split dim ``dim`` into ``unflattened_size`` (the inverse of ``Flatten``)."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = int_arg(dim, "dim", "Unflatten", None), tuple(unflattened_size)

    def forward(self, x):
        return as_tensor(x).unflatten(self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Dropout2d(Dropout):
    """Drop whole channels of (N, C, H, W) (or (C, H, W)) with probability ``p``; identity in eval mode."""

    def forward(self, x):
        return F.dropout2d(x, self.p, self.training)


Dropout1d = type("Dropout1d", (Dropout2d,), {"__doc__": "Drop whole channels of (N, C, L) with probability ``p``."})


class Bilinear(Module):
    """y = x1^T W x2 + b; weight (out_features, in1_features, in2_features), bias (out_features,).

    Initialised as PyTorch: U(-1/sqrt(in1), 1/sqrt(in1)) for weight and bias.
    """

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, dtype=np.float32):
        super().__init__()
        self.in1_features = int_arg(in1_features, "in1_features", "Bilinear", 1)
        self.in2_features = int_arg(in2_features, "in2_features", "Bilinear", 1)
        self.out_features = int_arg(out_features, "out_features", "Bilinear", 1)
        want_memory(self.out_features * self.in1_features * self.in2_features, np.dtype(dtype).itemsize, "Bilinear",
                    "the weight")
        bound = 1.0 / math.sqrt(self.in1_features)
        self.weight = Parameter(np.empty((self.out_features, self.in1_features, self.in2_features), dtype=dtype))
        init.uniform_(self.weight, -bound, bound)
        if bias:
            self.bias = Parameter(np.empty(self.out_features, dtype=dtype))
            init.uniform_(self.bias, -bound, bound)
        else:
            self.register_parameter("bias", None)

    def forward(self, input1, input2):
        return F.bilinear(input1, input2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
