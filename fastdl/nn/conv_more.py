"""More convolution, pooling and normalisation layers with PyTorch's names and parameter layouts:
``Conv1d``, ``ConvTranspose1d/2d``, ``MaxPool1d``, ``AvgPool1d``, adaptive max/avg pooling,
``GroupNorm`` and ``EmbeddingBag``."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import init
from ..shapes import float_arg, int_arg, pair_arg, want_memory
from .module import Module, Parameter


def _conv_params(module, fn, in_ch, out_ch, groups, w_shape, fan_in, bias, dtype):
    """PyTorch's default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias."""
    want_memory(int(np.prod(w_shape)), np.dtype(dtype).itemsize, fn, "the weight")
    module.weight = Parameter(np.empty(w_shape, dtype))
    bound = 1 / math.sqrt(fan_in)
    init.uniform_(module.weight, -bound, bound)
    if bias:
        module.bias = Parameter(np.empty(out_ch, dtype))
        init.uniform_(module.bias, -bound, bound)
    else:
        module.register_parameter("bias", None)


def _channels(fn, in_channels, out_channels, groups):
    in_channels, out_channels = int_arg(in_channels, "in_channels", fn, 1), int_arg(out_channels, "out_channels", fn, 1)
    groups = int_arg(groups, "groups", fn, 1)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{fn}: in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible "
                         f"by groups ({groups})")
    return in_channels, out_channels, groups


def _single(v, name, fn, lo):
    v = v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v
    return int_arg(v, name, fn, lo)


