"""Normalization layers with PyTorch's parameters and buffers (weight, bias, running_mean,
running_var, num_batches_tracked)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..shapes import float_arg, int_arg, want_memory
from ..tensor import Tensor
from .module import Module, Parameter


class _BatchNorm(Module):
    _dims: tuple = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype=np.float32):
        super().__init__()
        num_features = int_arg(num_features, "num_features", type(self).__name__, 1)
        want_memory(4 * num_features, np.dtype(dtype).itemsize, type(self).__name__, "the weights and statistics")
        eps = float_arg(eps, "eps", type(self).__name__, 0.0, lo_open=True)
        if momentum is not None:
            momentum = float_arg(momentum, "momentum", type(self).__name__, 0.0, 1.0)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype))
            self.bias = Parameter(np.zeros(num_features, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def forward(self, x):
        x = x if isinstance(x, Tensor) else Tensor(x)
        if x.ndim not in self._dims:
            raise ValueError(f"{type(self).__name__}: expected a {' or '.join(f'{d}-D' for d in self._dims)} input, "
                             f"got shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: expected {self.num_features} channels, got input {x.shape}")
        use_batch = self.training or not self.track_running_stats
        momentum = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data = self.num_batches_tracked.data + 1
            if self.momentum is None:  # cumulative moving average
                momentum = 1.0 / float(self.num_batches_tracked.data)
        update = self.training and self.track_running_stats
        return F.batch_norm(x, self.running_mean.data if update or not use_batch else None,
                            self.running_var.data if update or not use_batch else None,
                            self.weight, self.bias, use_batch, momentum, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L)."""
    _dims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W), per channel."""
    _dims = (4,)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True, bias: bool = True,
                 dtype=np.float32):
        super().__init__()
        shp = (normalized_shape,) if isinstance(normalized_shape, (int, np.integer)) else normalized_shape
        if isinstance(shp, (str, bytes)) or not hasattr(shp, "__iter__"):
            raise TypeError(f"LayerNorm: normalized_shape must be an int or a tuple of ints, got {normalized_shape!r}")
        self.normalized_shape = tuple(int_arg(d, "normalized_shape", "LayerNorm", 1) for d in shp)
        want_memory(int(np.prod(self.normalized_shape, dtype=np.float64)), np.dtype(dtype).itemsize, "LayerNorm",
                    "the weight")
        eps = float_arg(eps, "eps", "LayerNorm", 0.0, lo_open=True)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        if elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype))
            if bias:
                self.bias = Parameter(np.zeros(self.normalized_shape, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
