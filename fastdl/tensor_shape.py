"""The Tensor's shape ops and indexing ops, with PyTorch's meanings (a mixin of :class:`fastdl.Tensor`).

Storage stays C-contiguous: every op returns a new array, so ``view``/``expand`` are ``reshape``/a
broadcast copy and ``contiguous()`` returns the tensor itself.  Indices may be Tensors or arrays.
"""
from __future__ import annotations

import numbers

import numpy as np

from .backend import array_namespace as _xp
from .backend import CPU, on_device, to_device
from .shapes import astype, axis_arg, broadcast_to, dtype_of, grid, numpy_like, permute, reshape
from .tensor_reduce import _one_dim, _scatter_along


def _shape_args(shape, fn):
    shape = tuple(shape[0]) if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else tuple(shape)
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{fn}: sizes must be integers, got {shape!r}")
    return tuple(int(s) for s in shape)


def _indices(index, fn, name="index"):
    """``index`` (a tensor or array on any device, or a list) as a host int64 array: checked there, and
    moved to the data's device by the op that uses it."""
    raw = index.data if hasattr(index, "data") and not isinstance(index, np.ndarray) else index
    a = np.asarray(to_device(raw, CPU) if on_device(raw) else raw)
    if a.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must hold integers, got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


def _along(a_shape, dim, index, fn):
    """Check ``index`` for gather/scatter along ``dim`` of a tensor of shape ``a_shape``; -> the index with
    negative entries wrapped (the places it picks are ``grid(xp, index.shape, dim, index)``)."""
    if index.ndim != len(a_shape):
        raise ValueError(f"{fn}: index must have as many dimensions as the tensor ({len(a_shape)}), got "
                         f"shape {index.shape}")
    for d, (i, s) in enumerate(zip(index.shape, a_shape)):
        if d != dim and i > s:
            raise ValueError(f"{fn}: index has shape {index.shape}, larger than the tensor's {a_shape} outside dim {dim}")
    n = a_shape[dim]
    if index.size and (index.min() < -n or index.max() >= n):
        raise IndexError(f"{fn}: index holds values outside [-{n}, {n}) for dim {dim} of size {n}")
    return index % n if n else index


