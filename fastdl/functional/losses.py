"""Regression, probability and similarity losses with PyTorch's formulas and reductions.

Built from differentiable Tensor ops (so input and target both get gradients, as in PyTorch),
except ``binary_cross_entropy`` and ``kl_div``, whose closures clamp logs as PyTorch does and
give the target no gradient.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..shapes import astype, float_arg
from ..tensor import Tensor, _result, as_tensor
from .activation import softplus
from .basic import _reduce
from .maths import where

__all__ = ["l1_loss", "smooth_l1_loss", "huber_loss", "binary_cross_entropy", "kl_div", "cosine_similarity",
           "normalize", "cosine_embedding_loss", "pairwise_distance", "margin_ranking_loss", "soft_margin_loss",
           "hinge_embedding_loss", "poisson_nll_loss", "gaussian_nll_loss"]


def _pair(input, target, fn):
    x = as_tensor(input)
    t = target if isinstance(target, Tensor) else x._other(target)
    if t.shape != x.shape:
        raise ValueError(f"{fn}: target has shape {t.shape} but input has shape {x.shape}")
    if t.dtype != x.dtype:
        t = t.astype(x.dtype)
    return x, t


def l1_loss(input, target, reduction: str = "mean") -> Tensor:
    x, t = _pair(input, target, "l1_loss")
    return _reduce((x - t).abs(), reduction)


def smooth_l1_loss(input, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta = 0 is the L1 loss)."""
    beta = float_arg(beta, "beta", "smooth_l1_loss", 0.0)
    x, t = _pair(input, target, "smooth_l1_loss")
    d = x - t
    if beta == 0.0:
        return _reduce(d.abs(), reduction)
    a = d.abs()
    return _reduce(where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def huber_loss(input, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| <= delta, else delta (|d| - 0.5 delta)."""
    delta = float_arg(delta, "delta", "huber_loss", 0.0, lo_open=True)
    x, t = _pair(input, target, "huber_loss")
    d = x - t
    a = d.abs()
    return _reduce(where(a <= delta, d * d * 0.5, (a - 0.5 * delta) * delta), reduction)


def binary_cross_entropy(input, target, weight=None, reduction: str = "mean") -> Tensor:
    """-w (t log p + (1 - t) log(1 - p)) of probabilities ``input``; logs clamped at -100 as PyTorch's."""
    p, t = _pair(input, target, "binary_cross_entropy")
    pd, td = p.data, t.data
    if pd.size and (np.nanmin(pd) < 0 or np.nanmax(pd) > 1):
        raise ValueError("binary_cross_entropy: input must hold probabilities in [0, 1]; for logits use "
                         "binary_cross_entropy_with_logits")
    w = None if weight is None else np.broadcast_to(np.asarray(getattr(weight, "data", weight), dtype=pd.dtype),
                                                    pd.shape)
    with np.errstate(divide="ignore"):
        lp, l1p = np.maximum(np.log(pd), -100), np.maximum(np.log1p(-pd), -100)
    loss = -(td * lp + (1 - td) * l1p)
    if w is not None:
        loss = loss * w

    def bw(g):
        gx = g * (pd - td) / np.maximum((1 - pd) * pd, 1e-12)
        return (gx if w is None else gx * w,)
    return _reduce(_result(loss.astype(pd.dtype), (p,), bw), reduction)


def kl_div(input, target, reduction: str = "mean", log_target: bool = False) -> Tensor:
    """Pointwise target (log target - input) with ``input`` log-probabilities; ``"batchmean"`` divides the
    sum by the batch size (the mathematically right KL), ``"mean"`` by the element count as PyTorch."""
    x, t = _pair(input, target, "kl_div")
    xd, td = x.data, t.data
    xp = backend.array_namespace(xd)
    if log_target:
        et = xp.exp(td)
        loss = et * (td - xd)
        gin = -et
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = td > 0
            loss = xp.where(pos, td * (xp.log(xp.where(pos, td, xp.ones_like(td))) - xd), xp.zeros_like(xd))
        gin = -td
    per = _result(astype(loss, x.dtype, copy=False), (x,), lambda g: (g * gin,))
    if reduction == "batchmean":
        return per.sum() / (xd.shape[0] if xd.ndim else 1)
    return _reduce(per, reduction)


def normalize(input, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    """``input / max(||input||_p, eps)`` along ``dim``."""
    x = as_tensor(input)
    return x / x.norm(p, dim, keepdim=True).clamp(min=eps)


def cosine_similarity(x1, x2, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """x1 . x2 / (max(||x1||, eps) max(||x2||, eps)) along ``dim`` (inputs broadcast)."""
    a, b = as_tensor(x1), as_tensor(x2)
    na = a.norm(2, dim, keepdim=True).clamp(min=eps)
    nb = b.norm(2, dim, keepdim=True).clamp(min=eps)
    return ((a / na) * (b / nb)).sum(dim)


def pairwise_distance(x1, x2, p: float = 2.0, eps: float = 1e-6, keepdim: bool = False) -> Tensor:
    return (as_tensor(x1) - as_tensor(x2) + eps).norm(p, -1, keepdim)


def cosine_embedding_loss(input1, input2, target, margin: float = 0.0, reduction: str = "mean") -> Tensor:
    """1 - cos(x1, x2) where target is 1, max(0, cos - margin) where it is -1 (PyTorch's eps inside the root)."""
    a, b = as_tensor(input1), as_tensor(input2)
    if a.shape != b.shape or a.ndim not in (1, 2):
        raise ValueError(f"cosine_embedding_loss: inputs must be (N, D) or (D,) of one shape, got {a.shape} "
                         f"and {b.shape}")
    y = np.asarray(getattr(target, "data", target))
    if y.shape != a.shape[:-1]:
        raise ValueError(f"cosine_embedding_loss: target must have shape {a.shape[:-1]}, got {y.shape}")
    eps = 1e-12
    cos = (a * b).sum(-1) / ((a * a).sum(-1) + eps).sqrt() / ((b * b).sum(-1) + eps).sqrt()
    pos = 1 - cos
    neg = (cos - margin).clamp(min=0)
    loss = where(Tensor(y == 1), pos, where(Tensor(y == -1), neg, cos * 0))
    return _reduce(loss, reduction)


def margin_ranking_loss(input1, input2, target, margin: float = 0.0, reduction: str = "mean") -> Tensor:
    y = as_tensor(target).astype(as_tensor(input1).dtype)
    return _reduce((-y * (as_tensor(input1) - as_tensor(input2)) + margin).clamp(min=0), reduction)


def soft_margin_loss(input, target, reduction: str = "mean") -> Tensor:
    x, t = _pair(input, target, "soft_margin_loss")
    return _reduce(softplus(-t * x), reduction)


def hinge_embedding_loss(input, target, margin: float = 1.0, reduction: str = "mean") -> Tensor:
    x, t = _pair(input, target, "hinge_embedding_loss")
    y = t.data
    return _reduce(where(Tensor(y == 1), x, x * 0) + where(Tensor(y == -1), (margin - x).clamp(min=0), x * 0),
                   reduction)


def poisson_nll_loss(input, target, log_input: bool = True, full: bool = False, eps: float = 1e-8,
                     reduction: str = "mean") -> Tensor:
    x, t = _pair(input, target, "poisson_nll_loss")
    loss = x.exp() - t * x if log_input else x - t * (x + eps).log()
    if full:  # Stirling's term where target > 1, differentiable in the target as PyTorch's
        big = Tensor(t.data > 1)
        ts = where(big, t, 1.0)
        loss = loss + where(big, ts * ts.log() - ts + 0.5 * (2 * np.pi * ts).log(), 0.0)
    return _reduce(loss, reduction)


def gaussian_nll_loss(input, target, var, full: bool = False, eps: float = 1e-6, reduction: str = "mean") -> Tensor:
    x, t = _pair(input, target, "gaussian_nll_loss")
    v = as_tensor(var)
    xp = backend.array_namespace(v.data)
    if bool(xp.any(v.data < 0)):
        raise ValueError("gaussian_nll_loss: var has negative entries")
    # clamped without stopping the gradient, as PyTorch
    with_eps = v + Tensor(xp.maximum(v.data, xp.asarray(eps, dtype=v.data.dtype)) - v.data)
    loss = 0.5 * (with_eps.log() + (x - t) ** 2 / with_eps)
    if full:
        loss = loss + 0.5 * float(np.log(2 * np.pi))
    return _reduce(loss, reduction)
