"""Attention on the native kernels: scaled dot-product attention (blocked, online softmax), a masked
and scaled softmax, and additive (Bahdanau) attention scores.

Mask meanings follow PyTorch's ``scaled_dot_product_attention``: a boolean ``attn_mask`` is True
where a query *may* attend, a float mask is added to the scores.  A row that may attend to
nothing gives zeros (PyTorch gives NaN there) and no NaN in any gradient.
"""
from __future__ import annotations

import numpy as np

from .. import backend, rng
from ..shapes import broadcast_to, dtype_of, reshape
from ..tensor import Tensor, _result, as_tensor, contiguous

__all__ = ["scaled_dot_product_attention", "masked_softmax", "additive_attention", "additive_mask"]

_c = contiguous


def additive_mask(mask, dtype, fn: str = "attn_mask", allowed_means: str = "may attend") -> np.ndarray:
    """A boolean mask (True = ``allowed_means``) as 0 / -inf, or a float mask cast to ``dtype``."""
    m = mask._host() if isinstance(mask, Tensor) else mask  # masks are prepared on the host
    m = np.asarray(backend.to_device(m, backend.CPU) if backend.on_device(m) else m)
    if m.dtype == np.bool_:
        keep = m if allowed_means == "may attend" else ~m
        return np.where(keep, np.zeros((), dtype), np.array(-np.inf, dtype))
    if m.dtype.kind != "f":
        raise TypeError(f"{fn} must be a boolean or float mask, got dtype {m.dtype}")
    return m.astype(dtype, copy=False)


def _mask3(m: np.ndarray, batch: tuple, L: int, S: int, fn: str):
    """An additive mask broadcastable to batch + (L, S) as the kernel's (mb, 1 or L, S) array and
    divisor: batch b reads slice (b // div) % mb; materialised only where the broadcast needs it."""
    full = batch + (L, S)
    try:
        ok = np.broadcast_shapes(m.shape, full) == full
    except ValueError:
        ok = False
    if not ok or m.ndim > len(full):
        raise ValueError(f"{fn}: attn_mask of shape {tuple(m.shape)} does not broadcast to {full}")
    m = m.reshape((1,) * (len(full) - m.ndim) + m.shape)
    if m.shape[-1] != S:
        m = np.broadcast_to(m, m.shape[:-1] + (S,))
    lead = m.shape[:-2]
    live = [i for i, n in enumerate(lead) if n != 1]
    if live and live != list(range(live[0], live[-1] + 1)):  # broadcast between two real dims: spell it out
        m = np.broadcast_to(m, batch + m.shape[-2:])
        live = list(range(len(batch)))
    mb = int(np.prod([lead[i] for i in live], dtype=np.int64)) if live else 1
    div = int(np.prod(batch[live[-1] + 1:], dtype=np.int64)) if live else 1
    return np.ascontiguousarray(m.reshape(mb, m.shape[-2], S)), max(div, 1)


def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                                 scale=None) -> Tensor:
    """softmax(query key^T * scale + mask) value, as PyTorch's, on the blocked native kernel.

    query (..., L, E), key (..., S, E), value (..., S, Ev), batch dims broadcast; returns
    (..., L, Ev).  ``scale`` defaults to 1/sqrt(E); ``is_causal`` lets query i see keys j <= i
    without building a mask; dropout on the weights uses the library's seeded generator.
    """
    fn = "scaled_dot_product_attention"
    q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
    for t, n in ((q, "query"), (k, "key"), (v, "value")):
        if t.ndim < 2:
            raise ValueError(f"{fn}: {n} must have at least 2 dimensions (..., seq, features), got shape {t.shape}")
    if not (q.dtype == k.dtype == v.dtype):
        raise TypeError(f"{fn}: query, key and value must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}")
    L, E = q.shape[-2:]
    S, Ev = v.shape[-2:]
    if k.shape[-1] != E:
        raise ValueError(f"{fn}: key's last dimension {k.shape[-1]} differs from query's {E}")
    if k.shape[-2] != S:
        raise ValueError(f"{fn}: key has {k.shape[-2]} positions but value has {S}")
    try:
        batch = tuple(np.broadcast_shapes(q.shape[:-2], k.shape[:-2], v.shape[:-2]))
    except ValueError:
        raise ValueError(f"{fn}: batch dimensions of query {q.shape}, key {k.shape} and value {v.shape} "
                         "do not broadcast") from None
    if not 0.0 <= float(dropout_p) < 1.0:
        raise ValueError(f"{fn}: dropout_p must be in [0, 1), got {dropout_p}")
    if attn_mask is not None and is_causal:
        raise ValueError(f"{fn}: give attn_mask or is_causal=True, not both")
    B = int(np.prod(batch, dtype=np.int64))

    def flat(t, rows, cols):
        d = t.data if t.shape[:-2] == batch else broadcast_to(t.data, batch + (rows, cols), copy=True)
        return reshape(_c(d), (B, rows, cols))
    q3, k3, v3 = flat(q, L, E), flat(k, S, E), flat(v, S, Ev)
    mask, div = None, 1
    if attn_mask is not None:
        mask, div = _mask3(additive_mask(attn_mask, q.dtype, fn=f"{fn}: attn_mask"), batch, L, S, fn)
        if backend.on_device(q3):
            mask = backend.to_device(np.ascontiguousarray(mask), q.device)
    seed = rng.next_seed() if dropout_p > 0 else 0
    kern = backend.ops(q3, k3, v3, mask)
    out, lse = kern.attention_forward(q3, k3, v3, mask, div, bool(is_causal), scale, float(dropout_p), seed)

    def bw(g):
        gq, gk, gv = kern.attention_backward(reshape(_c(g), (B, L, Ev)), q3, k3, v3, out, lse, mask, div,
                                             bool(is_causal), scale, float(dropout_p), seed)
        return reshape(gq, batch + (L, E)), reshape(gk, batch + (S, E)), reshape(gv, batch + (S, Ev))
    return _result(reshape(out, batch + (L, Ev)), (q, k, v), bw)


