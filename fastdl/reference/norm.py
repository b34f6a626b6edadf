"""Batch normalization (train and eval) and layer normalization."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _array, _convertible, _float, _inplace, _same_dtype, _same_shape, _want_shape


def _bn_dims(x, fn):
    if x.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C) or (N, C, ...), got shape {x.shape}")


def _chan(v, x, fn, name):
    """An optional per-channel vector (C,) of x's channels."""
    if v is None:
        return None
    v = _convertible(v, x.dtype, fn, name)
    _want_shape(v, x.shape[1:2], name, fn)
    return v


@_scalars(training="bool", momentum="float", eps="float")
def batch_norm_forward(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """x (N, C, *) -> (y, mean, rstd) per channel c over the N and spatial axes.

    Training: batch mean and biased variance; the running statistics (updated
    in place) move by rm = (1 - momentum) rm + momentum mean and the same for
    the unbiased variance.  Evaluation: the running statistics.  y = (x - mean)
    rstd gamma + beta with rstd = 1 / sqrt(var + eps).
    """
    fn = "batch_norm_forward"
    x = _float(input, fn, "input")
    _bn_dims(x, fn)
    if not eps > 0:
        raise ValueError(f"{fn}: eps must be > 0")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    if training:
        m = x.size // max(x.shape[1], 1)
        if m < 2 and x.shape[1] > 0:  # an empty batch too (PyTorch raises; the statistics stay)
            raise ValueError(f"{fn}: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        weight, bias = _chan(weight, x, fn, "weight"), _chan(bias, x, fn, "bias")
        mean = x64.mean(axis=axes)
        var = x64.var(axis=axes)
        if running_mean is not None:
            rm = _inplace(running_mean, np.empty(x.shape[1], x.dtype), "batch_norm_forward", "running_mean")
            rm[...] = (1 - momentum) * rm + momentum * mean
        if running_var is not None:
            rv = _inplace(running_var, np.empty(x.shape[1], x.dtype), "batch_norm_forward", "running_var")
            rv[...] = (1 - momentum) * rv + momentum * var * m / max(m - 1, 1)
    else:
        weight, bias = _chan(weight, x, fn, "weight"), _chan(bias, x, fn, "bias")
        running_mean, running_var = _chan(running_mean, x, fn, "running_mean"), _chan(running_var, x, fn, "running_var")
        if running_mean is None or running_var is None:
            raise ValueError(f"{fn}: evaluation needs running_mean and running_var")
        mean, var = running_mean.astype(np.float64), running_var.astype(np.float64)
    rstd = 1 / np.sqrt(var + eps)
    y = (x64 - mean.reshape(shape)) * rstd.reshape(shape)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


@_scalars(training="bool", need_input="bool", need_weight="bool", need_bias="bool")
def batch_norm_backward(gy, input, weight, mean, rstd, training, need_input=True, need_weight=True, need_bias=True):
    """gx = gamma rstd (gy - mean(gy) - xhat mean(gy xhat)) in training (gamma rstd gy in evaluation);
    ggamma = sum(gy xhat), gbeta = sum(gy)."""
    fn = "batch_norm_backward"
    gy, x = _array(gy, fn, "gy"), _float(input, fn, "input")
    _same_dtype(x, "input", gy, "gy", fn)
    _same_shape(x, "input", gy, "gy", fn)
    _bn_dims(x, fn)
    weight, mean, rstd = _chan(weight, x, fn, "weight"), _chan(mean, x, fn, "mean"), _chan(rstd, x, fn, "rstd")
    if mean is None or rstd is None:
        raise TypeError(f"{fn}: mean and rstd must be arrays, got None")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x - mean.reshape(shape)) * rstd.reshape(shape)
    gamma = np.ones(x.shape[1]) if weight is None else weight
    gx = None
    if need_input:
        k = (gamma * rstd).reshape(shape)
        if training:
            gx = k * (gy - gy.mean(axis=axes, keepdims=True) - xhat * (gy * xhat).mean(axis=axes, keepdims=True))
        else:
            gx = k * gy
        gx = gx.astype(x.dtype)
    return (gx, (gy * xhat).sum(axis=axes).astype(x.dtype) if need_weight else None,
            gy.sum(axis=axes).astype(x.dtype) if need_bias else None)


def _ln_axes(x, normalized_shape, fn):
    k = len(normalized_shape)
    if not 1 <= k <= x.ndim:
        raise ValueError(f"{fn}: normalized_shape must name 1 to {x.ndim} trailing dimensions")
    if tuple(x.shape[x.ndim - k:]) != tuple(normalized_shape):
        raise ValueError(f"{fn}: normalized_shape does not match the last dimensions of input {x.shape}")
    return tuple(range(x.ndim - k, x.ndim))


def _row(v, normalized_shape, fn, name, dtype):
    """An optional weight or bias (convertible to the input's dtype) with normalized_shape's element count."""
    if v is None:
        return None
    v = _convertible(v, dtype, fn, name)
    if v.size != int(np.prod(normalized_shape, dtype=np.int64)):
        raise ValueError(f"{fn}: {name} must have normalized_shape, got {v.shape}")
    return v.reshape(tuple(normalized_shape))


def _normed(xhat, weight, bias, mean, rstd, dtype):
    """(xhat * weight + bias, mean, rstd) in the input's dtype, the statistics flat: the forwards' tail."""
    if weight is not None:
        xhat = xhat * weight
    if bias is not None:
        xhat = xhat + bias
    return xhat.astype(dtype), mean.reshape(-1).astype(dtype), rstd.reshape(-1).astype(dtype)


@_scalars(normalized_shape="ints", eps="float")
def layer_norm_forward(input, normalized_shape, weight, bias, eps):
    """Normalize over the trailing ``normalized_shape`` dims: -> (y, mean, rstd) with one mean/rstd per row."""
    fn = "layer_norm_forward"
    x = _float(input, fn, "input")
    axes = _ln_axes(x, normalized_shape, fn)
    if not eps > 0:
        raise ValueError(f"{fn}: eps must be > 0")
    weight = _row(weight, normalized_shape, fn, "weight", x.dtype)
    bias = _row(bias, normalized_shape, fn, "bias", x.dtype)
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(x64.var(axis=axes, keepdims=True) + eps)
    return _normed((x64 - mean) * rstd, weight, bias, mean, rstd, x.dtype)


@_scalars(normalized_shape="ints", need_input="bool", need_weight="bool", need_bias="bool")
def layer_norm_backward(gy, input, normalized_shape, weight, mean, rstd, need_input=True, need_weight=True,
                        need_bias=True):
    """gx = rstd (g - mean(g) - xhat mean(g xhat)) with g = gy gamma; ggamma = sum_rows gy xhat; gbeta = sum_rows gy."""
    fn = "layer_norm_backward"
    gy, x = _array(gy, fn, "gy"), _float(input, fn, "input")
    _array(mean, fn, "mean"), _array(rstd, fn, "rstd")  # None is a TypeError first, as natively
    _same_dtype(x, "input", gy, "gy", fn)
    _same_shape(x, "input", gy, "gy", fn)
    axes = _ln_axes(x, normalized_shape, fn)
    lead = x.shape[:x.ndim - len(axes)] + (1,) * len(axes)
    rows_n = int(np.prod(lead, dtype=np.int64))
    mean, rstd = _convertible(mean, x.dtype, fn, "mean"), _convertible(rstd, x.dtype, fn, "rstd")
    if mean.size != rows_n or rstd.size != rows_n:
        raise ValueError(f"{fn}: mean and rstd must have one entry per row ({rows_n})")
    weight = _row(weight, normalized_shape, fn, "weight", x.dtype)
    xhat = (x - mean.reshape(lead)) * rstd.reshape(lead)
    g = gy * (1 if weight is None else weight)
    gx = None
    if need_input:
        gx = (rstd.reshape(lead) * (g - g.mean(axis=axes, keepdims=True)
                                                - xhat * (g * xhat).mean(axis=axes, keepdims=True))).astype(x.dtype)
    rows = tuple(range(x.ndim - len(axes)))
    return (gx, (gy * xhat).sum(axis=rows).astype(x.dtype) if need_weight else None,
            gy.sum(axis=rows).astype(x.dtype) if need_bias else None)


def _gn_dims(x, num_groups, fn):
    """(N, C, G, the grouped shape (N, G, C/G * S)) of a group norm's input (N, C, ...)."""
    if x.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C, ...), got {x.shape}")
    n, c = x.shape[:2]
    if num_groups < 1 or c % num_groups:
        raise ValueError(f"{fn}: num_groups must be >= 1 and divide C={c}, got {num_groups}")
    return n, c, num_groups, (n, num_groups, x.size // (n * num_groups) if n * c else 0)


def _channel(v, c, fn, name, dtype, ndim):
    """An optional per-channel weight or bias, shaped to broadcast over (N, C, ...)."""
    if v is None:
        return None
    v = _convertible(v, dtype, fn, name)
    if v.size != c:
        raise ValueError(f"{fn}: {name} must have one entry per channel, got {v.shape}")
    return v.reshape((1, c) + (1,) * (ndim - 2))


@_scalars(num_groups="int", eps="float")
def group_norm_forward(input, num_groups, weight, bias, eps):
    """x (N, C, ...) -> (y, mean, rstd): each sample's group of C / num_groups channels normalised as
    one row (statistics (N * num_groups,)), then scaled and shifted per channel."""
    fn = "group_norm_forward"
    x = _float(input, fn, "input")
    n, c, g, grouped = _gn_dims(x, num_groups, fn)
    if not eps > 0:
        raise ValueError(f"{fn}: eps must be > 0")
    weight = _channel(weight, c, fn, "weight", x.dtype, x.ndim)
    bias = _channel(bias, c, fn, "bias", x.dtype, x.ndim)
    x64 = x.astype(np.float64).reshape(grouped)
    d = max(grouped[2], 1)  # an empty group has mean 0 and variance 0, as natively
    mean = x64.sum(axis=2, keepdims=True) / d
    rstd = 1 / np.sqrt(((x64 - mean) ** 2).sum(axis=2, keepdims=True) / d + eps)
    return _normed(((x64 - mean) * rstd).reshape(x.shape), weight, bias, mean, rstd, x.dtype)


@_scalars(num_groups="int", need_input="bool", need_weight="bool", need_bias="bool")
def group_norm_backward(gy, input, num_groups, weight, mean, rstd, need_input=True, need_weight=True, need_bias=True):
    """gx = rstd (g - mean(g) - xhat mean(g xhat)) over each group with g = gy gamma; ggamma and gbeta
    sum gy xhat and gy over every axis but the channels'."""
    fn = "group_norm_backward"
    gy, x = _array(gy, fn, "gy"), _float(input, fn, "input")
    _array(mean, fn, "mean"), _array(rstd, fn, "rstd")
    _same_dtype(x, "input", gy, "gy", fn)
    _same_shape(x, "input", gy, "gy", fn)
    n, c, g, grouped = _gn_dims(x, num_groups, fn)
    mean, rstd = _convertible(mean, x.dtype, fn, "mean"), _convertible(rstd, x.dtype, fn, "rstd")
    if mean.size != n * g or rstd.size != n * g:
        raise ValueError(f"{fn}: mean and rstd must have one entry per sample and group ({n * g})")
    weight = _channel(weight, c, fn, "weight", x.dtype, x.ndim)
    m, r = mean.reshape(n, g, 1), rstd.reshape(n, g, 1)
    xhat = ((x.reshape(grouped) - m) * r).reshape(x.shape)
    gg = (gy * (1 if weight is None else weight)).reshape(grouped)
    xh = xhat.reshape(grouped)
    gx = None
    if need_input:
        d = max(grouped[2], 1)
        gx = r * (gg - gg.sum(axis=2, keepdims=True) / d - xh * (gg * xh).sum(axis=2, keepdims=True) / d)
        gx = gx.reshape(x.shape).astype(x.dtype)
    axes = (0,) + tuple(range(2, x.ndim))
    return (gx, (gy * xhat).sum(axis=axes).astype(x.dtype) if need_weight else None,
            gy.sum(axis=axes).astype(x.dtype) if need_bias else None)
