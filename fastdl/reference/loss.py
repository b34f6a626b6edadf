"""Softmax cross-entropy (label smoothing, ignore_index), BCE with logits (masked), MSE."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _array, _float, _mask, _same_dtype, _same_shape, _want_ndim, _want_shape
from .elementwise import sigmoid_forward


def _targets(target, n, c, ignore_index, fn):
    t = _array(target, fn, "target")
    if t.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must hold integer class indices, got {t.dtype}")
    _want_shape(t, (n,), "target", fn)
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        i = int(np.argmax(bad))
        raise IndexError(f"{fn}: target[{i}] = {t[i]} is not a class index in [0, {c})")
    return t.astype(np.int64)


def _ce_check(x, target, ignore_index, label_smoothing, fn):
    _want_ndim(x, "logits", fn, 2)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    return _targets(target, x.shape[0], x.shape[1], ignore_index, fn)


@_scalars(ignore_index="int", label_smoothing="float")
def cross_entropy_forward(logits, target, ignore_index=-100, label_smoothing=0.0):
    """logits (N, C), target (N,) -> (loss (N,), lse (N,)).

    loss_n = (1 - eps) (lse_n - x[n, t_n]) + eps (lse_n - mean_c x[n, c]), 0 where t_n == ignore_index.
    """
    x = _float(logits, "cross_entropy_forward", "logits")
    t = _ce_check(x, target, ignore_index, label_smoothing, "cross_entropy_forward")
    n, c = x.shape
    keep = t != ignore_index
    with np.errstate(invalid="ignore"):
        m = x.max(axis=1)
        lse = m + np.log(np.exp(x - m[:, None]).sum(axis=1))
    picked = x[np.arange(n), np.where(keep, t, 0)]
    nll = lse - picked
    eps = label_smoothing
    loss = nll if eps == 0 else (1 - eps) * nll + eps * (lse - x.mean(axis=1))
    return np.where(keep, loss, 0).astype(x.dtype), lse.astype(x.dtype)


@_scalars(ignore_index="int", label_smoothing="float")
def cross_entropy_backward(gloss, logits, target, lse, ignore_index=-100, label_smoothing=0.0):
    """gloss (N,) -> glogits (N, C) = gloss_n (softmax - (1 - eps) onehot(t_n) - eps / C)."""
    fn = "cross_entropy_backward"
    gloss, x, lse = _array(gloss, fn, "gloss"), _float(logits, fn, "logits"), _array(lse, fn, "lse")
    _want_ndim(x, "logits", fn, 2)
    if not 0.0 <= label_smoothing <= 1.0:  # the native order: smoothing before the other arrays' checks
        raise ValueError(f"{fn}: label_smoothing must be in [0, 1], got {label_smoothing}")
    for name, a in (("gloss", gloss), ("lse", lse)):
        _same_dtype(x, "logits", a, name, fn)
    _same_shape(lse, "lse", gloss, "gloss", fn)
    _want_shape(lse, x.shape[:1], "lse", fn)
    t = _ce_check(x, target, ignore_index, label_smoothing, fn)
    n, c = x.shape
    keep = t != ignore_index
    p = np.exp(x - np.asarray(lse)[:, None])
    onehot = np.zeros_like(x)
    onehot[np.arange(n)[keep], t[keep]] = 1
    eps = label_smoothing
    g = np.asarray(gloss)[:, None] * (p - (1 - eps) * onehot - eps / c)
    return np.where(keep[:, None], g, 0).astype(x.dtype)


def _bce_check(gloss, logits, target, mask, fn):
    x, t = _float(logits, fn, "logits"), _array(target, fn, "target")
    _same_dtype(x, "logits", t, "target", fn)
    if gloss is not None:
        _same_dtype(x, "logits", gloss, "gloss", fn)
    _same_shape(x, "logits", t, "target", fn)
    if gloss is not None:
        _same_shape(x, "logits", gloss, "gloss", fn)
    return x, t, (np.ones(x.shape, bool) if mask is None else _mask(mask, x, fn))


def bce_with_logits_forward(logits, target, mask=None):
    """Element-wise max(x, 0) - x t + log(1 + exp(-|x|)); 0 where mask is 0 (a missing label)."""
    x, t, m = _bce_check(None, logits, target, mask, "bce_with_logits_forward")
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return np.where(m, loss, 0).astype(x.dtype)


def bce_with_logits_backward(gloss, logits, target, mask=None):
    """gx = gloss (sigmoid(x) - t); 0 where mask is 0."""
    gloss = _array(gloss, "bce_with_logits_backward", "gloss")
    x, t, m = _bce_check(gloss, logits, target, mask, "bce_with_logits_backward")
    g = gloss * (sigmoid_forward(x) - t)
    return np.where(m, g, 0).astype(x.dtype)


def _mse_check(input, target, fn):
    p, t = _float(input, fn, "input"), _array(target, fn, "target")
    _same_dtype(p, "input", t, "target", fn)
    _same_shape(p, "input", t, "target", fn)
    return p, t


def mse_forward(input, target):
    """sum_i (p_i - t_i)^2 as a Python float (accumulated in float64)."""
    p, t = _mse_check(input, target, "mse_forward")
    d = p.astype(np.float64) - t
    return float(np.sum(d * d))


@_scalars(scale="float")
def mse_backward(scale, input, target):
    """gp = scale * 2 (p - t)."""
    p, t = _mse_check(input, target, "mse_backward")
    return (p.dtype.type(scale) * 2 * (p - t)).astype(p.dtype)
