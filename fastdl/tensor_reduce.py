"""The Tensor's reductions and sorting, with PyTorch's meanings (a mixin of :class:`fastdl.Tensor`).

``max(dim)``/``min(dim)``/``sort``/``topk`` return ``(values, indices)`` named tuples, as
PyTorch's ``torch.return_types``; ``var``/``std`` are unbiased unless told otherwise;
``axis=``/``keepdims=`` are spellings of ``dim=``/``keepdim=``.  The mixin builds its results
through ``self._op`` (one output) and ``self._ops`` (several), so it needs no import of the Tensor.
"""
from __future__ import annotations

import collections

import numpy as np

from .backend import array_namespace as _xp
from .backend import xp_dtype
from .shapes import (astype, axis_arg, broadcast_to, dtype_of, grid, numpy_like, keep_arg, keep_dims, reduced_count,
                     reshape)

ValuesIndices = {name: collections.namedtuple(name, ["values", "indices"])
                 for name in ("max", "min", "sort", "topk", "kthvalue", "median", "mode", "cummax")}


def _one_dim(dim, fn: str, ndim: int) -> int:
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{fn}: dim must be one integer, got {dim!r}")
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(f"{fn}: dim {dim} is out of range for a tensor with {ndim} dimensions")
    return dim % max(ndim, 1)


def _scatter_along(shape, dtype, dim, index, g):
    """Zeros of ``shape`` with ``g`` added at ``index`` along ``dim`` (repeated indices accumulate), on
    ``g``'s device."""
    def add(xp, g, index):
        full = xp.zeros(shape, dtype=xp_dtype(xp, dtype))
        xp.add.at(full, grid(xp, index.shape, dim, index), g)
        return full
    return numpy_like(add, g, index)


def _no_out(out, fn):
    if out is not None:  # NumPy's functions (np.sum(t)...) pass out=None to the method
        raise TypeError(f"{fn}: out= is not supported; use the returned tensor")


