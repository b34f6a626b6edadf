"""Differentiable ops on the backend's kernel table, with PyTorch's signatures.

Shapes follow PyTorch: ``linear`` takes x (..., in) and weight (out, in);
losses take logits (N, C) or (N, C, d1, ...) and targets (N,) or (N, d1, ...).
"""
from __future__ import annotations

import numpy as np

from .. import backend, rng
from ..shapes import astype, float_arg, reshape as _reshape
from ..tensor import Tensor, _result, as_tensor, contiguous, matmul  # noqa: F401  (matmul re-exported)
from .maths import einsum

__all__ = [
    "linear", "matmul", "cat", "stack", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "dropout",
    "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits", "one_hot", "dropout2d", "dropout1d",
    "bilinear",
]


_c = contiguous


def linear(x, weight, bias=None) -> Tensor:
    """x (..., in), weight (out, in), bias (out,) -> x weight^T + bias, shape (..., out)."""
    x, weight = as_tensor(x), as_tensor(weight)
    bias = None if bias is None else as_tensor(bias)
    if x.ndim == 0:
        raise ValueError("linear: x must have at least 1 dimension")
    if x.dtype != weight.dtype:
        raise TypeError(f"linear: x has dtype {x.dtype} but weight has {weight.dtype}")
    if weight.ndim != 2 or weight.shape[1] != x.shape[-1]:
        raise ValueError(f"linear: weight must be (out_features, {x.shape[-1]}) for x of shape {x.shape}, got "
                         f"{weight.shape}")
    lead = x.shape[:-1]
    x2 = _reshape(x.data, (-1, x.shape[-1]))
    kern = backend.ops(x2, weight.data)
    y = kern.linear_forward(x2, weight.data, None if bias is None else bias.data)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def bw(g):
        gx, gw, gb = kern.linear_backward(_reshape(_c(g), (-1, weight.shape[0])), x2, weight.data,
                                          x.requires_grad, weight.requires_grad,
                                          bias is not None and bias.requires_grad)
        gx = None if gx is None else _reshape(gx, x.shape)
        return (gx, gw) if bias is None else (gx, gw, gb)
    return _result(_reshape(y, lead + (weight.shape[0],)), parents, bw)


def relu(x) -> Tensor:
    return as_tensor(x).relu()


def tanh(x) -> Tensor:
    return as_tensor(x).tanh()


def sigmoid(x) -> Tensor:
    return as_tensor(x).sigmoid()


def softmax(x, axis=-1, dim=None) -> Tensor:
    """Softmax along ``axis`` (``dim`` accepted), numerically stable."""
    return as_tensor(x).softmax(axis=axis if dim is None else dim)


def log_softmax(x, axis=-1, dim=None) -> Tensor:
    return as_tensor(x).log_softmax(axis=axis if dim is None else dim)


def dropout(x, p: float = 0.5, training: bool = True, mask=None) -> Tensor:
    """Inverted dropout: zero each entry with probability ``p`` and scale the rest by 1/(1-p).

    ``p`` is the drop probability (the curriculum's keep_prob is ``1 - p``).
    A given ``mask`` (nonzero = keep) is applied instead of a fresh one; masks
    come from :func:`fastdl.manual_seed`'s generator, so runs repeat.
    """
    x = as_tensor(x)
    p = float_arg(p, "p", "dropout", 0.0, 1.0)
    if not training or p == 0.0:
        return x
    kern = backend.ops(x.data)
    if mask is None:
        mask = kern.dropout_mask(x.shape, float(p), rng.next_seed())
    else:
        mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    y = kern.dropout_apply(x.data, mask, scale)
    return _result(y, (x,), lambda g: (kern.dropout_apply(_c(g), mask, scale),))


def dropout2d(x, p: float = 0.5, training: bool = True) -> Tensor:
    """Zero whole channels: each (n, c) plane of (N, C, ...) or (C, ...) is dropped with probability ``p``,
    the kept ones scaled by 1/(1-p) (PyTorch's ``Dropout1d/2d/3d``); the mask uses the library's seed."""
    x = as_tensor(x)
    p = float_arg(p, "p", "dropout2d", 0.0, 1.0)
    if not training or p == 0.0:
        return x
    if x.ndim < 2:
        raise ValueError(f"dropout2d: input must be (N, C, ...) or (C, ...), got shape {x.shape}")
    lead = x.shape[:2] if x.ndim >= 3 else x.shape[:1]
    mask = backend.ops(x.data).dropout_mask(lead, float(p), rng.next_seed())
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    m = _reshape(astype(mask, x.dtype) * scale, lead + (1,) * (x.ndim - len(lead)))
    return x * Tensor(m)


