"""matmul (batched, broadcasting a batch of 1) and linear, with their gradients."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _array, _float, _same_dtype, _want_ndim, _want_shape


def _mm_check(a, b, fn):
    """a (M, K) | (Ba, M, K) and b (K, N) | (Bb, K, N) of one dtype, Ba and Bb equal or 1."""
    _want_ndim(a, "a", fn, 2, 3)
    _want_ndim(b, "b", fn, 2, 3)
    _same_dtype(a, "a", b, "b", fn)
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{fn}: a has shape {a.shape} and b has shape {b.shape}: inner dimensions differ")
    ba = a.shape[0] if a.ndim == 3 else 1
    bb = b.shape[0] if b.ndim == 3 else 1
    if ba != bb and 1 not in (ba, bb):
        raise ValueError(f"{fn}: batch sizes of a {a.shape} and b {b.shape} do not broadcast")
    out = (bb if ba == 1 else ba,) if 3 in (a.ndim, b.ndim) else ()  # 1 against 0 broadcasts to 0
    return out + (a.shape[-2], b.shape[-1])


def matmul(a, b):
    """a (M, K) | (B, M, K), b (K, N) | (B, K, N) -> y (M, N) | (B, M, N)."""
    a, b = _float(a, "matmul", "a"), _array(b, "matmul", "b")
    _mm_check(a, b, "matmul")
    return np.matmul(a, b)


@_scalars(need_a="bool", need_b="bool")
def matmul_backward(gy, a, b, need_a=True, need_b=True):
    """gy like y -> (ga = gy b^T, gb = a^T gy), summed over a broadcast batch."""
    fn = "matmul_backward"
    a, b, gy = _float(a, fn, "a"), _array(b, fn, "b"), _array(gy, fn, "gy")
    out = _mm_check(a, b, fn)
    _same_dtype(a, "a", gy, "gy", fn)
    _want_shape(gy, out, "gy", fn)
    ga = gb = None
    if need_a:
        ga = np.matmul(gy, np.swapaxes(b, -1, -2))
        if ga.shape != a.shape:
            ga = ga.sum(axis=0).reshape(a.shape)
    if need_b:
        gb = np.matmul(np.swapaxes(a, -1, -2), gy)
        if gb.shape != b.shape:
            gb = gb.sum(axis=0).reshape(b.shape)
    return ga, gb


def _linear_check(x, weight, fn):
    """x (N, in), weight (out, in) of one dtype."""
    _want_ndim(x, "x", fn, 2)
    _want_ndim(weight, "weight", fn, 2)
    _same_dtype(x, "x", weight, "weight", fn)
    if x.shape[1] != weight.shape[1]:
        raise ValueError(f"{fn}: x has shape {x.shape} but weight has shape {weight.shape} "
                         "(expected x (N, in_features), weight (out_features, in_features))")


def linear_forward(x, weight, bias=None):
    """x (N, in), weight (out, in), bias (out,) -> y (N, out) = x weight^T + bias."""
    fn = "linear_forward"
    x, weight = _float(x, fn, "x"), _array(weight, fn, "weight")
    _linear_check(x, weight, fn)
    y = x @ weight.T
    if bias is not None:
        bias = _array(bias, fn, "bias")
        _same_dtype(x, "x", bias, "bias", fn)
        _want_shape(bias, (weight.shape[0],), "bias", fn)
        y = y + bias
    return y


@_scalars(need_x="bool", need_weight="bool", need_bias="bool")
def linear_backward(gy, x, weight, need_x=True, need_weight=True, need_bias=True):
    """gy (N, out) -> gx = gy weight (N, in), gweight = gy^T x (out, in), gbias = sum_n gy (out,)."""
    fn = "linear_backward"
    gy, x, weight = _array(gy, fn, "gy"), _float(x, fn, "x"), _array(weight, fn, "weight")
    _linear_check(x, weight, fn)
    _same_dtype(x, "x", gy, "gy", fn)
    _want_shape(gy, (x.shape[0], weight.shape[0]), "gy", fn)
    return (gy @ weight if need_x else None,
            gy.T @ x if need_weight else None,
            gy.sum(axis=0) if need_bias else None)
