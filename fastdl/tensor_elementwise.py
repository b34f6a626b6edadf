"""The Tensor's further elementwise maths, conversions and in-place ops (a mixin of :class:`fastdl.Tensor`).

In-place ops follow PyTorch's rules: they return the tensor itself; a leaf that requires grad
may be changed in place only under ``no_grad()``; without a graph they write into the tensor's
storage (so a tensor made by ``from_numpy`` changes its array); inside a graph the tensor takes
the new value as the output of the op.  Every in-place change bumps the tensor's version, and a
backward pass that needs a tensor changed since it was used raises (PyTorch's version counter).
"""
from __future__ import annotations

import numpy as np

from . import rng
from .autograd import is_grad_enabled, no_grad
from .backend import array_namespace as _xp
from .backend import to_device, xp_dtype
from .shapes import astype, broadcast_to, copy, dtype_of, is_float

_INT_KINDS = "iub"


class ElementwiseMethods:
    """Maths beyond the operators, dtype conversions and in-place updates."""

    __slots__ = ()

    # ---------------------------------------------------------------- maths
    def pow(self, exponent):
        return self ** exponent

    def add(self, other, alpha=1):
        return self + (self._other(other) * alpha if alpha != 1 else other)

    def sub(self, other, alpha=1):
        return self - (self._other(other) * alpha if alpha != 1 else other)

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def neg(self):
        return -self

    def square(self):
        return self * self

    def reciprocal(self):
        return 1 / self

    def rsqrt(self):
        return self.sqrt().reciprocal()

    def sin(self):
        a = self.data
        return self._op(_xp(a).sin(a), (self,), lambda g: (g * _xp(a).cos(a),))

    def cos(self):
        a = self.data
        return self._op(_xp(a).cos(a), (self,), lambda g: (-g * _xp(a).sin(a),))

    def log1p(self):
        a = self.data
        return self._op(_xp(a).log1p(a), (self,), lambda g: (g / (1 + a),))

    def expm1(self):
        a = self.data
        out = _xp(a).expm1(a)
        return self._op(out, (self,), lambda g: (g * (out + 1),))

    def _flat_grad(self, out):
        """A piecewise-constant op: its gradient is zero, as PyTorch's."""
        return self._op(out, (self,), lambda g: (g * 0,))

    def sign(self):
        return self._flat_grad(_xp(self.data).sign(self.data))

    def floor(self):
        return self._flat_grad(_xp(self.data).floor(self.data))

    def ceil(self):
        return self._flat_grad(_xp(self.data).ceil(self.data))

    def round(self, decimals=0):
        return self._flat_grad(_xp(self.data).round(self.data, decimals))

    def trunc(self):
        return self._flat_grad(_xp(self.data).trunc(self.data))

    def _pick(self, other, larger):
        o = self._other(other)
        a, b = self.data, o.data
        out = _xp(a).maximum(a, b) if larger else _xp(a).minimum(a, b)

        def bw(g):
            xp, dt = _xp(g), dtype_of(g)
            wins = (a > b) if larger else (a < b)
            tie = astype(a == b, dt) * 0.5  # a tie splits the gradient, as PyTorch's
            return g * (astype(wins, dt) + tie), g * (astype(xp.logical_and(xp.logical_not(wins), a != b), dt) + tie)
        return self._op(out, (self, o), bw)

    def maximum(self, other):
        return self._pick(other, True)

    def minimum(self, other):
        return self._pick(other, False)

    def lerp(self, end, weight):
        """``self + weight * (end - self)``; ``weight`` a number or a tensor."""
        return self + self._other(weight) * (self._other(end) - self)

    def isnan(self):
        return self._new(_xp(self.data).isnan(self.data))

    def isinf(self):
        return self._new(_xp(self.data).isinf(self.data))

    def isfinite(self):
        return self._new(_xp(self.data).isfinite(self.data))

    def nan_to_num(self, nan=0.0, posinf=None, neginf=None):
        a = self.data
        out = np.nan_to_num(a, nan=nan, posinf=posinf, neginf=neginf)
        keep = np.isfinite(a)
        return self._op(out, (self,), lambda g: (g * keep,))

    def eq(self, other): return self == other  # noqa: E704
    def ne(self, other): return self != other  # noqa: E704
    def lt(self, other): return self < other  # noqa: E704
    def le(self, other): return self <= other  # noqa: E704
    def gt(self, other): return self > other  # noqa: E704
    def ge(self, other): return self >= other  # noqa: E704

    def equal(self, other) -> bool:
        o = self._other(other)
        return self.shape == o.shape and bool(np.array_equal(self._host(), o._host()))

    def allclose(self, other, rtol=1e-5, atol=1e-8, equal_nan=False) -> bool:
        return bool(np.allclose(self._host(), self._other(other)._host(), rtol=rtol, atol=atol, equal_nan=equal_nan))

    def mm(self, other):
        o = self._other(other)
        if self.ndim != 2 or o.ndim != 2:
            raise ValueError(f"mm: expects two matrices, got shapes {self.shape} and {o.shape}")
        return self @ o

    def bmm(self, other):
        o = self._other(other)
        if self.ndim != 3 or o.ndim != 3 or self.shape[0] != o.shape[0]:
            raise ValueError(f"bmm: expects (b, n, m) and (b, m, p) batches, got shapes {self.shape} and {o.shape}")
        return self @ o

    def matmul(self, other):
        return self @ other

    def dot(self, other):
        o = self._other(other)
        if self.ndim != 1 or o.ndim != 1:
            raise ValueError(f"dot: expects two vectors, got shapes {self.shape} and {o.shape}")
        return self @ o

    # ---------------------------------------------------------------- conversions
    def int(self):
        return self.astype(np.int32)

    def bool(self):
        return self.astype(bool)

    def type_as(self, other):
        return self.astype(other.dtype)

    def type(self, dtype=None):
        return str(self.dtype) if dtype is None else self.astype(dtype)

    def element_size(self) -> int:
        return self.data.itemsize

    def nelement(self) -> int:
        return self.data.size

    def new_full(self, size, fill_value, dtype=None, requires_grad=False):
        size = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
        out = self._new(to_device(np.full(size, fill_value, dtype=self.dtype if dtype is None else dtype), self.device))
        return out.requires_grad_(requires_grad)

    def new_zeros(self, *size, dtype=None, requires_grad=False):
        size = size[0] if len(size) == 1 and not isinstance(size[0], (int, np.integer)) else size
        return self.new_full(size, 0, dtype, requires_grad)

    def new_ones(self, *size, dtype=None, requires_grad=False):
        size = size[0] if len(size) == 1 and not isinstance(size[0], (int, np.integer)) else size
        return self.new_full(size, 1, dtype, requires_grad)

    new_empty = new_zeros

    def new_tensor(self, data, dtype=None, requires_grad=False):
        src = data._host() if hasattr(data, "_node") else data
        arr = np.array(src, dtype=self.dtype if dtype is None else dtype)
        return self._new(to_device(arr, self.device)).requires_grad_(requires_grad)  # on this tensor's device

    def _scalar(self, kind):
        if self.data.size != 1:
            raise TypeError(f"only a tensor with one element can be converted to a Python {kind}, "
                            f"got shape {self.shape}")
        return np.asarray(self._host()).reshape(()).item()  # (a device's value comes over to the host)

    def __float__(self):
        return float(self._scalar("float"))

    def __int__(self):
        return int(self._scalar("int"))

    def __index__(self):
        if self.dtype.kind not in _INT_KINDS:
            raise TypeError(f"only an integer tensor with one element can be used as an index, got dtype {self.dtype}")
        return int(self._scalar("index"))

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(f"the truth value of a tensor with {self.data.size} values is ambiguous; "
                               "use .any() or .all()")
        return bool(np.asarray(self._host()).reshape(()).item())

    # ---------------------------------------------------------------- in place
    def _inplace(self, fn: str, compute, *others):
        """Give this tensor the value ``compute(self)``, by PyTorch's rules (see the module)."""
        grad_on = is_grad_enabled()
        if grad_on and self.requires_grad and self._node is None:
            raise RuntimeError(f"{fn}: a leaf tensor that requires grad cannot be changed in place; wrap the "
                               "change in fastdl.no_grad() or change a clone")
        others_grad = any(getattr(o, "requires_grad", False) for o in others)
        if grad_on and (self.requires_grad or others_grad):
            if not is_float(self.dtype):
                raise TypeError(f"{fn}: cannot give an integer tensor a value that requires grad")
            old = self._alias()
            out = compute(old, *[old if o is self else o for o in others])  # x.add_(x) reads the old x
            if out.dtype != self.dtype:
                out = out.astype(self.dtype)
            if out.shape != self.shape:
                raise ValueError(f"{fn}: the result has shape {out.shape}, not the tensor's {self.shape}")
            if not out.requires_grad:  # a constant value: the old one gets no gradient through it
                out = self._op(out.data, (old,), lambda g: (_xp(g).zeros_like(g),))  # as PyTorch: zeros
            self.data, self._node, self._index, self.requires_grad = out.data, out._node, out._index, out.requires_grad
        else:
            with no_grad():
                out = compute(self, *others)
            if out.shape != self.shape:
                raise ValueError(f"{fn}: the result has shape {out.shape}, not the tensor's {self.shape}")
            if type(self.data) is np.ndarray:
                np.copyto(self.data, out.data, casting="unsafe")
            else:  # another device: cast there, then write into the same array
                self.data[...] = astype(out.data, self.dtype, copy=False)
        self._version += 1
        return self

    def zero_(self):
        return self._inplace("zero_", lambda t: t._new(_xp(t.data).zeros_like(t.data)))

    def fill_(self, value):
        if hasattr(value, "_node"):
            if value.ndim:
                raise ValueError(f"fill_: value must be a number or a 0-d tensor, got shape {value.shape}")
            return self._inplace("fill_", lambda t, v: _filled(t, v), value)
        return self._inplace("fill_", lambda t: t._new(_xp(t.data).full(t.shape, value, dtype=t.data.dtype)))

    def add_(self, other, alpha=1):
        return self._inplace("add_", lambda t, o: t.add(o, alpha), other)

    def sub_(self, other, alpha=1):
        return self._inplace("sub_", lambda t, o: t.sub(o, alpha), other)

    def mul_(self, other):
        return self._inplace("mul_", lambda t, o: t * o, other)

    def div_(self, other):
        return self._inplace("div_", lambda t, o: t / o, other)

    def pow_(self, exponent):
        return self._inplace("pow_", lambda t, e: t ** e, exponent)

    def clamp_(self, min=None, max=None):
        return self._inplace("clamp_", lambda t: t.clamp(min, max))

    clip_ = clamp_

    def masked_fill_(self, mask, value):
        return self._inplace("masked_fill_", lambda t, v: t.masked_fill(mask, v), value)

    def copy_(self, src):
        """Copy ``src`` (broadcast, cast to this tensor's dtype) into this tensor; gradient flows to ``src``."""
        s = self._other(src)
        return self._inplace("copy_", lambda t, v: _filled(t, v), s)

    def uniform_(self, a=0.0, b=1.0):
        return self._inplace("uniform_", lambda t: t._new(to_device(
            rng.generator().uniform(a, b, t.shape).astype(t.dtype), t.device)))

    def normal_(self, mean=0.0, std=1.0):
        return self._inplace("normal_", lambda t: t._new(to_device(
            rng.generator().normal(mean, std, t.shape).astype(t.dtype), t.device)))

    def __setitem__(self, idx, value):
        """``x[idx] = value`` as an in-place op: the gradient flows to the kept entries and to ``value``."""
        idx = _index(idx)
        v = value if hasattr(value, "_node") else None
        host = type(self.data) is np.ndarray
        if not host:  # the array API wants every axis indexed
            t_idx = idx if isinstance(idx, tuple) else (idx,)
            idx = t_idx if any(i is Ellipsis for i in t_idx) else t_idx + (Ellipsis,)
        vd = v.data if v is not None else np.asarray(value) if host else \
            _xp(self.data).asarray(value, dtype=self.data.dtype)
        if dtype_of(vd).kind == "f" and not is_float(self.dtype):
            raise TypeError(f"setitem: cannot write floating-point values into a {self.dtype} tensor")

        def compute(t, *vals):
            vt = vals[0] if vals else None  # value as a tensor (the old self when x[i] = x)
            xp = _xp(t.data)
            out = copy(t.data)
            out[idx] = vd if host else astype(vd, t.dtype, copy=False)
            hit = xp.zeros(t.shape, dtype=xp_dtype(xp, bool))
            hit[idx] = True

            def bw(g):
                gv = None
                if vt is not None and vt.requires_grad:
                    gv = g[idx]  # the engine sums it back to value's shape
                return (g * ~hit if host else xp.where(hit, xp.zeros_like(g), g)), gv
            return t._op(out, (t, vt if vt is not None else t._new(vd)), bw)
        self._inplace("setitem", compute, *([v] if v is not None else []))


def _filled(t, value):
    """``value`` cast to ``t``'s dtype and broadcast to its shape (differentiable when both are float)."""
    try:
        shape = np.broadcast_shapes(value.shape, t.shape)
    except ValueError:
        shape = None
    if shape != t.shape:
        raise ValueError(f"copy_: the source of shape {value.shape} does not broadcast to {t.shape}")
    if is_float(t.dtype) and is_float(value.dtype):
        return value.astype(t.dtype).expand(t.shape)
    return t._new(astype(broadcast_to(value.data, t.shape), t.dtype))


def _index(idx):
    if hasattr(idx, "_node"):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if hasattr(i, "_node") else i for i in idx)
    return idx