class ShapeMethods:
    """Reshaping, transposing, repeating, splitting and gathering."""

    __slots__ = ()

    def size(self, dim=None):
        """The shape (``x.size()``) or one dimension's length (``x.size(d)``), as PyTorch."""
        if dim is None:
            return self.shape
        return self.shape[_one_dim(dim, "size", self.ndim)]

    def reshape(self, *shape):
        shape = _shape_args(shape, "reshape")
        src = self.shape
        return self._op(reshape(self.data, shape), (self,), lambda g: (reshape(g, src),))

    view = reshape

    def view_as(self, other):
        return self.reshape(other.shape)

    reshape_as = view_as

    def contiguous(self, memory_format=None):
        return self  # storage is always C-contiguous

    def flatten(self, start_dim=0, end_dim=-1):
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        shape = self.shape[:s] + (-1,) + self.shape[e + 1:] if self.ndim else (1,)
        return self.reshape(shape)

    def unflatten(self, dim, sizes):
        d = _one_dim(dim, "unflatten", self.ndim)
        return self.reshape(self.shape[:d] + tuple(sizes) + self.shape[d + 1:])

    def transpose(self, *axes):
        """``transpose(d0, d1)`` swaps two dims as PyTorch; a full permutation (or none: all reversed) as NumPy."""
        if len(axes) == 1 and isinstance(axes[0], (tuple, list)):
            axes = tuple(axes[0])
        if len(axes) == 2 and self.ndim != 2:
            return self.swapaxes(*axes)
        perm = tuple(range(self.ndim))[::-1] if not axes else tuple(a % self.ndim for a in axes)
        inv = tuple(np.argsort(perm))
        return self._op(permute(self.data, perm), (self,), lambda g: (permute(g, inv),))

    def permute(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        return self.transpose(dims)

    def swapaxes(self, a, b):
        perm = list(range(self.ndim))
        perm[a], perm[b] = perm[b], perm[a]
        return self.transpose(perm)

    swapdims = swapaxes

    @property
    def T(self):
        return self.transpose()

    @property
    def mT(self):
        return self.swapaxes(-2, -1)

    def t(self):
        """Transpose of a matrix (a vector is returned as it is), as PyTorch's ``t()``."""
        if self.ndim > 2:
            raise ValueError(f"t: expects a tensor with at most 2 dimensions, got shape {self.shape}; use transpose")
        return self.transpose() if self.ndim == 2 else self

    def squeeze(self, dim=None, *, axis=None):
        dim = axis_arg(axis, dim)
        if dim is not None:
            dims = (dim,) if isinstance(dim, (int, np.integer)) else tuple(dim)
            dims = [_one_dim(d, "squeeze", self.ndim) for d in dims]
            keep = [s for i, s in enumerate(self.shape) if not (i in dims and s == 1)]
            return self.reshape(tuple(keep))
        return self.reshape(tuple(s for s in self.shape if s != 1))

    def unsqueeze(self, dim):
        if not -self.ndim - 1 <= dim <= self.ndim:
            raise IndexError(f"unsqueeze: dim {dim} is out of range for a tensor with {self.ndim} dimensions")
        d = dim % (self.ndim + 1)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    expand_dims = unsqueeze

    def expand(self, *sizes):
        """Broadcast to ``sizes`` (-1 keeps a dimension); the gradient sums back over the stretched axes."""
        sizes = _shape_args(sizes, "expand")
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ValueError(f"expand: {len(sizes)} sizes given for a tensor with {self.ndim} dimensions")
        target = tuple(self.shape[i - lead] if s == -1 and i >= lead else s for i, s in enumerate(sizes))
        for i, s in enumerate(self.shape):
            if s != 1 and target[i + lead] != s:
                raise ValueError(f"expand: cannot expand shape {self.shape} to {sizes}: dimension {i} has size {s}")
        # the engine sums the broadcast axes back
        return self._op(broadcast_to(self.data, target, copy=True), (self,), lambda g: (g,))

    def expand_as(self, other):
        return self.expand(other.shape)

    def broadcast_to(self, *sizes):
        return self.expand(*sizes)

    def repeat(self, *sizes):
        """Tile the tensor ``sizes`` times along each dimension (PyTorch's ``repeat``, NumPy's ``tile``)."""
        sizes = _shape_args(sizes, "repeat")
        if len(sizes) < self.ndim:
            raise ValueError(f"repeat: give at least {self.ndim} repeat counts for shape {self.shape}, got {sizes}")
        if any(s < 0 for s in sizes):
            raise ValueError(f"repeat: counts must be >= 0, got {sizes}")
        shape = (1,) * (len(sizes) - self.ndim) + self.shape
        xp = _xp(self.data)
        out = xp.tile(reshape(self.data, shape), tuple(sizes))
        src = self.shape

        def bw(g):
            split = []
            for r, s in zip(sizes, shape):
                split += [r, s]
            return (reshape(xp.sum(reshape(g, tuple(split)), axis=tuple(range(0, 2 * len(sizes), 2))), src),)
        return self._op(out, (self,), bw)

    def repeat_interleave(self, repeats, dim=None):
        if dim is None:
            return self.flatten().repeat_interleave(repeats, 0)
        d = _one_dim(dim, "repeat_interleave", self.ndim)
        idx = np.repeat(np.arange(self.shape[d]), _indices(repeats, "repeat_interleave", "repeats")
                        if not isinstance(repeats, numbers.Integral) else int(repeats))
        return self.index_select(d, idx)

    def split(self, split_size_or_sections, dim=0):
        """Pieces of ``split_size`` along ``dim`` (the last may be smaller), or of the given sizes."""
        d = _one_dim(dim, "split", self.ndim)
        n = self.shape[d]
        if isinstance(split_size_or_sections, (int, np.integer)):
            step = int(split_size_or_sections)
            if step <= 0:
                raise ValueError(f"split: split_size must be positive, got {step}")
            sizes = [min(step, n - i) for i in range(0, n, step)] or [0]
        else:
            sizes = [int(s) for s in split_size_or_sections]
            if sum(sizes) != n or any(s < 0 for s in sizes):
                raise ValueError(f"split: sizes {sizes} must be non-negative and sum to {n} (dim {dim})")
        out, start = [], 0
        for s in sizes:
            out.append(self.narrow(d, start, s))
            start += s
        return tuple(out)

    def chunk(self, chunks, dim=0):
        """At most ``chunks`` pieces of equal size (the last smaller), as PyTorch's."""
        if isinstance(chunks, bool) or not isinstance(chunks, (int, np.integer)) or chunks <= 0:
            raise ValueError(f"chunk: chunks must be a positive integer, got {chunks!r}")
        n = self.shape[_one_dim(dim, "chunk", self.ndim)]
        return self.split(max(-(-n // int(chunks)), 1), dim)

    def unbind(self, dim=0):
        d = _one_dim(dim, "unbind", self.ndim)
        return tuple(self.narrow(d, i, 1).squeeze(d) for i in range(self.shape[d]))

    def narrow(self, dim, start, length):
        d = _one_dim(dim, "narrow", self.ndim)
        n = self.shape[d]
        start = start + n if start < 0 else start
        if not (0 <= start <= n and 0 <= length <= n - start):
            raise IndexError(f"narrow: start {start} and length {length} do not fit dim {dim} of size {n}")
        return self[(slice(None),) * d + (slice(start, start + length),)]

    def flip(self, *dims):
        dims = tuple(dims[0]) if len(dims) == 1 and isinstance(dims[0], (tuple, list)) else dims
        dims = tuple(_one_dim(d, "flip", self.ndim) for d in dims)
        xp = _xp(self.data)
        flip = (lambda a: np.flip(a, dims).copy()) if xp is np else (lambda a: xp.flip(a, axis=dims))
        return self._op(flip(self.data), (self,), lambda g: (flip(g),))

    def tril(self, diagonal=0):
        if self.ndim < 2:
            raise ValueError(f"tril: expects at least 2 dimensions, got shape {self.shape}")
        return self._keep(np.tril(np.ones(self.shape[-2:], dtype=bool), diagonal))

    def triu(self, diagonal=0):
        if self.ndim < 2:
            raise ValueError(f"triu: expects at least 2 dimensions, got shape {self.shape}")
        return self._keep(np.triu(np.ones(self.shape[-2:], dtype=bool), diagonal))

    def _keep(self, mask):
        """Zeros where the (host) boolean ``mask`` is False, on this tensor's device; the gradient likewise."""
        xp = _xp(self.data)
        m = to_device(mask, self.device)

        def keep(a):
            return xp.where(m, a, xp.zeros_like(a))
        return self._op(keep(self.data), (self,), lambda g: (keep(g),))

    # ---------------------------------------------------------------- gathering and scattering
    def gather(self, dim, index):
        """``out[i][j] = self[index[i][j]][j]`` along ``dim`` (PyTorch's gather); differentiable."""
        d = _one_dim(dim, "gather", self.ndim)
        index = _indices(index, "gather")
        idx = _along(self.shape, d, index, "gather")
        shape, dtype = self.shape, self.dtype
        out = numpy_like(lambda xp, a, i: a[grid(xp, i.shape, d, i)], self.data, idx)
        return self._op(out, (self,), lambda g: (_scatter_along(shape, dtype, d, idx, g),))

    def take_along_dim(self, indices, dim):
        return self.gather(dim, indices)

    def _scatter(self, fn, dim, index, src, reduce_add):
        d = _one_dim(dim, fn, self.ndim)
        index = _indices(index, fn)
        idx = _along(self.shape, d, index, fn)
        src_t = src if hasattr(src, "_node") else None
        if src_t is not None:
            if src_t.ndim != index.ndim or any(s < i for s, i in zip(src_t.shape, index.shape)):
                raise ValueError(f"{fn}: src has shape {src_t.shape}, smaller than index's {index.shape}")
            piece = src_t.data[tuple(slice(0, s) for s in index.shape)]
        else:
            piece = to_device(np.asarray(src, dtype=self.dtype), self.device)
        shape, sshape = self.shape, None if src_t is None else src_t.shape

        def scatter(xp, a, i, v):
            out = xp.asarray(a, copy=True)
            where = grid(xp, i.shape, d, i)
            if reduce_add:
                xp.add.at(out, where, v)
            else:
                out[where] = v
            hit = xp.zeros(shape, dtype=bool)
            hit[where] = True
            return out, hit
        out, hit = numpy_like(scatter, self.data, idx, piece)

        def bw(g):
            gs = None
            if src_t is not None and src_t.requires_grad:
                def pick(xp, g, i):
                    full = xp.zeros(sshape, dtype=g.dtype)
                    full[tuple(slice(0, s) for s in i.shape)] = g[grid(xp, i.shape, d, i)]
                    return full
                gs = numpy_like(pick, g, idx)
            return (g if reduce_add else _xp(g).where(hit, _xp(g).zeros_like(g), g)), gs
        return self._op(out, (self, src_t if src_t is not None else self._new(piece)), bw)

    def scatter(self, dim, index, src=None, *, value=None):
        """A copy with ``src`` (a tensor, or ``value``) written at ``index`` along ``dim``."""
        if src is None and value is None:
            raise TypeError("scatter: give src or value")
        return self._scatter("scatter", dim, index, value if src is None else src, False)

    def scatter_add(self, dim, index, src):
        """A copy with ``src`` added at ``index`` along ``dim`` (repeated indices accumulate)."""
        return self._scatter("scatter_add", dim, index, src, True)

    def index_select(self, dim, index):
        """Entries at ``index`` (1-D) along ``dim``; the gradient accumulates over repeated indices."""
        d = _one_dim(dim, "index_select", self.ndim)
        index = _indices(index, "index_select")
        if index.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D, got shape {index.shape}")
        n = self.shape[d] if self.ndim else 1
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"index_select: index out of range for dim {dim} of size {n}")
        flat = index.reshape(-1) % max(n, 1)
        a = self.data if self.ndim else reshape(self.data, (1,))
        xp = _xp(a)
        out = xp.take(a, to_device(flat, self.device), axis=d)
        shape = tuple(a.shape)

        def bw(g):
            def add(xp, g, i):
                full = xp.zeros(shape, dtype=g.dtype)
                xp.add.at(full, (slice(None),) * d + (i,), reshape(g, out.shape))
                return full
            return (reshape(numpy_like(add, g, flat), self.shape),)
        return self._op(reshape(out, tuple(out.shape) if self.ndim else index.shape), (self,), bw)

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` is True (broadcast); the gradient passes where it is False."""
        m = _raw(mask, self)
        if dtype_of(m) != bool:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got dtype {dtype_of(m)}")
        try:
            fits = np.broadcast_shapes(m.shape, self.shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"masked_fill: mask of shape {m.shape} does not broadcast to {self.shape}")
        if hasattr(value, "_node"):
            if value.ndim:
                raise ValueError(f"masked_fill: value must be a number or a 0-d tensor, got shape {value.shape}")
            v = value
        else:
            v = self._other(value)
        xp = _xp(self.data)
        out = xp.where(m, astype(v.data, self.dtype, copy=False), self.data)

        def bw(g):
            z = xp.zeros_like(g)
            return xp.where(m, z, g), xp.sum(xp.where(m, g, z))
        return self._op(out, (self, v), bw)

    def where(self, condition, other):
        """``self`` where ``condition`` else ``other`` (PyTorch's ``x.where(cond, y)``)."""
        c = _raw(condition, self)
        if dtype_of(c) != bool:
            raise TypeError(f"where: condition must be a bool tensor, got dtype {dtype_of(c)}")
        o = self._other(other)
        xp = _xp(self.data)
        out = xp.where(c, self.data, o.data)

        def bw(g):
            z = xp.zeros_like(g)
            return xp.where(c, g, z), xp.where(c, z, g)
        return self._op(out, (self, o), bw)


def _raw(v, like):
    """A mask or condition as an array on ``like``'s device (a Tensor's array, or NumPy/Python values moved)."""
    a = v.data if hasattr(v, "_node") else v
    if on_device(a) or type(like.data) is np.ndarray:
        return a if on_device(a) else np.asarray(a)
    return to_device(np.asarray(a), like.device)