class ReduceMethods:
    """Reductions, cumulative sums, norms and sorting of the Tensor."""

    __slots__ = ()

    def sum(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None, out=None):
        _no_out(out, "sum")
        axis, keepdims = axis_arg(axis, dim), keep_arg(keepdim, keepdims)
        shape = self.shape
        a = self.data
        if type(a) is np.ndarray:
            out = a.sum(axis=axis, keepdims=keepdims, dtype=dtype)
        else:
            xp = _xp(a)
            out = xp.sum(a, axis=axis, keepdims=keepdims, dtype=None if dtype is None else xp_dtype(xp, dtype))
        return self._op(out, (self,), lambda g: (broadcast_to(keep_dims(g, shape, axis, keepdims), shape),))

    def mean(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None, out=None):
        _no_out(out, "mean")
        axis, keepdims = axis_arg(axis, dim), keep_arg(keepdim, keepdims)
        shape = self.shape
        n = reduced_count(shape, axis)
        src = self.data if dtype is None else astype(self.data, dtype)
        out = src.mean(axis=axis, keepdims=keepdims) if type(src) is np.ndarray else \
            _xp(src).mean(src, axis=axis, keepdims=keepdims)
        return self._op(out, (self,), lambda g: (broadcast_to(keep_dims(g, shape, axis, keepdims) / n, shape),))

    def prod(self, dim=None, keepdim=False, dtype=None, *, axis=None, keepdims=None, out=None):
        """Product over all entries or along one ``dim``; the gradient is exact where entries are zero."""
        _no_out(out, "prod")
        axis, keepdims = axis_arg(axis, dim), keep_arg(keepdim, keepdims)
        a = self.data
        xp = _xp(a)
        out = xp.prod(a, axis=axis, keepdims=keepdims, dtype=None if dtype is None else xp_dtype(xp, dtype))

        def bw(g):
            # the product of every other entry, no division: exclusive cumulative products from both ends
            d = None if axis is None else _one_dim(axis, "prod", a.ndim)
            flat = reshape(a, (-1,)) if d is None else xp.moveaxis(a, d, -1)
            ones = xp.ones(tuple(flat.shape[:-1]) + (1,), dtype=a.dtype)
            left = _cumprod(xp, _concat(xp, [ones, flat[..., :-1]]))
            right = xp.flip(_cumprod(xp, _concat(xp, [ones, xp.flip(flat, axis=-1)[..., :-1]])), axis=-1)
            others = left * right
            if d is None:
                return (g * reshape(others, a.shape),)
            return (keep_dims(g, a.shape, d, keepdims) * xp.moveaxis(others, -1, d),)
        return self._op(out, (self,), bw)

    def cumsum(self, dim, dtype=None, *, axis=None):
        d = _one_dim(axis_arg(axis, dim), "cumsum", self.ndim)
        if type(self.data) is not np.ndarray:  # the array API's cumulative_sum
            xp = _xp(self.data)
            src = self.data if dtype is None else astype(self.data, dtype)
            if not self.ndim:
                return self._op(xp.asarray(src, copy=True), (self,), lambda g: (g,))
            out = xp.cumulative_sum(src, axis=d)
            return self._op(out, (self,), lambda g: (xp.flip(xp.cumulative_sum(xp.flip(g, axis=d), axis=d), axis=d),))
        out = np.cumsum(self.data, axis=d, dtype=dtype) if self.ndim else self.data.copy()
        return self._op(out, (self,), lambda g: (np.flip(np.cumsum(np.flip(g, d), axis=d), d) if g.ndim else g,))

    def _extreme(self, fn, axis, keepdims):
        a = self.data
        out = fn(a, axis=axis, keepdims=keepdims)

        def bw(g):
            full = fn(a, axis=axis, keepdims=True)
            xp = _xp(a)
            hit = astype((a == full) | (xp.isnan(a) & xp.isnan(full)), dtype_of(a))
            share = hit / xp.sum(hit, axis=axis, keepdims=True)  # ties share the gradient, as PyTorch's amax
            return (share * keep_dims(g, a.shape, axis, keepdims),)
        return self._op(out, (self,), bw)

    def _arg_extreme(self, name, dim, keepdim):
        """``(values, indices)`` along one dim; the gradient goes to the index, as PyTorch's."""
        a = self.data
        if type(a) is not np.ndarray:
            return self._arg_extreme_xp(name, dim, keepdim)
        d = _one_dim(dim, name, a.ndim)
        src = a if a.ndim else a.reshape(1)
        nan = np.isnan(src) if src.dtype.kind == "f" else None
        pick = np.argmax if name == "max" else np.argmin
        idx = pick(src, axis=d, keepdims=True)
        if nan is not None and nan.any():  # NaN wins, as PyTorch's
            has = nan.any(axis=d, keepdims=True)
            idx = np.where(has, np.argmax(nan, axis=d, keepdims=True), idx)
        vals = np.take_along_axis(src, idx, axis=d)
        if not keepdim or not a.ndim:
            vals, idx = vals.reshape(vals.shape[:d] + vals.shape[d + 1:]), idx.reshape(idx.shape[:d] + idx.shape[d + 1:])
        shape, dtype = src.shape, a.dtype
        idx_k = idx if keepdim and a.ndim else np.expand_dims(idx, d)

        def bw(g):
            g = g if keepdim and a.ndim else np.expand_dims(g, d)
            return (_scatter_along(shape, dtype, d, idx_k, g).reshape(a.shape),)
        values = self._op(vals, (self,), bw)
        return ValuesIndices[name](values, self._new(idx.astype(np.int64)))

    def _arg_extreme_xp(self, name, dim, keepdim):
        """:meth:`_arg_extreme` in the array API alone (another device): NaN wins, the gradient goes to the
        one index through a mask (no scatter-add in the standard)."""
        a = self.data
        xp = _xp(a)
        d = _one_dim(dim, name, a.ndim)
        src = a if a.ndim else xp.reshape(a, (1,))
        pick = xp.argmax if name == "max" else xp.argmin
        idx = pick(src, axis=d, keepdims=True)
        if dtype_of(src).kind == "f":
            nan = xp.isnan(src)
            idx = xp.where(xp.any(nan, axis=d, keepdims=True), xp.argmax(astype(nan, np.int8), axis=d, keepdims=True),
                           idx)
        iota = xp.reshape(xp.arange(src.shape[d]), tuple(-1 if i == d else 1 for i in range(src.ndim)))
        hit = iota == idx
        vals = xp.sum(xp.where(hit, src, xp.zeros_like(src)), axis=d, keepdims=True)
        if not keepdim or not a.ndim:
            vals, idx = xp.squeeze(vals, axis=d), xp.squeeze(idx, axis=d)
        shape = a.shape

        def bw(g):
            g = g if keepdim and a.ndim else xp.expand_dims(g, axis=d)
            return (xp.reshape(xp.where(hit, g, xp.zeros_like(g)), shape),)
        values = self._op(vals, (self,), bw)
        return ValuesIndices[name](values, self._new(astype(idx, np.int64)))

    def max(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """``max()``: the largest entry; ``max(dim)``: ``(values, indices)``; ``max(other)``: elementwise."""
        _no_out(out, "max")
        if isinstance(dim, ReduceMethods):
            return self.maximum(dim)
        dim = axis_arg(axis, dim)
        if dim is None:
            return self._extreme(_xp(self.data).max, None, False)
        return self._arg_extreme("max", dim, keep_arg(keepdim, keepdims))

    def min(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "min")
        if isinstance(dim, ReduceMethods):
            return self.minimum(dim)
        dim = axis_arg(axis, dim)
        if dim is None:
            return self._extreme(_xp(self.data).min, None, False)
        return self._arg_extreme("min", dim, keep_arg(keepdim, keepdims))

    def amax(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        """Largest values over ``dim`` (one or several); ties share the gradient."""
        _no_out(out, "amax")
        return self._extreme(_xp(self.data).max, axis_arg(axis, dim), keep_arg(keepdim, keepdims))

    def amin(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "amin")
        return self._extreme(_xp(self.data).min, axis_arg(axis, dim), keep_arg(keepdim, keepdims))

    def argmax(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return self._new(_xp(self.data).argmax(self.data, axis=axis_arg(axis, dim), keepdims=keep_arg(keepdim, keepdims)))

    def argmin(self, dim=None, keepdim=False, *, axis=None, keepdims=None):
        return self._new(_xp(self.data).argmin(self.data, axis=axis_arg(axis, dim), keepdims=keep_arg(keepdim, keepdims)))

    def var(self, dim=None, unbiased=None, keepdim=False, *, correction=None, ddof=None, axis=None, keepdims=None):
        """Variance, unbiased (``correction=1``) by default as PyTorch; ``unbiased``, ``correction`` and
        NumPy's ``ddof`` choose the divisor n - correction."""
        if isinstance(unbiased, bool) or unbiased is None:
            corr = 1 if unbiased is None else int(unbiased)
        else:  # var(dim, keepdim) is not PyTorch's order; a non-bool second argument is refused
            raise TypeError(f"var: unbiased must be True or False, got {unbiased!r}")
        for v in (correction, ddof):
            if v is not None:
                corr = v
        axis, keepdims = axis_arg(axis, dim), keep_arg(keepdim, keepdims)
        mu = self.mean(axis, keepdim=True)
        d = self - mu
        n = reduced_count(self.shape, axis)
        return (d * d).sum(axis, keepdim=keepdims) / max(n - corr, 0)

    def std(self, dim=None, unbiased=None, keepdim=False, *, correction=None, ddof=None, axis=None, keepdims=None):
        return self.var(dim, unbiased, keepdim, correction=correction, ddof=ddof, axis=axis, keepdims=keepdims).sqrt()

    def norm(self, p="fro", dim=None, keepdim=False, *, axis=None, keepdims=None):
        """Vector p-norm over ``dim`` (all entries by default): p = 2 ("fro"), 1, inf, -inf, 0 or any number."""
        axis, keepdims = axis_arg(axis, dim), keep_arg(keepdim, keepdims)
        if p in ("fro", None):
            p = 2
        if isinstance(p, str) or not isinstance(p, (int, float)):
            raise ValueError(f"norm: p must be a number or 'fro', got {p!r}")
        a = self.abs()
        if p == float("inf"):
            return a.amax(axis, keepdim=keepdims)
        if p == float("-inf"):
            return a.amin(axis, keepdim=keepdims)
        if p == 0:
            nz = astype(self.data != 0, self.dtype)
            return self._new(_xp(nz).sum(nz, axis=axis, keepdims=keepdims))
        if p == 1:
            return a.sum(axis, keepdim=keepdims)
        x = self.data
        xp = _xp(x)
        s = xp.sum(xp.abs(x) ** p, axis=axis, keepdims=keepdims)
        out = s ** (1.0 / p)

        def bw(g):
            o = keep_dims(out, x.shape, axis, keepdims)
            with np.errstate(divide="ignore", invalid="ignore"):
                r = xp.sign(x) * xp.abs(x) ** (p - 1) / o ** (p - 1)
            r = xp.where(o == 0, xp.zeros_like(r), r)  # the norm's subgradient at 0 is taken as 0, as PyTorch's
            return (keep_dims(g, x.shape, axis, keepdims) * r,)
        return self._op(astype(out, self.dtype, copy=False), (self,), bw)

    def logsumexp(self, dim, keepdim=False, *, axis=None, keepdims=None):
        axis, keepdims = axis_arg(axis, dim), keep_arg(keepdim, keepdims)
        xp = _xp(self.data)
        m = xp.max(self.data, axis=axis, keepdims=True)
        m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
        shifted = (self - self._new(m)).exp().sum(axis, keepdim=True).log() + self._new(m)
        return shifted if keepdims else shifted.squeeze(axis) if axis is not None else shifted.reshape(())

    def all(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "all")
        return self._new(_xp(self.data).all(self.data, axis=axis_arg(axis, dim), keepdims=keep_arg(keepdim, keepdims)))

    def any(self, dim=None, keepdim=False, *, axis=None, keepdims=None, out=None):
        _no_out(out, "any")
        return self._new(_xp(self.data).any(self.data, axis=axis_arg(axis, dim), keepdims=keep_arg(keepdim, keepdims)))

    # ---------------------------------------------------------------- sorting
    def _take_sorted(self, name, order, d):
        a = self.data if self.ndim else reshape(self.data, (1,))
        vals = numpy_like(lambda xp, a, o: a[grid(xp, o.shape, d, o)], a, order)
        shape, dtype = a.shape, dtype_of(a)

        def bw(g):
            def put(xp, g, o):
                full = xp.zeros(shape, dtype=xp_dtype(xp, dtype))
                full[grid(xp, o.shape, d, o)] = reshape(g, o.shape)
                return full
            return (reshape(numpy_like(put, g, order), self.shape),)
        if not self.ndim:
            vals, order = reshape(vals, ()), reshape(order, ())
        return ValuesIndices[name](self._op(vals, (self,), bw), self._new(astype(order, np.int64, copy=False)))

    def _order(self, d, descending):
        a = self.data if self.ndim else reshape(self.data, (1,))
        xp = _xp(a)
        if not descending:
            return _argsort(xp, a, d)  # NaN sorts last, as PyTorch's
        # descending and stable: NaN first (largest, as PyTorch), equal keys keep their order
        order = xp.flip(_argsort(xp, xp.flip(a, axis=d), d), axis=d)
        return a.shape[d] - 1 - order

    def sort(self, dim=-1, descending=False, stable=False, *, axis=None):
        """``(values, indices)`` sorted along ``dim`` (stable either way)."""
        d = _one_dim(axis_arg(axis, dim), "sort", self.ndim)
        return self._take_sorted("sort", self._order(d, descending), d)

    def argsort(self, dim=-1, descending=False, stable=False, *, axis=None):
        d = _one_dim(axis_arg(axis, dim), "argsort", self.ndim)
        order = self._order(d, descending)
        return self._new(astype(reshape(order, self.shape), np.int64, copy=False))

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """The ``k`` largest (or smallest) entries along ``dim``: ``(values, indices)``."""
        d = _one_dim(dim, "topk", self.ndim)
        n = self.shape[d] if self.ndim else 1
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k <= n:
            raise ValueError(f"topk: k must be an integer in [0, {n}] for dim {dim} of shape {self.shape}, got {k!r}")
        order = self._order(d, largest)
        return self._take_sorted("topk", order[(slice(None),) * d + (slice(0, int(k)),)], d)


def _argsort(xp, a, d):
    """A stable argsort along ``d`` in namespace ``xp`` (NumPy's kind="stable", the array API's stable=True)."""
    if xp is np:
        return np.argsort(a, axis=d, kind="stable")
    try:
        return xp.argsort(a, axis=d, stable=True)
    except TypeError:  # CuPy: no stable argument; its sort is a stable radix sort
        return xp.argsort(a, axis=d)


def _cumprod(xp, a):
    """Cumulative product along the last axis (the array API has only a cumulative sum)."""
    f = getattr(xp, "cumprod", None)
    if f is not None:
        return f(a, axis=-1)
    cols = [a[..., :1]]
    for k in range(1, a.shape[-1]):
        cols.append(cols[-1] * a[..., k:k + 1])
    return _concat(xp, cols)


def _concat(xp, arrays):
    """Concatenation along the last axis (``concat`` in the array API, ``concatenate`` in older NumPy and CuPy)."""
    f = getattr(xp, "concat", None) or xp.concatenate
    return f(arrays, axis=-1)
