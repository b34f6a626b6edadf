"""Embedding lookup and its scatter-add gradient."""
from __future__ import annotations

import numpy as np

from ._checks import _want_alloc, _scalars, _float, _ints, _want_ndim


def _emb_indices(indices, v, fn):
    i = _ints(indices, fn, "indices")
    if i.size and (i.min() < 0 or i.max() >= v):
        bad = i[(i < 0) | (i >= v)].flat[0]
        raise IndexError(f"{fn}: index {bad} is out of range for {v} embeddings")
    return i.astype(np.int64)


def embedding_forward(weight, indices):
    """weight (V, D), indices (...) -> (..., D) = weight[indices]."""
    w = _float(weight, "embedding_forward", "weight")
    _want_ndim(w, "weight", "embedding_forward", 2)
    return w[_emb_indices(indices, w.shape[0], "embedding_forward")]


@_scalars(num_embeddings="int", padding_idx="int")
def embedding_backward(gy, indices, num_embeddings, padding_idx=-1):
    """(V, D) scatter-add of gy rows at their indices; the padding_idx row gets nothing."""
    fn = "embedding_backward"
    gy = _float(gy, fn, "gy")
    if num_embeddings < 1:
        raise ValueError(f"{fn}: num_embeddings must be >= 1")
    if gy.ndim < 1:
        raise ValueError(f"{fn}: gy must have at least 1 dimension")
    i = _emb_indices(indices, num_embeddings, fn).reshape(-1)
    if gy.size != i.size * gy.shape[-1]:
        raise ValueError(f"{fn}: gy has shape {gy.shape}, expected the indices' shape + (D,)")
    _want_alloc((num_embeddings, gy.shape[-1]), fn, "the weight gradient")
    g = gy.reshape(i.size, gy.shape[-1])
    gw = np.zeros((num_embeddings, g.shape[1]), gy.dtype)
    keep = i != padding_idx
    np.add.at(gw, i[keep], g[keep])
    return gw
