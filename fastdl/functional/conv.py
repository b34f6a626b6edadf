"""Convolution and pooling, NCHW, PyTorch's signatures and semantics."""
from __future__ import annotations

import numpy as np

from .. import backend
from ..shapes import int_arg, pair_arg
from ..tensor import Tensor, _result, as_tensor, contiguous

__all__ = ["conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d", "global_avg_pool2d", "conv_output_size",
           "pad_amounts"]


def _pair(v, name: str, fn: str = "conv2d") -> tuple:
    return pair_arg(v, name, fn, lo=None)  # ranges are the kernels' checks


def pad_amounts(padding, kernel, dilation, stride=(1, 1)) -> tuple:
    """(top, left, bottom, right) for ``padding`` = int | pair | "valid" | "same".

    "same" keeps the size at stride 1: total = dilation * (k - 1), split with the
    extra pixel on the bottom/right for even kernels, as PyTorch.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0, 0, 0
        if padding == "same":
            if tuple(stride) != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            th, tw = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
            return th // 2, tw // 2, th - th // 2, tw - tw // 2
        raise ValueError(f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = _pair(padding, "padding")
    if ph < 0 or pw < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    return ph, pw, ph, pw


def conv_output_size(n: int, kernel: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """floor((n + 2p - d (k - 1) - 1) / s) + 1: the curriculum's floor((n + 2p - f) / s) + 1 for d = 1."""
    return (n + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as every DL library): input (N, C, H, W), weight
    (K, C/groups, kh, kw), bias (K,) -> (N, K, OH, OW).  A 3-D input (C, H, W) is treated as a batch of one."""
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if x.ndim == 3:
        return conv2d(x.unsqueeze(0), w, b, stride, padding, dilation, groups).squeeze(0)
    if x.ndim != 4:
        raise ValueError(f"conv2d: input must be (N, C, H, W), got shape {x.shape}")
    if w.ndim != 4:
        raise ValueError(f"conv2d: weight must be (out_channels, in_channels/groups, kh, kw), got {w.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"conv2d: input has dtype {x.dtype} but weight has {w.dtype}")
    st, dil = _pair(stride, "stride"), _pair(dilation, "dilation")
    pad = pad_amounts(padding, w.shape[2:], dil, st)
    kern = backend.ops(x.data)
    groups = int_arg(groups, "groups", "conv2d", 1)
    y = kern.conv2d_forward(x.data, w.data, None if b is None else b.data, st, pad, dil, groups)
    parents = (x, w) if b is None else (x, w, b)
    xd, wd = x.data, w.data

    def bw(g):
        gx, gw, gb = kern.conv2d_backward(contiguous(g), xd, wd, st, pad, dil, int(groups), x.requires_grad,
                                          w.requires_grad, b is not None and b.requires_grad)
        return (gx, gw) if b is None else (gx, gw, gb)
    return _result(y, parents, bw)


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    """Max over windows (padding counts as -inf; NaN in a window gives NaN); the gradient goes to each max."""
    x = as_tensor(input)
    k = _pair(kernel_size, "kernel_size", "max_pool2d")
    st = k if stride is None else _pair(stride, "stride", "max_pool2d")
    pad, dil = _pair(padding, "padding", "max_pool2d"), _pair(dilation, "dilation", "max_pool2d")
    kern = backend.ops(x.data)
    y, idx = kern.max_pool2d_forward(x.data, k, st, pad, dil, bool(ceil_mode))
    hw = x.shape[-2:]
    out = _result(y, (x,), lambda g: (kern.max_pool2d_backward(contiguous(g), idx, hw),))
    return (out, Tensor(idx)) if return_indices else out


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """Mean over windows; with ``count_include_pad`` the zero padding counts in the divisor, as PyTorch."""
    x = as_tensor(input)
    k = _pair(kernel_size, "kernel_size", "avg_pool2d")
    st = k if stride is None else _pair(stride, "stride", "avg_pool2d")
    pad = _pair(padding, "padding", "avg_pool2d")
    kern = backend.ops(x.data)
    y = kern.avg_pool2d_forward(x.data, k, st, pad, bool(ceil_mode), bool(count_include_pad))
    hw = x.shape[-2:]
    return _result(y, (x,), lambda g: (kern.avg_pool2d_backward(contiguous(g), hw, k, st, pad, bool(ceil_mode),
                                                                bool(count_include_pad)),))


def adaptive_avg_pool2d(input, output_size) -> Tensor:
    """Average pooling to a fixed (OH, OW) whatever the input size (``None`` keeps that dimension)."""
    x = as_tensor(input)
    fn = "adaptive_avg_pool2d"
    if x.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    if isinstance(output_size, (int, np.integer)) and not isinstance(output_size, (bool, np.bool_)):
        output_size = (output_size, output_size)
    if isinstance(output_size, (str, bytes)) or not hasattr(output_size, "__len__") or len(output_size) != 2:
        raise ValueError(f"{fn}: output_size must be an int or a pair (None keeps a size), got {output_size!r}"[:200])
    oh, ow = (x.shape[-2] if output_size[0] is None else int_arg(output_size[0], "output_size", fn, 1),
              x.shape[-1] if output_size[1] is None else int_arg(output_size[1], "output_size", fn, 1))
    kern = backend.ops(x.data)
    y = kern.adaptive_avg_pool2d_forward(x.data, (int(oh), int(ow)))
    hw = x.shape[-2:]
    return _result(y, (x,), lambda g: (kern.adaptive_avg_pool2d_backward(contiguous(g), hw),))


def global_avg_pool2d(input) -> Tensor:
    """(N, C, H, W) -> (N, C): the mean of every channel plane."""
    return adaptive_avg_pool2d(input, 1).flatten(1)
