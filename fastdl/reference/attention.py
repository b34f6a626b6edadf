"""Attention: scaled dot-product attention, a masked and scaled softmax, additive (Bahdanau) scores.

The readable maths with the whole (L, S) score matrix in memory; the native kernels compute the
same in blocks with an online softmax and never hold it.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import (_array, _float, _float_value, _mask, _same_dtype, _same_shape, _scalars, _want_ndim,
                      _want_shape)
from .elementwise import dropout_mask


def _sdpa_args(q, k, v, mask, mask_div, scale, dropout_p, fn):
    q = _float(_array(q, fn, "q"), fn, "q")
    k, v = _array(k, fn, "k"), _array(v, fn, "v")
    _same_dtype(q, "q", k, "k", fn)
    _same_dtype(q, "q", v, "v", fn)
    for a, n in ((q, "q"), (k, "k"), (v, "v")):
        _want_ndim(a, n, fn, 3)
    B, L, E = q.shape
    S, Ev = k.shape[1], v.shape[2]
    _want_shape(k, (B, S, E), "k", fn)
    _want_shape(v, (B, S, Ev), "v", fn)
    if mask is not None:
        mask = _array(mask, fn, "mask")
        if mask.dtype != q.dtype:
            raise TypeError(f"{fn}: mask must be an additive mask of q's dtype {q.dtype}, got {mask.dtype}")
        _want_ndim(mask, "mask", fn, 3)
        mb, ml = mask.shape[:2]
        if mask.shape[2] != S or ml not in (1, L) or (mb < 1 and B > 0):
            raise ValueError(f"{fn}: mask must have shape (mb >= 1, 1 or L={L}, S={S}), got {tuple(mask.shape)}")
        if mask_div < 1:
            raise ValueError(f"{fn}: mask_div must be >= 1, got {mask_div}")
    if scale is None:
        scale = 1.0 / math.sqrt(E) if E > 0 else 1.0
    else:
        scale = _float_value(scale, fn, "scale")
        if not math.isfinite(scale):
            raise ValueError(f"{fn}: scale must be finite, got {scale}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{fn}: dropout_p must be in [0, 1), got {dropout_p}")
    return q, k, v, mask, scale


def _scale_in_range(scale, dtype, fn):
    """The scale must stay finite in the inputs' dtype (1e300 overflows float32)."""
    with np.errstate(over="ignore"):
        if not np.isfinite(dtype.type(scale)):
            raise ValueError(f"{fn}: scale {scale} is out of range for the inputs' dtype")


def _seed(seed, fn):
    if seed < 0:
        raise ValueError(f"{fn}: seed must be >= 0, got {seed}")
    return seed


def _probs(q, k, mask, mask_div, causal, scale):
    """Softmax weights (B, L, S) and each row's log-sum-exp (B, L); rows with nothing to attend are 0 / -inf."""
    B, L, _ = q.shape
    S = k.shape[1]
    s = _scores(q, k, mask, mask_div, causal, scale)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        m = s.max(axis=-1, keepdims=True) if S else np.full((B, L, 1), -np.inf, q.dtype)
        dead = np.isneginf(m)
        e = np.exp(s - np.where(dead, 0, m))
        tot = e.sum(axis=-1, keepdims=True)
        p = np.where(dead, 0, e / np.where(dead, 1, tot))
        lse = np.where(dead, -np.inf, m + np.log(np.where(dead, 1, tot)))[..., 0]
    return p.astype(q.dtype), lse.astype(q.dtype)