class Conv1d(Module):
    """weight (out_channels, in_channels/groups, k), bias (out_channels,); input (N, C, L)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = "zeros", dtype=np.float32):
        super().__init__()
        if padding_mode != "zeros":
            raise NotImplementedError("Conv1d: only padding_mode='zeros' is supported")
        self.in_channels, self.out_channels, self.groups = _channels("Conv1d", in_channels, out_channels, groups)
        self.kernel_size = (_single(kernel_size, "kernel_size", "Conv1d", 1),)
        self.stride, self.dilation = (_single(stride, "stride", "Conv1d", 1),), (_single(dilation, "dilation", "Conv1d", 1),)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"Conv1d: padding must be an int, 'valid' or 'same', got {padding!r}")
            if padding == "same" and self.stride != (1,):
                raise ValueError("Conv1d: padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = (_single(padding, "padding", "Conv1d", 0),)
        k = self.kernel_size[0]
        _conv_params(self, "Conv1d", in_channels, self.out_channels, groups,
                     (self.out_channels, self.in_channels // self.groups, k), self.in_channels // self.groups * k,
                     bias, dtype)

    def forward(self, x):
        pad = self.padding if isinstance(self.padding, str) else self.padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride[0], pad, self.dilation[0], self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding not in ((0,), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1,):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class ConvTranspose2d(Module):
    """Transposed convolution; weight (in_channels, out_channels/groups, kh, kw) as PyTorch's, bias (out_channels,)."""

    _fn, _dims = "ConvTranspose2d", 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, output_padding=0,
                 groups: int = 1, bias: bool = True, dilation=1, padding_mode: str = "zeros", dtype=np.float32):
        super().__init__()
        fn = self._fn
        if padding_mode != "zeros":
            raise NotImplementedError(f"{fn}: only padding_mode='zeros' is supported")
        self.in_channels, self.out_channels, self.groups = _channels(fn, in_channels, out_channels, groups)
        conv = (lambda v, name, lo: pair_arg(v, name, fn, lo)) if self._dims == 2 else \
            (lambda v, name, lo: (_single(v, name, fn, lo),))
        self.kernel_size, self.stride = conv(kernel_size, "kernel_size", 1), conv(stride, "stride", 1)
        self.padding, self.output_padding = conv(padding, "padding", 0), conv(output_padding, "output_padding", 0)
        self.dilation = conv(dilation, "dilation", 1)
        if any(op >= max(s, d) for op, s, d in zip(self.output_padding, self.stride, self.dilation)):
            raise ValueError(f"{fn}: output_padding must be smaller than stride or dilation")
        k = int(np.prod(self.kernel_size))
        _conv_params(self, fn, self.in_channels, self.out_channels, self.groups,
                     (self.in_channels, self.out_channels // self.groups) + self.kernel_size,
                     self.out_channels // self.groups * k, bias, dtype)

    def forward(self, x):
        f = F.conv_transpose2d if self._dims == 2 else F.conv_transpose1d
        unpack = (lambda t: t) if self._dims == 2 else (lambda t: t[0])
        return f(x, self.weight, self.bias, unpack(self.stride), unpack(self.padding), unpack(self.output_padding),
                 self.groups, unpack(self.dilation))

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if any(self.padding):
            s += f", padding={self.padding}"
        if any(self.output_padding):
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        return s + ("" if self.bias is not None else ", bias=False")


class ConvTranspose1d(ConvTranspose2d):
    """Transposed 1-D convolution; weight (in_channels, out_channels/groups, k)."""

    _fn, _dims = "ConvTranspose1d", 1


class MaxPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices: bool = False,
                 ceil_mode: bool = False):
        super().__init__()
        self.kernel_size = _single(kernel_size, "kernel_size", "MaxPool1d", 1)
        self.stride = self.kernel_size if stride is None else _single(stride, "stride", "MaxPool1d", 1)
        self.padding, self.dilation = _single(padding, "padding", "MaxPool1d", 0), _single(dilation, "dilation",
                                                                                            "MaxPool1d", 1)
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, x):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode,
                            self.return_indices)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False, count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _single(kernel_size, "kernel_size", "AvgPool1d", 1)
        self.stride = self.kernel_size if stride is None else _single(stride, "stride", "AvgPool1d", 1)
        self.padding = _single(padding, "padding", "AvgPool1d", 0)
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AdaptiveMaxPool2d(Module):
    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return F.adaptive_max_pool2d(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool1d(AdaptiveMaxPool2d):
    def forward(self, x):
        return F.adaptive_max_pool1d(x, self.output_size, self.return_indices)


class AdaptiveAvgPool1d(Module):
    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool1d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class GroupNorm(Module):
    """Group normalisation; ``weight`` and ``bias`` (num_channels,) as PyTorch's."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5, affine: bool = True, dtype=np.float32):
        super().__init__()
        self.num_groups = int_arg(num_groups, "num_groups", "GroupNorm", 1)
        self.num_channels = int_arg(num_channels, "num_channels", "GroupNorm", 1)
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by num_groups ({num_groups})")
        self.eps, self.affine = float_arg(eps, "eps", "GroupNorm", 0.0, lo_open=True), bool(affine)
        if affine:
            self.weight = Parameter(np.ones(self.num_channels, dtype))
            self.bias = Parameter(np.zeros(self.num_channels, dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embeddings without building the (bag, length, dim) tensor;
    ``weight`` (num_embeddings, embedding_dim) initialised N(0, 1) as PyTorch's."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm=None, norm_type: float = 2.0,
                 scale_grad_by_freq: bool = False, mode: str = "mean", sparse: bool = False, _weight=None,
                 include_last_offset: bool = False, padding_idx=None, dtype=np.float32):
        super().__init__()
        if max_norm is not None or scale_grad_by_freq or sparse or include_last_offset:
            raise NotImplementedError("EmbeddingBag: max_norm, scale_grad_by_freq, sparse and include_last_offset "
                                      "are not supported")
        if mode not in ("sum", "mean", "max"):
            raise ValueError(f"EmbeddingBag: mode must be 'sum', 'mean' or 'max', got {mode!r}")
        self.num_embeddings = int_arg(num_embeddings, "num_embeddings", "EmbeddingBag", 1)
        self.embedding_dim = int_arg(embedding_dim, "embedding_dim", "EmbeddingBag", 1)
        want_memory(self.num_embeddings * self.embedding_dim, np.dtype(dtype).itemsize, "EmbeddingBag", "the weight")
        self.mode, self.padding_idx = mode, padding_idx
        if _weight is not None:
            self.weight = Parameter(np.asarray(getattr(_weight, "data", _weight), dtype=dtype))
        else:
            self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype))
            init.normal_(self.weight)
            if padding_idx is not None:
                self.weight.data[padding_idx] = 0

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight, offsets, self.mode, per_sample_weights, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}"
