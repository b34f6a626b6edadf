"""Differentiable ops on the backend's kernel table, with PyTorch's signatures.

Shapes follow PyTorch: ``linear`` takes x (..., in) and weight (out, in);
losses take logits (N, C) or (N, C, d1, ...) and targets (N,) or (N, d1, ...).
"""
from __future__ import annotations

import numpy as np

from .. import backend, rng
from ..shapes import float_arg
from ..tensor import Tensor, _result, as_tensor, contiguous, matmul  # noqa: F401  (matmul re-exported)

__all__ = [
    "linear", "matmul", "cat", "stack", "relu", "tanh", "sigmoid", "softmax", "log_softmax", "dropout",
    "cross_entropy", "nll_loss", "mse_loss", "binary_cross_entropy_with_logits", "one_hot",
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
    x2 = x.data.reshape(-1, x.shape[-1])
    kern = backend.ops(x2)
    y = kern.linear_forward(x2, weight.data, None if bias is None else bias.data)
    parents = (x, weight) if bias is None else (x, weight, bias)

    def bw(g):
        gx, gw, gb = kern.linear_backward(_c(g).reshape(-1, weight.shape[0]), x2, weight.data,
                                          x.requires_grad, weight.requires_grad,
                                          bias is not None and bias.requires_grad)
        gx = None if gx is None else gx.reshape(x.shape)
        return (gx, gw) if bias is None else (gx, gw, gb)
    return _result(y.reshape(lead + (weight.shape[0],)), parents, bw)


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


def _reduce(loss: Tensor, reduction: str, count=None) -> Tensor:
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        if count is None:
            return loss.mean()
        return loss.sum() / loss.dtype.type(count) if count else loss.sum() * np.nan
    raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _class_last(x: Tensor, target):
    """(N, C, d1, ...) logits -> (N*d1*..., C); targets flattened to match."""
    t = np.asarray(target.data if isinstance(target, Tensor) else target)
    if x.ndim < 2:
        raise ValueError(f"cross_entropy: input must be (N, C) or (N, C, d1, ...), got shape {x.shape}")
    if t.shape != (x.shape[0],) + x.shape[2:]:
        raise ValueError(f"cross_entropy: target has shape {t.shape}, expected {(x.shape[0],) + x.shape[2:]} "
                         f"for input of shape {x.shape}")
    if x.ndim == 2:
        return x, t, t.shape
    perm = (0,) + tuple(range(2, x.ndim)) + (1,)
    return x.transpose(perm).reshape(-1, x.shape[1]), t.reshape(-1), t.shape


def cross_entropy(input, target, weight=None, ignore_index: int = -100, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy from logits and integer class targets (fused, numerically stable).

    input (N, C) or (N, C, d1, ...), target (N,) or (N, d1, ...) of int.
    ``mean`` divides by the number of targets that are not ``ignore_index``.
    """
    x = as_tensor(input)
    if weight is not None:
        raise NotImplementedError("cross_entropy: class weights are not supported yet")
    x2, t, tshape = _class_last(x, target)
    kern = backend.ops(x2.data)
    loss, lse = kern.cross_entropy_forward(x2.data, t, ignore_index, float(label_smoothing))
    logits = x2.data

    def bw(g):
        return (kern.cross_entropy_backward(_c(g), logits, t, lse, ignore_index, float(label_smoothing)),)
    per = _result(loss, (x2,), bw)
    if reduction == "none":
        return per.reshape(tshape)
    return _reduce(per, reduction, count=int(np.count_nonzero(t != ignore_index)))


def nll_loss(input, target, ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of log-probabilities ``input`` (N, C) at integer ``target`` (N,)."""
    x = as_tensor(input)
    t = np.asarray(target.data if isinstance(target, Tensor) else target).astype(np.int64)
    if x.ndim != 2 or t.shape != (x.shape[0],):
        raise ValueError(f"nll_loss: expected input (N, C) and target (N,), got {x.shape} and {t.shape}")
    keep = t != ignore_index
    picked = -x[np.arange(len(t)), np.where(keep, t, 0)] * keep.astype(x.dtype)
    return _reduce(picked, reduction, count=int(keep.sum()))


def mse_loss(input, target, reduction: str = "mean") -> Tensor:
    """Mean squared error; ``target`` gets no gradient."""
    p = as_tensor(input)
    t = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=p.dtype)
    if t.shape != p.shape:
        raise ValueError(f"mse_loss: target has shape {t.shape} but input has shape {p.shape}")
    if reduction == "none":
        d = p - t
        return d * d
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    kern = backend.ops(p.data)
    total = kern.mse_forward(p.data, t)
    n = p.data.size
    scale = 1.0 / n if reduction == "mean" and n else 1.0
    value = total * scale if n or reduction == "sum" else float("nan")
    pd = p.data
    return _result(np.asarray(value, dtype=p.dtype), (p,),
                   lambda g: (kern.mse_backward(float(g) * scale, pd, t),))


def binary_cross_entropy_with_logits(input, target, weight=None, reduction: str = "mean",
                                     pos_weight=None, mask=None) -> Tensor:
    """Sigmoid + binary cross-entropy, fused and stable: max(x,0) - x t + log(1 + e^-|x|).

    ``mask`` (same shape, nonzero = the label is present) drops missing labels
    from both loss and gradient; ``mean`` then divides by the number of present
    labels (multi-task learning with partly labelled examples).
    """
    x = as_tensor(input)
    if weight is not None or pos_weight is not None:
        raise NotImplementedError("binary_cross_entropy_with_logits: weight/pos_weight are not supported yet")
    t = np.asarray(target.data if isinstance(target, Tensor) else target, dtype=x.dtype)
    if t.shape != x.shape:
        raise ValueError(f"binary_cross_entropy_with_logits: target has shape {t.shape} but input has shape {x.shape}")
    m = None
    if mask is not None:
        m = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
        if m.shape != x.shape:
            raise ValueError(f"binary_cross_entropy_with_logits: mask has shape {m.shape} but input has shape {x.shape}")
        m = _c(m.astype(np.uint8))
    kern = backend.ops(x.data)
    xd = x.data
    loss = kern.bce_with_logits_forward(xd, t, m)
    per = _result(loss, (x,), lambda g: (kern.bce_with_logits_backward(_c(g), xd, t, m),))
    return _reduce(per, reduction, count=None if m is None else int(np.count_nonzero(m)))


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
    out = xp.concatenate([t.data for t in ts], axis=axis)
    ax = axis % out.ndim
    bounds = np.cumsum([t.shape[ax] for t in ts])[:-1]
    return _result(out, tuple(ts), lambda g: tuple(xp.split(g, bounds, axis=ax)))


def stack(tensors, axis: int = 0, dim=None) -> Tensor:
    """Stack along a new ``axis``."""
    axis = axis if dim is None else dim
    ts = [as_tensor(t) for t in tensors]
    return cat([t.unsqueeze(axis) for t in ts], axis=axis)