def _scores(q, k, mask, mask_div, causal, scale):
    """scale q k^T + mask, -inf where causally hidden: (B, L, S)."""
    B, L, _ = q.shape
    S = k.shape[1]
    s = scale * (q @ k.transpose(0, 2, 1))
    if mask is not None:
        s = s + mask[(np.arange(B) // mask_div) % mask.shape[0]]
    if causal:
        s = np.where(np.tril(np.ones((L, S), bool)), s, -np.inf)
    return s


def _probs_from_lse(q, k, lse, mask, mask_div, causal, scale):
    """The backward's probabilities exp(scores - lse) from the forward's saved log-sum-exp (0 in a row
    with lse = -inf), as the native kernel recomputes them."""
    s = _scores(q, k, mask, mask_div, causal, scale)
    dead = np.isneginf(lse)[..., None] | np.isneginf(s)  # masked keys have probability 0, whatever lse is
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(dead, 0, np.exp(s - lse[..., None])).astype(q.dtype)


def _keep(shape, p, seed, dtype):
    """The dropout factor of each weight: 1/(1-p) where kept, 0 where dropped (ones without dropout)."""
    if p == 0:
        return None
    return dropout_mask(shape, p, seed).astype(dtype) * dtype.type(1.0 / (1.0 - p))


@_scalars(mask_div="int", is_causal="bool", dropout_p="float", seed="int")
def attention_forward(q, k, v, mask=None, mask_div=1, is_causal=False, scale=None, dropout_p=0.0, seed=0):
    """q (B, L, E), k (B, S, E), v (B, S, Ev) -> out (B, L, Ev), lse (B, L).

    out = dropout(softmax(scale q k^T + mask)) v; ``mask`` (mb, 1 or L, S) is additive, batch b
    reading slice (b // mask_div) % mb; ``is_causal``: query i sees keys j <= i.  A row that may
    attend to nothing gives 0 and lse = -inf.  Dropout keeps weight (b, i, j) where
    ``dropout_mask((B, L, S), dropout_p, seed)`` does.
    """
    fn = "attention_forward"
    q, k, v, mask, scale = _sdpa_args(q, k, v, mask, mask_div, scale, dropout_p, fn)
    _seed(seed, fn)
    _scale_in_range(scale, q.dtype, fn)
    p, lse = _probs(q, k, mask, mask_div, is_causal, scale)
    z = _keep(p.shape, dropout_p, seed, q.dtype)
    out = (p if z is None else p * z) @ v
    return out.astype(q.dtype), lse


@_scalars(mask_div="int", is_causal="bool", dropout_p="float", seed="int")
def attention_backward(gout, q, k, v, out, lse, mask=None, mask_div=1, is_causal=False, scale=None, dropout_p=0.0,
                       seed=0):
    """(gq, gk, gv) of attention_forward: dP = gout v^T (times the dropout factor),
    dS = P (dP - rowsum(gout * out)), gq = scale dS k, gk = scale dS^T q, gv = (P * factor)^T gout."""
    fn = "attention_backward"
    q, k, v, mask, scale = _sdpa_args(q, k, v, mask, mask_div, scale, dropout_p, fn)
    _seed(seed, fn)
    gout, out, lse = _array(gout, fn, "gout"), _array(out, fn, "out"), _array(lse, fn, "lse")
    for a, n in ((gout, "gout"), (out, "out"), (lse, "lse")):
        _same_dtype(q, "q", a, n, fn)
    B, L, _ = q.shape
    Ev = v.shape[2]
    _want_shape(gout, (B, L, Ev), "gout", fn)
    _want_shape(out, (B, L, Ev), "out", fn)
    _want_shape(lse, (B, L), "lse", fn)
    _scale_in_range(scale, q.dtype, fn)
    p = _probs_from_lse(q, k, lse, mask, mask_div, is_causal, scale)
    z = _keep(p.shape, dropout_p, seed, q.dtype)
    dp = gout @ v.transpose(0, 2, 1)
    if z is not None:
        dp = dp * z
    d = np.sum(gout * out, axis=-1, keepdims=True)
    ds = scale * p * (dp - d)
    gv = (p if z is None else p * z).transpose(0, 2, 1) @ gout
    return (ds @ k).astype(q.dtype), (ds.transpose(0, 2, 1) @ q).astype(q.dtype), gv.astype(q.dtype)


@_scalars(scale="float")
def masked_softmax_forward(x, mask=None, scale=1.0):
    """y = softmax(scale x) along the last axis over entries where ``mask`` (x's shape) is nonzero; a
    row with nothing kept is 0."""
    fn = "masked_softmax_forward"
    x = _float(x, fn, "x")
    _want_ndim(x, "x", fn, 1, 64)
    scale = _finite(scale, fn)
    keep = np.ones(x.shape, bool) if mask is None else _mask(mask, x, fn)
    s = np.where(keep, scale * x, -np.inf)
    with np.errstate(invalid="ignore"):
        m = s.max(axis=-1, keepdims=True) if x.shape[-1] else np.zeros(x.shape[:-1] + (1,), x.dtype)
        dead = np.isneginf(m)
        e = np.exp(s - np.where(dead, 0, m))
        y = np.where(dead, 0, e / np.where(dead, 1, e.sum(axis=-1, keepdims=True)))
    return y.astype(x.dtype)


@_scalars(scale="float")
def masked_softmax_backward(gy, y, scale=1.0):
    """gx = scale y (gy - sum(gy y)) along the last axis."""
    fn = "masked_softmax_backward"
    gy, y = _array(gy, fn, "gy"), _float(y, fn, "y")
    _same_dtype(y, "y", gy, "gy", fn)
    _same_shape(y, "y", gy, "gy", fn)
    _want_ndim(y, "y", fn, 1, 64)
    scale = _finite(scale, fn)
    return (scale * y * (gy - np.sum(gy * y, axis=-1, keepdims=True))).astype(y.dtype)


def _finite(scale, fn):
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"{fn}: scale must be finite, got {scale}")
    return scale


def _additive_args(qp, kp, v, fn):
    qp = _float(_array(qp, fn, "qp"), fn, "qp")
    kp, v = _array(kp, fn, "kp"), _array(v, fn, "v")
    _same_dtype(qp, "qp", kp, "kp", fn)
    _same_dtype(qp, "qp", v, "v", fn)
    _want_ndim(qp, "qp", fn, 3)
    _want_ndim(kp, "kp", fn, 3)
    B, L, H = qp.shape
    S = kp.shape[1]
    _want_shape(kp, (B, S, H), "kp", fn)
    _want_shape(v, (H,), "v", fn)
    return qp, kp, v


def additive_attention_forward(qp, kp, v):
    """qp (B, L, H), kp (B, S, H), v (H,) -> scores (B, L, S) = sum_h v_h tanh(qp[b,i,h] + kp[b,j,h])."""
    qp, kp, v = _additive_args(qp, kp, v, "additive_attention_forward")
    return (np.tanh(qp[:, :, None, :] + kp[:, None, :, :]) @ v).astype(qp.dtype)


@_scalars(need_qp="bool", need_kp="bool", need_v="bool")
def additive_attention_backward(gs, qp, kp, v, need_qp=True, need_kp=True, need_v=True):
    """gs (B, L, S) -> (gqp, gkp, gv); g_pre = gs v (1 - tanh^2) summed over keys for gqp, over queries
    for gkp; gv = sum gs tanh.  A gradient not needed is None."""
    fn = "additive_attention_backward"
    gs = _array(gs, fn, "gs")  # every array converted first, as the native binding
    qp, kp, v = _additive_args(qp, kp, v, fn)
    _same_dtype(qp, "qp", gs, "gs", fn)
    _want_shape(gs, qp.shape[:2] + (kp.shape[1],), "gs", fn)
    t = np.tanh(qp[:, :, None, :] + kp[:, None, :, :])
    pre = gs[..., None] * v * (1 - t * t)
    gq = pre.sum(axis=2).astype(qp.dtype) if need_qp else None
    gk = pre.sum(axis=1).astype(qp.dtype) if need_kp else None
    gv = np.einsum("bls,blsh->h", gs, t).astype(qp.dtype) if need_v else None
    return gq, gk, gv