def masked_softmax(x, mask=None, dim: int = -1, scale: float = 1.0) -> Tensor:
    """softmax(scale * x) along ``dim`` over the entries where ``mask`` (broadcastable to x) is True;
    masked entries get 0, and a row with nothing kept is all zeros (never NaN)."""
    x = as_tensor(x)
    if x.ndim == 0:
        raise ValueError("masked_softmax: x must have at least 1 dimension")
    if not -x.ndim <= dim < x.ndim:
        raise IndexError(f"masked_softmax: dim {dim} is out of range for x of shape {x.shape}")
    dim %= x.ndim
    xp = backend.array_namespace(x.data)
    m = None
    if mask is not None:
        m = mask.data if isinstance(mask, Tensor) else mask
        m = m if backend.on_device(m) else backend.to_device(np.asarray(m), x.device)  # a host mask goes over
        if dtype_of(m).kind not in "biu":
            raise TypeError(f"masked_softmax: mask must be boolean (True = keep), got dtype {dtype_of(m)}")
        try:
            fits = np.broadcast_shapes(tuple(m.shape), x.shape) == tuple(x.shape)  # to x's shape, not beyond it
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"masked_softmax: mask of shape {tuple(m.shape)} does not broadcast to x's "
                             f"{x.shape}")
        m = broadcast_to(m, x.shape)
    last = dim == x.ndim - 1
    move = (lambda a: a) if last else (lambda a: xp.moveaxis(a, dim, -1))  # noqa: E731
    xd = move(x.data)
    if m is not None:
        m = _c(move(m))
    kern = backend.ops(xd)
    y = kern.masked_softmax_forward(_c(xd), m, float(scale))

    def bw(g):
        gx = kern.masked_softmax_backward(_c(move(g)), y, float(scale))
        return (gx if last else xp.moveaxis(gx, -1, dim),)
    return _result(y if last else xp.moveaxis(y, -1, dim), (x,), bw)


def additive_attention(query_proj, key_proj, v) -> Tensor:
    """Bahdanau scores sum_h v_h tanh(query_proj[n, i, h] + key_proj[n, j, h]) -> (N, L, S), fused
    (the (N, L, S, H) tanh tensor is never stored; backward recomputes it).

    query_proj (N, L, H) or (N, H) (then the result is (N, S)), key_proj (N, S, H), v (H,).
    """
    qp, kp, v = as_tensor(query_proj), as_tensor(key_proj), as_tensor(v)
    single = qp.ndim == 2
    if single:
        qp = qp.reshape(qp.shape[0], 1, qp.shape[1])
    kern = backend.ops(qp.data)
    s = kern.additive_attention_forward(qp.data, kp.data, v.data)

    def bw(g):
        g3 = _c(g).reshape(s.shape)
        return kern.additive_attention_backward(g3, qp.data, kp.data, v.data, qp.requires_grad, kp.requires_grad,
                                                v.requires_grad)
    out = _result(s, (qp, kp, v), bw)
    return out.reshape(out.shape[0], out.shape[2]) if single else out