def bilinear(input1, input2, weight, bias=None) -> Tensor:
    """y = x1^T W x2 + b: input1 (..., in1), input2 (..., in2), weight (out, in1, in2), bias (out,)."""
    a, b, w = as_tensor(input1), as_tensor(input2), as_tensor(weight)
    if w.ndim != 3 or a.shape[-1:] != w.shape[1:2] or b.shape[-1:] != w.shape[2:] or a.shape[:-1] != b.shape[:-1]:
        raise ValueError(f"bilinear: expected input1 (..., {w.shape[1:2]}), input2 (..., {w.shape[2:]}) with the same "
                         f"leading dims for weight {w.shape}, got {a.shape} and {b.shape}")
    y = einsum("...i,oij,...j->...o", a, w, b)
    return y if bias is None else y + bias


def _reduce(loss: Tensor, reduction: str, count=None) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        if count is None:
            return loss.mean()
        return loss.sum() / float(count) if count else loss.sum() * float("nan")
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _raw(v):
    """The array of a Tensor, another device's array as it is, anything else as a NumPy array."""
    v = v.data if isinstance(v, Tensor) else v
    return v if type(v) is np.ndarray or backend.on_device(v) else np.asarray(v)


def _class_last(x: Tensor, target):
    """(N, C, d1, ...) logits -> (N*d1*..., C); targets flattened to match."""
    t = _raw(target)
    if x.ndim < 2:
        raise ValueError(f"cross_entropy: input must be (N, C) or (N, C, d1, ...), got shape {x.shape}")
    if t.shape != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"cross_entropy: target has shape {t.shape}, expected {(x.shape[0],) + x.shape[2:]} "
                         f"for input of shape {x.shape}")
    if x.ndim == 2:
        return x, t, t.shape
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return x.transpose(perm).reshape(-1, x.shape[1]), _reshape(t, (-1,)), t.shape


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from logits and integer class targets (fused, numerically stable).

    input (N, C) or (N, C, d1, ...), target (N,) or (N, d1, ...) of int, or class probabilities of
    the input's shape.  ``weight`` (C,) rescales each class; ``mean`` then divides by the summed
    weights of the counted targets (PyTorch's rule), otherwise by the number of targets that are
    not ``ignore_index``.
    """
    x = as_tensor(input)
    label_smoothing = float_arg(label_smoothing, "label_smoothing", "cross_entropy", 0.0, 1.0)
    if isinstance(target, Tensor) and target.dtype.kind == "f" or \
            (isinstance(target, np.ndarray) and target.dtype.kind == "f"):  # (a device array: wrap it in a Tensor)
        return _soft_cross_entropy(x, target, weight, reduction, label_smoothing)
    if weight is not None:
        return _weighted_cross_entropy(x, target, weight, ignore_index, reduction, label_smoothing)
    x2, t, tshape = _class_last(x, target)
    kern = backend.ops(x2.data, t)
    loss, lse = kern.cross_entropy_forward(x2.data, t, ignore_index, float(label_smoothing))
    logits = x2.data

    def bw(g):
        return (kern.cross_entropy_backward(_c(g), logits, t, lse, ignore_index, float(label_smoothing)),)
    per = _result(loss, (x2,), bw)
    if reduction == "none":
        return per.reshape(tshape)
    return _reduce(per, reduction, count=_count(t != ignore_index))


def _count(mask) -> int:
    """How many entries of a boolean array are True (on its own device)."""
    if type(mask) is np.ndarray:
        return int(np.count_nonzero(mask))
    xp = backend.array_namespace(mask)
    return int(xp.sum(xp.astype(mask, xp.int64)))


def _class_weight(weight, x: Tensor, fn: str) -> Tensor:
    w = weight if isinstance(weight, Tensor) else Tensor(backend.to_device(np.asarray(weight, dtype=x.dtype), x.device))
    if w.shape != (x.shape[1],):
        raise ValueError(f"{fn}: weight must have one value per class ({x.shape[1]},), got shape {w.shape}")
    return w.astype(x.dtype)


def _weighted_cross_entropy(x, target, weight, ignore_index, reduction, eps):
    """PyTorch's class-weighted cross-entropy: (1 - eps) w[t] nll + eps / C sum_c w_c (-log p_c)."""
    w = _class_weight(weight, x, "cross_entropy")
    x2, t, tshape = _class_last(x, target)
    n_cls = x2.shape[1]
    t = backend.to_device(t, backend.CPU)  # the targets are checked and turned into indices on the host
    keep = t != ignore_index
    if np.any((t[keep] < 0) | (t[keep] >= n_cls)):
        raise ValueError(f"cross_entropy: target holds classes outside [0, {n_cls})")
    ts = np.where(keep, t, 0)
    logp = x2.log_softmax(axis=1)
    rows = np.arange(len(t))
    keep_f = Tensor(backend.to_device(keep.astype(x.dtype), x.device))
    wt = w[ts] * keep_f
    per = -logp[rows, ts] * wt * (1 - eps)
    if eps:
        per = per - (logp * w).sum(1) * keep_f * (eps / n_cls)
    if reduction == "none":
        return per.reshape(tshape)
    if reduction == "mean":
        return per.sum() / wt.sum()
    return _reduce(per, reduction)


def _soft_cross_entropy(x, target, weight, reduction, eps):
    """Cross-entropy against class probabilities (the target has the input's shape)."""
    t = target if isinstance(target, Tensor) else Tensor(np.asarray(target, dtype=x.dtype))
    if t.shape != x.shape:
        raise ValueError(f"cross_entropy: probability targets must have the input's shape {x.shape}, got {t.shape}")
    n_cls = x.shape[1]
    logp = x.log_softmax(axis=1)
    if eps:
        t = t * (1 - eps) + eps / n_cls
    prod = logp * t.astype(x.dtype)
    if weight is not None:
        w = _class_weight(weight, x, "cross_entropy")
        prod = prod * w.reshape((1, n_cls) + (1,) * (x.ndim - 2))
    per = -prod.sum(1)
    return _reduce(per, reduction)


def nll_loss(input, target, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at integer ``target`` (N,)."""
    x = as_tensor(input)
    t = astype(_raw(target), np.int64, copy=False)
    if x.ndim != 2 or t.shape != (x.shape[0],):
        raise ValueError(f"nll_loss: expected input (N, C) and target (N,), got {x.shape} and {t.shape}")
    keep = t != ignore_index
    if type(t) is np.ndarray:
        picked = -x[np.arange(len(t)), np.where(keep, t, 0)] * keep.astype(x.dtype)
    else:  # another device, no integer-array indexing there: pick through a one-hot mask
        xp = backend.array_namespace(t)
        onehot = xp.reshape(xp.arange(x.shape[1]), (1, -1)) == xp.reshape(t, (-1, 1))  # ignored rows: none
        picked = -(x * Tensor(astype(onehot, x.dtype))).sum(1)
    return _reduce(picked, reduction, count=_count(keep))


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``target`` gets no gradient."""
    p = as_tensor(input)
    t = _raw(target)
    t = t.astype(p.dtype, copy=False) if type(t) is np.ndarray else astype(t, p.dtype, copy=False)
    if t.shape != p.shape:
        raise ValueError(f"mse_loss: target has shape {t.shape} but input has shape {p.shape}")
    if reduction == "none":
        d = p - t
        return d * d
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    kern = backend.ops(p.data, t)
    total = kern.mse_forward(p.data, t)
    n = p.data.size
    scale = 1.0 / n if reduction == "mean" and n else 1.0
    value = total * scale if n or reduction == "sum" else float("nan")
    pd = p.data
    xp = backend.array_namespace(pd)
    return _result(xp.asarray(value, dtype=backend.xp_dtype(xp, p.dtype)), (p,),
                   lambda g: (kern.mse_backward(float(g) * scale, pd, t),))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None, mask=None) -> Tensor:
    """Sigmoid + binary cross-entropy, fused and stable: max(x,0) - x t + log(1 + e^-|x|).

    ``weight`` (broadcast to the input) rescales each element, ``pos_weight`` (broadcast, usually one
    per class on the last dim) the positive term, as PyTorch's.  ``mask`` (same shape, nonzero = the
    label is present) drops missing labels from both loss and gradient; ``mean`` then divides by the
    number of present labels (multi-task learning with partly labelled examples).
    """
    x = as_tensor(input)
    t = astype(_raw(target), x.dtype, copy=False)
    if t.shape != x.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target has shape {t.shape} but input has shape {x.shape}")
    m = None
    if mask is not None:
        m = _raw(mask)
        if m.shape != x.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: mask has shape {m.shape} but input has shape {x.shape}")
        m = _c(astype(m, np.uint8))
    count = None if m is None else _count(m != 0)
    if weight is not None or pos_weight is not None:
        return _reduce(_weighted_bce(x, t, weight, pos_weight, m), reduction, count=count)
    kern = backend.ops(x.data, t, m)
    xd = x.data
    loss = kern.bce_with_logits_forward(xd, t, m)
    per = _result(loss, (x,), lambda g: (kern.bce_with_logits_backward(_c(g), xd, t, m),))
    return _reduce(per, reduction, count=count)


def _broadcast_arg(v, x, fn, name):
    a = _raw(v)
    a = astype(a, x.dtype, copy=False) if backend.on_device(a) else np.asarray(a, dtype=x.dtype)
    try:
        return backend.array_namespace(a).broadcast_to(a, x.shape)
    except ValueError:
        raise ValueError(f"{fn}: {name} of shape {a.shape} does not broadcast to the input's {x.shape}") from None


def _weighted_bce(x, t, weight, pos_weight, m):
    """PyTorch's formula: w ((1 - t) x + (1 + (pw - 1) t) softplus(-x)), gradient w ((1 - t) - lw sigmoid(-x))."""
    fn = "binary_cross_entropy_with_logits"
    xd = x.data
    w = None if weight is None else _broadcast_arg(weight, x, fn, "weight")
    lw = 1.0 if pos_weight is None else 1 + (_broadcast_arg(pos_weight, x, fn, "pos_weight") - 1) * t
    xp = backend.array_namespace(xd)
    with np.errstate(over="ignore"):
        e = xp.exp(-xp.abs(xd))
        sp = xp.maximum(-xd, xp.zeros_like(xd)) + xp.log1p(e)  # softplus(-x), stable
        sig_neg = xp.where(xd >= 0, e / (1 + e), 1 / (1 + e))
    loss = (1 - t) * xd + lw * sp
    scale = xp.ones_like(xd) if w is None else w
    if m is not None:
        scale = scale * astype(m != 0, x.dtype)
    loss = astype(xp.where(scale != 0, loss * scale, xp.zeros_like(loss)), x.dtype, copy=False)
    return _result(loss, (x,), lambda g: (g * scale * ((1 - t) - lw * sig_neg),))


def one_hot(target, num_classes: int = -1) -> Tensor:
    t = np.asarray(target.data if isinstance(target, Tensor) else target).astype(np.int64)
    n = int(t.max()) + 1 if num_classes < 0 else num_classes
    return Tensor(np.eye(n, dtype=np.int64)[t])


def cat(tensors, axis: int = 0, dim=None) -> Tensor:
    """Concatenate along ``axis`` (``dim`` accepted); the gradient is split back to each input."""
    axis = axis if dim is None else dim
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("cat: give at least one tensor")
    xp = backend.array_namespace(ts[0].data)
    out = (getattr(xp, "concat", None) or xp.concatenate)([t.data for t in ts], axis=axis)
    ax = axis % out.ndim
    bounds = np.cumsum([0] + [t.shape[ax] for t in ts])
    lead = (slice(None),) * ax
    return _result(out, tuple(ts), lambda g: tuple(g[lead + (slice(int(a), int(b)), Ellipsis)]
                                                   for a, b in zip(bounds[:-1], bounds[1:])))


def stack(tensors, axis: int = 0, dim=None) -> Tensor:
    """Stack along a new ``axis``; the gradient's slices along it go back to each input."""
    axis = axis if dim is None else dim
    ts = [as_tensor(t) for t in tensors]
    if not ts:
        raise ValueError("stack: give at least one tensor")
    if any(t.shape != ts[0].shape for t in ts):
        raise ValueError(f"stack: every tensor must have the same shape, got {[t.shape for t in ts]}")
    xp = backend.array_namespace(ts[0].data)
    out = xp.stack([t.data for t in ts], axis=axis)
    lead = (slice(None),) * (axis % out.ndim)
    return _result(out, tuple(ts), lambda g: tuple(g[lead + (i, Ellipsis)] for i in range(len(ts))))


dropout1d = dropout2d  # the same channel rule for (N, C, L)
