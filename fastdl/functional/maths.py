"""Module-level tensor maths with PyTorch's names: ``where``, ``einsum``, ``bmm``, ``tril``, ``triu``...

``einsum`` runs NumPy's einsum (optimised contraction order) forward and, for each operand, one
einsum of the output gradient with the other operands backward; indices that only one operand
sums over are broadcast back, repeated indices (diagonals) are written back onto the diagonal.
"""
from __future__ import annotations

import string

import numpy as np

from ..shapes import astype, numpy_like
from ..tensor import Tensor, _result, as_tensor

__all__ = ["where", "einsum", "bmm", "mm", "tril", "triu", "maximum", "minimum", "clamp", "flatten",
           "logsumexp", "cumsum", "prod", "topk", "sort", "gather", "index_select", "masked_fill"]
# ``norm`` stays out of the star-export: ``fastdl.functional.norm`` is the normalisation module (fastdl.norm is this)


def where(condition, input, other) -> Tensor:
    """``input`` where ``condition`` is True, else ``other`` (broadcast); both get gradients."""
    if not isinstance(input, Tensor) and isinstance(other, Tensor):
        return _swap_where(condition, input, other)
    return as_tensor(input).where(condition, other)


def _swap_where(condition, input, other):
    o = as_tensor(other)
    c = np.asarray(condition.data if isinstance(condition, Tensor) else condition)
    if c.dtype != bool:
        raise TypeError(f"where: condition must be a bool tensor, got dtype {c.dtype}")
    return o.where(~c, o._other(input))


def bmm(input, mat2) -> Tensor:
    return as_tensor(input).bmm(mat2)


def mm(input, mat2) -> Tensor:
    return as_tensor(input).mm(mat2)


def tril(input, diagonal: int = 0) -> Tensor:
    return as_tensor(input).tril(diagonal)


def triu(input, diagonal: int = 0) -> Tensor:
    return as_tensor(input).triu(diagonal)


def maximum(input, other) -> Tensor:
    return as_tensor(input).maximum(other)


def minimum(input, other) -> Tensor:
    return as_tensor(input).minimum(other)


def clamp(input, min=None, max=None) -> Tensor:
    return as_tensor(input).clamp(min, max)


def flatten(input, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    return as_tensor(input).flatten(start_dim, end_dim)


def logsumexp(input, dim, keepdim: bool = False) -> Tensor:
    return as_tensor(input).logsumexp(dim, keepdim)


def cumsum(input, dim) -> Tensor:
    return as_tensor(input).cumsum(dim)


def prod(input, dim=None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).prod(dim, keepdim)


def topk(input, k, dim=-1, largest=True, sorted=True):
    return as_tensor(input).topk(k, dim, largest, sorted)


def sort(input, dim=-1, descending=False, stable=False):
    return as_tensor(input).sort(dim, descending, stable)


def gather(input, dim, index) -> Tensor:
    return as_tensor(input).gather(dim, index)


def index_select(input, dim, index) -> Tensor:
    return as_tensor(input).index_select(dim, index)


def masked_fill(input, mask, value) -> Tensor:
    return as_tensor(input).masked_fill(mask, value)


def norm(input, p="fro", dim=None, keepdim: bool = False) -> Tensor:
    return as_tensor(input).norm(p, dim, keepdim)


# ---------------------------------------------------------------- einsum
def _parse(equation: str, shapes):
    """Explicit subscripts for each operand and the output, with every ``...`` spelled out in capitals."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: the equation names {len(terms)} operands but {len(shapes)} were given")
    spare = iter(string.ascii_uppercase[::-1])
    nd_ell = max([len(s) - len(t.replace("...", "")) for t, s in zip(terms, shapes) if "..." in t] or [0])
    ell = "".join(next(spare) for _ in range(nd_ell))
    subs = []
    for t, s in zip(terms, shapes):
        if not all(c.isalpha() or c == "." for c in t):
            raise ValueError(f"einsum: invalid subscripts {t!r} in {equation!r}")
        if "..." in t:
            k = len(s) - len(t.replace("...", ""))
            t = t.replace("...", ell[nd_ell - k:] if k else "")
        if len(t) != len(s):
            raise ValueError(f"einsum: subscripts {t!r} do not match an operand with {len(s)} dimensions")
        subs.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:  # implicit output: the broadcast dims, then the letters used once, sorted
        letters = "".join(subs)
        out = ell + "".join(sorted(c for c in set(letters) if letters.count(c) == 1 and c not in ell))
    return subs, out


def einsum(equation: str, *operands) -> Tensor:
    """Einstein summation over tensors (PyTorch's and NumPy's notation, ``...`` included); differentiable."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    ts = [as_tensor(t) for t in operands]
    if not ts:
        raise ValueError("einsum: give at least one operand")
    if len({t.dtype for t in ts}) > 1:
        raise TypeError(f"einsum: operands have different dtypes {[str(t.dtype) for t in ts]}")
    subs, out_sub = _parse(equation, [t.shape for t in ts])
    spec = ",".join(subs) + "->" + out_sub
    arrays = [t.data for t in ts]

    def ein(xp, spec, *ops):
        return xp.asarray(xp.einsum(spec, *ops, optimize=len(ops) > 2) if xp is np else xp.einsum(spec, *ops))
    try:
        out = numpy_like(lambda xp, *ops: ein(xp, spec, *ops), arrays[0], *arrays[1:])
    except ValueError as exc:
        raise ValueError(f"einsum: {equation!r} does not fit shapes {[t.shape for t in ts]}: {exc}") from None
    sizes = {}
    for s, a in zip(subs, arrays):
        for c, n in zip(s, a.shape):
            sizes[c] = max(sizes.get(c, 1), n)

    def grad_of(i, xp, g, *arrays):
        mine = subs[i]
        uniq = "".join(dict.fromkeys(mine))
        others = [subs[j] for j in range(len(subs)) if j != i]
        seen = set(out_sub).union(*others) if others else set(out_sub)
        kept = "".join(c for c in uniq if c in seen)
        gk = ein(xp, ",".join([out_sub] + others) + "->" + kept, g, *[arrays[j] for j in range(len(subs)) if j != i])
        # letters only this operand sums over: the gradient is the same along them
        full_u = xp.broadcast_to(xp.expand_dims(gk, tuple(k for k, c in enumerate(uniq) if c not in seen)),
                                 tuple(sizes[c] for c in uniq))
        shape = tuple(arrays[i].shape)
        if len(uniq) == len(mine):
            res = xp.transpose(full_u, [uniq.index(c) for c in mine]) if uniq != mine else full_u
            return xp.ascontiguousarray(res).reshape(shape) if res.shape == shape else _unstretch(res, shape)
        res = xp.zeros(shape, dtype=g.dtype)
        n = len(uniq)
        grid = [xp.arange(m).reshape((1,) * k + (m,) + (1,) * (n - k - 1)) for k, m in enumerate(full_u.shape)]
        res[tuple(grid[uniq.index(c)] for c in mine)] = full_u  # a repeated letter is a diagonal
        return res

    def bw(g):
        return tuple(numpy_like(lambda xp, g, *arrs: grad_of(i, xp, g, *arrs), g, *arrays) if ts[i].requires_grad
                     else None for i in range(len(ts)))
    return _result(astype(out, ts[0].dtype, copy=False), tuple(ts), bw)


def _unstretch(g, shape):
    """Sum a gradient back over dims that were 1 in the operand and broadcast by ``...``."""
    axes = tuple(k for k, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape)
