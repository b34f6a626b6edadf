"""Tensor: an array with autograd.

Storage is a C-contiguous array (NumPy on the CPU).  Tensor methods follow
PyTorch's names and semantics where PyTorch and NumPy differ (``size()``,
unbiased ``var``, ``max(dim)`` giving ``(values, indices)``); NumPy's
``axis=``/``keepdims=`` are accepted as spellings of ``dim=``/``keepdim=``.  Hot ops (matmul, the
activations, softmax) run on the backend's kernel table; the rest is
array-namespace arithmetic.  Each op returns its result with a closure that
maps the output gradient to one gradient per input (see ``autograd``).
"""
from __future__ import annotations

import numbers

import numpy as np

from . import autograd, backend
from .backend import array_namespace as _xp
from .autograd import is_grad_enabled
from .shapes import astype, axis_arg, copy, dtype_of, numpy_like, is_float, contiguous
from .shapes import broadcast_to as _broadcast_to, reshape as _reshape
from .tensor_elementwise import ElementwiseMethods
from .tensor_reduce import ReduceMethods
from .tensor_shape import ShapeMethods

def _to_array(data, dtype=None):
    if isinstance(data, Tensor):
        arr = data.data
    elif type(data) is not np.ndarray and backend._foreign(data) is not None:  # another device's array
        return astype(data, dtype, copy=False) if dtype is not None and np.dtype(dtype) != dtype_of(data) else data
    elif isinstance(data, np.ndarray):
        arr = data
    elif isinstance(data, (bool, np.bool_)):
        arr = np.asarray(data)
    elif isinstance(data, (float, np.floating)) and not isinstance(data, np.floating):
        arr = np.asarray(data, dtype=np.float32)
    else:
        arr = np.asarray(data)
        if arr.dtype == np.float64 and not isinstance(data, np.generic):
            arr = arr.astype(np.float32)  # Python floats (and lists of them) become float32
    if dtype is not None:
        arr = astype(arr, dtype, copy=False)
    if not isinstance(arr, np.ndarray):
        return arr
    if arr.dtype.kind in "OUSV":
        raise TypeError(f"tensor: cannot make a tensor of dtype {arr.dtype}")
    return contiguous(arr)


class _HookHandle:
    """What ``register_post_accumulate_grad_hook`` returns: ``remove()`` unregisters the hook."""

    __slots__ = ("_hooks", "_hook")

    def __init__(self, hooks: list, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)
            autograd.hook_added(-1)


class Tensor(ReduceMethods, ShapeMethods, ElementwiseMethods):
    """An n-dimensional array that records the ops applied to it for autograd.

    The reductions, shape and indexing ops, further maths and in-place ops live in the mixins
    (``tensor_reduce``, ``tensor_shape``, ``tensor_elementwise``); this class holds the storage,
    the graph hooks they build on, the operators and the activations."""

    __slots__ = ("data", "requires_grad", "grad", "_node", "_index", "_version", "_grad_hooks", "__weakref__")
    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected op

    def __init__(self, data, requires_grad: bool = False, dtype=None):
        self.data = _to_array(data, dtype)
        if requires_grad and not is_float(self.data.dtype):
            raise TypeError(f"tensor: only floating-point tensors can require grad, got {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self.grad: Tensor | None = None
        self._node = None  # the autograd.Node that made this tensor (None for a leaf)
        self._index = 0  # which of that node's outputs this is
        self._version = 0  # bumped by every in-place change (checked by backward)
        self._grad_hooks = None  # post-accumulate-grad hooks (a list), see register_post_accumulate_grad_hook

    # ---------------------------------------------------------------- graph hooks of the mixins
    @staticmethod
    def _op(data, parents, backward_fn) -> "Tensor":
        return _result(data, parents, backward_fn)

    @staticmethod
    def _ops(datas, parents, backward_fn) -> tuple:
        return _results(datas, parents, backward_fn)

    @staticmethod
    def _new(data) -> "Tensor":
        return _wrap(data)

    def _other(self, o) -> "Tensor":
        return _other(o, self)

    def _alias(self) -> "Tensor":
        """Another tensor object for the same value and graph position (in-place ops rebind ``self``)."""
        t = _wrap(self.data)
        t.requires_grad, t._node, t._index = self.requires_grad, self._node, self._index
        return t

    # ---------------------------------------------------------------- basics
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        a = self.data
        return a.dtype if type(a) is np.ndarray else backend.np_dtype(a.dtype)

    @property
    def device(self) -> backend.Device:
        """Where the storage lives (``fastdl.device``; compares equal to ``"cpu"``, ``"cuda:0"``...)."""
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._node is None

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    def numpy(self) -> np.ndarray:
        if type(self.data) is not np.ndarray:
            self._host_only("numpy")
        return self.data

    def _host_only(self, what: str) -> None:
        dev = self.device
        if dev != "cpu":
            raise TypeError(f"{what}: can't convert a {dev} tensor to NumPy; use .cpu() to copy it to host memory first")

    def _host(self) -> np.ndarray:
        """The values as a NumPy array (copied from another device)."""
        return self.data if type(self.data) is np.ndarray else backend.to_device(self.data, backend.CPU)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor with one element can be converted, got shape {self.shape}")
        return np.asarray(self._host()).reshape(()).item()

    def tolist(self):
        return np.asarray(self._host()).tolist()

    def __array__(self, dtype=None, copy=None):
        if type(self.data) is not np.ndarray:
            self._host_only("__array__")
        if dtype is not None:
            return self.data.astype(dtype, copy=bool(copy))
        return self.data.copy() if copy else self.data

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self._host()), separator=", ", prefix="tensor(")
        extra = f", dtype={self.dtype}" if self.dtype != np.float32 else ""
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __hash__(self):
        return id(self)

    def detach(self) -> "Tensor":
        """The same data, cut from the graph."""
        return Tensor(self.data)

    def clone(self) -> "Tensor":
        return _result(copy(self.data), (self,), lambda g: (g,))

    def zero_grad(self) -> None:
        self.grad = None

    def requires_grad_(self, mode: bool = True) -> "Tensor":
        if mode and not is_float(self.dtype):
            raise TypeError(f"requires_grad_: only floating-point tensors can require grad, got {self.dtype}")
        self.requires_grad = bool(mode)
        return self

    def retain_grad(self) -> None:
        """Keep this intermediate's gradient in ``.grad`` after backward (a leaf keeps it anyway)."""
        node = self._node
        if node is None:
            return
        if node.retained is None:
            node.retained = []
        if all(t is not self for _, t in node.retained):
            node.retained.append((self._index, self))

    def _accumulate_grad(self, g, sole: bool = False) -> None:
        """Add ``g`` (an array of this tensor's shape) into ``.grad``: the engine's results land here.
        ``sole``: the engine holds the only reference to ``g`` (``autograd._sole``), so the first
        gradient is kept as it is instead of copied."""
        if self.grad is None:
            if sole and g.dtype == self.dtype:
                self.grad = Tensor(g)
            else:
                self.grad = Tensor(np.array(g, dtype=self.dtype, copy=True) if type(g) is np.ndarray or
                                   not backend.on_device(g) else copy(g))
        else:
            self.grad.data = self.grad.data + g
        if self._grad_hooks:
            for hook in tuple(self._grad_hooks):
                hook(self)

    def register_post_accumulate_grad_hook(self, hook):
        """Call ``hook(tensor)`` after every backward pass has added into this leaf's ``.grad`` — as soon
        as its gradient is final, while backward goes on with the rest of the graph (PyTorch's hook of
        the same name).  Returns a handle whose ``remove()`` unregisters it."""
        if self._node is not None:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors accumulate a .grad")
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, got {type(hook).__name__}")
        if self._grad_hooks is None:
            self._grad_hooks = []
        self._grad_hooks.append(hook)
        autograd.hook_added(1)
        return _HookHandle(self._grad_hooks, hook)

    def backward(self, grad=None) -> None:
        """Accumulate gradients of this tensor into the ``.grad`` of every leaf that requires grad."""
        if not self.requires_grad:
            raise RuntimeError("backward: this tensor does not require grad and has no graph")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(f"backward: grad can be omitted only for a scalar output, got shape {self.shape}")
            g = _xp(self.data).ones(self.shape, dtype=self.data.dtype)
        else:
            g = _to_array(grad, self.dtype)
            if g.shape != self.shape:
                raise ValueError(f"backward: grad has shape {g.shape} but the tensor has shape {self.shape}")
        autograd.backward(self, g, Tensor._accumulate_grad)

    # ---------------------------------------------------------------- dtype / device
    def astype(self, dtype) -> "Tensor":
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        src = self.dtype
        if is_float(dtype) and is_float(src):
            return _result(astype(self.data, dtype), (self,), lambda g: (astype(g, src),))
        return Tensor(astype(self.data, dtype))

    def to(self, target=None, dtype=None, non_blocking: bool = False, copy: bool = False) -> "Tensor":
        """``.to(device)``, ``.to(dtype)`` or ``.to(device, dtype)``: PyTorch's.  A copy to another device is
        differentiable (the gradient goes back to this device)."""
        dev, dtype = backend.to_args(target, dtype)
        out = self if dtype is None else self.astype(dtype)
        if dev is None or out.device == dev:  # ("cuda" and "cuda:0" are the same device)
            return out
        here = out.device
        return _result(backend.to_device(out.data, dev), (out,), lambda g: (backend.to_device(g, here),))

    def cuda(self, device=None) -> "Tensor":
        return self.to(backend.cuda_device(device))

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def float(self) -> "Tensor":
        return self.astype(np.float32)

    def double(self) -> "Tensor":
        return self.astype(np.float64)

    def long(self) -> "Tensor":
        return self.astype(np.int64)

    # ---------------------------------------------------------------- arithmetic
    def __add__(self, o):
        o = _other(o, self)
        return _result(self.data + o.data, (self, o), lambda g: (g, g))

    __radd__ = __add__

    def __sub__(self, o):
        o = _other(o, self)
        return _result(self.data - o.data, (self, o), lambda g: (g, -g))

    def __rsub__(self, o):
        return _other(o, self) - self

    def __mul__(self, o):
        o = _other(o, self)
        a, b = self.data, o.data
        return _result(a * b, (self, o), lambda g: (g * b, g * a))

    __rmul__ = __mul__

    def __truediv__(self, o):
        o = _other(o, self)
        a, b = self.data, o.data
        return _result(a / b, (self, o), lambda g: (g / b, -g * a / (b * b)))

    def __rtruediv__(self, o):
        return _other(o, self) / self

    def __pow__(self, o):
        if isinstance(o, numbers.Number):
            a, k = self.data, o
            out = a ** k
            return _result(out, (self,), lambda g: (g * k * a ** (k - 1),))
        o = _other(o, self)
        a, b = self.data, o.data
        out = a ** b

        def bw(g):
            xp = _xp(a)
            with np.errstate(divide="ignore", invalid="ignore"):
                gb = g * out * xp.log(xp.where(a > 0, a, 1)) if o.requires_grad else None
            return g * b * a ** (b - 1), gb
        return _result(out, (self, o), bw)

    def __rpow__(self, o):
        return _other(o, self) ** self

    def __neg__(self):
        return _result(-self.data, (self,), lambda g: (-g,))

    def __pos__(self):
        return self

    def __abs__(self):
        return self.abs()

    def __matmul__(self, o):
        return matmul(self, _other(o, self))

    def __rmatmul__(self, o):
        return matmul(_other(o, self), self)

    # comparisons give bool tensors and no gradient
    def __lt__(self, o): return Tensor(self.data < _raw(o))
    def __le__(self, o): return Tensor(self.data <= _raw(o))
    def __gt__(self, o): return Tensor(self.data > _raw(o))
    def __ge__(self, o): return Tensor(self.data >= _raw(o))
    def __eq__(self, o): return Tensor(self.data == _raw(o))  # noqa: E704
    def __ne__(self, o): return Tensor(self.data != _raw(o))  # noqa: E704

    # ---------------------------------------------------------------- unary maths
    def exp(self):
        out = _xp(self.data).exp(self.data)
        return _result(out, (self,), lambda g: (g * out,))

    def log(self):
        a = self.data
        return _result(_xp(a).log(a), (self,), lambda g: (g / a,))

    def sqrt(self):
        out = _xp(self.data).sqrt(self.data)
        return _result(out, (self,), lambda g: (g / (2 * out),))

    def abs(self):
        a = self.data
        xp = _xp(a)
        return _result(xp.abs(a), (self,), lambda g: (g * xp.sign(a),))

    def clip(self, min=None, max=None):
        """Clamp to [min, max]; the gradient passes where the value was inside."""
        a = self.data
        xp = _xp(a)
        out = xp.clip(a, min, max)
        inside = xp.ones(a.shape, dtype=backend.xp_dtype(xp, bool))
        if min is not None:
            inside &= a >= min
        if max is not None:
            inside &= a <= max
        return _result(out, (self,), lambda g: (g * inside if type(g) is np.ndarray else
                                                 xp.where(inside, g, xp.zeros_like(g)),))

    clamp = clip

    def relu(self):
        y = backend.ops(self.data).relu_forward(self.data)
        return _result(y, (self,), lambda g: (backend.ops(g).relu_backward(_c(g), y),))

    def tanh(self):
        y = backend.ops(self.data).tanh_forward(self.data)
        return _result(y, (self,), lambda g: (backend.ops(g).tanh_backward(_c(g), y),))

    def sigmoid(self):
        y = backend.ops(self.data).sigmoid_forward(self.data)
        return _result(y, (self,), lambda g: (backend.ops(g).sigmoid_backward(_c(g), y),))

    def softmax(self, axis=-1, dim=None):
        axis = axis_arg(axis, dim)
        y = backend.ops(self.data).softmax_forward(self.data, axis)
        return _result(y, (self,), lambda g: (backend.ops(g).softmax_backward(_c(g), y, axis),))

    def log_softmax(self, axis=-1, dim=None):
        axis = axis_arg(axis, dim)
        y = backend.ops(self.data).log_softmax_forward(self.data, axis)
        return _result(y, (self,), lambda g: (backend.ops(g).log_softmax_backward(_c(g), y, axis),))

    # ---------------------------------------------------------------- indexing
    def __getitem__(self, idx):
        idx = _index(idx)
        src_shape, dtype = self.shape, self.dtype
        t = idx if isinstance(idx, tuple) else (idx,)
        basic = all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in t)
        if basic or type(self.data) is np.ndarray:
            if type(self.data) is not np.ndarray and not any(i is Ellipsis for i in t):
                idx = t + (Ellipsis,)  # the array API wants every axis indexed: a trailing ... does it
            out = self.data[idx]
            if isinstance(out, np.ndarray) and out.base is not None:
                out = out.copy()
        else:  # integer arrays or masks on another device: through shapes.numpy_like (no such indexing in the array API)
            out = numpy_like(lambda xp, a, *arrays: a[_put_arrays(t, arrays)], self.data, *_arrays_of(t))

        def bw(g):
            xp = _xp(g)
            if basic:
                full = xp.zeros(src_shape, dtype=backend.xp_dtype(xp, dtype))
                full[idx] = g
                return (full,)

            def add(xp, g, *arrays):  # repeated integer indices accumulate
                full = xp.zeros(src_shape, dtype=backend.xp_dtype(xp, dtype))
                xp.add.at(full, _put_arrays(t, arrays), g)
                return full
            return (numpy_like(add, g, *_arrays_of(t)),)
        return _result(out, (self,), bw)


def _arrays_of(t):
    """The index arrays (integer or boolean) of an index tuple, in order."""
    return [i for i in t if not (isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis)]


def _put_arrays(t, arrays):
    """Index tuple ``t`` with its arrays replaced, in order, by ``arrays`` (moved to another device)."""
    it = iter(arrays)
    return tuple(next(it) if not (isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis) else i
                 for i in t)


# -------------------------------------------------------------------- helpers
def _raw(o):
    return o.data if isinstance(o, Tensor) else o


_c = contiguous


def _other(o, like: Tensor) -> Tensor:
    """Wrap the other operand; Python and NumPy scalars take ``like``'s float dtype, and ``like``'s device."""
    if isinstance(o, Tensor):
        if type(o.data) is not type(like.data) and (o.device != like.device):
            raise RuntimeError(f"expected all tensors on one device, got {like.device} and {o.device}")
        return o
    if type(like.data) is not np.ndarray:  # a scalar or list joins like's device
        if isinstance(o, np.ndarray) and o.ndim:
            raise RuntimeError(f"expected all tensors on one device, got {like.device} and a NumPy array (cpu)")
        xp = _xp(like.data)
        dt = like.dtype if is_float(like.dtype) and not isinstance(o, (bool, np.bool_)) else np.asarray(o).dtype
        return Tensor(xp.asarray(o.item() if isinstance(o, (np.ndarray, np.generic)) else o,
                                 dtype=backend.xp_dtype(xp, dt)))
    if isinstance(o, (numbers.Number, np.generic)) and not isinstance(o, (bool, np.bool_)) and is_float(like.dtype):
        return Tensor(np.asarray(o, dtype=like.dtype))
    arr = np.asarray(o)
    if arr.dtype == np.float64 and is_float(like.dtype) and not isinstance(o, np.ndarray):
        arr = arr.astype(like.dtype)
    return Tensor(arr)


def _index(idx):
    if isinstance(idx, Tensor):
        return idx.data
    if isinstance(idx, tuple):
        return tuple(i.data if isinstance(i, Tensor) else i for i in idx)
    return idx


def _result(data, parents, backward_fn) -> Tensor:
    """A new tensor; it joins the graph when grad mode is on and a parent needs grad.

    ``backward_fn(g)`` returns one gradient (or None) per parent."""
    out = _wrap(data)
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        out.requires_grad = True
        out._node = autograd.Node(parents, backward_fn)
    return out


def _results(datas, parents, backward_fn) -> tuple:
    """Several tensors made by one op (one graph node).  ``backward_fn(grads)`` gets one gradient per
    output, None for each output that nothing used, and returns one gradient (or None) per parent."""
    outs = tuple(_wrap(d) for d in datas)
    if is_grad_enabled() and any(p.requires_grad for p in parents):
        node = autograd.Node(parents, backward_fn, len(outs))
        for i, o in enumerate(outs):
            o.requires_grad, o._node, o._index = True, node, i
    return outs


def _wrap(data) -> Tensor:
    out = Tensor.__new__(Tensor)
    out.data = contiguous(data)
    out.grad = None
    out.requires_grad = False
    out._node = None
    out._index = 0
    out._version = 0
    out._grad_hooks = None
    return out


def matmul(a: Tensor, b: Tensor) -> Tensor:
    """NumPy matmul semantics (1-D promotion, broadcast batch dims) on the backend's GEMM."""
    a, b = as_tensor(a), as_tensor(b)
    if a.dtype != b.dtype:
        raise TypeError(f"matmul: dtypes differ: {a.dtype} and {b.dtype}")
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError("matmul: operands must have at least 1 dimension; use * for scalars")
    A = a.data[None, :] if a.ndim == 1 else a.data
    B = b.data[:, None] if b.ndim == 1 else b.data
    if A.shape[-1] != B.shape[-2]:
        raise ValueError(f"matmul: a has shape {a.shape} and b has shape {b.shape}: inner dimensions "
                         f"{A.shape[-1]} and {B.shape[-2]} differ")
    M, K, N = A.shape[-2], A.shape[-1], B.shape[-1]
    batch = np.broadcast_shapes(A.shape[:-2], B.shape[:-2])
    nb = int(np.prod(batch, dtype=np.int64))
    if B.ndim == 2:
        # (..., M, K) @ (K, N): fold every batch dim into the rows, one GEMM
        Ak, Bk, gshape = _reshape(A, (nb * M, K)), B, (nb * M, N)
    else:
        def as3(X, rows, cols):
            if X.ndim == 2:
                return X  # broadcast over the batch by the kernel (stride 0)
            if X.shape[:-2] == batch:
                return _reshape(X, (nb, rows, cols))
            if int(np.prod(X.shape[:-2])) == 1:
                return _reshape(X, (1, rows, cols))
            return _reshape(_broadcast_to(X, batch + (rows, cols), copy=True), (nb, rows, cols))
        Ak, Bk, gshape = as3(A, M, K), as3(B, K, N), (nb, M, N)
    kern = backend.ops(Ak, Bk)
    y = _reshape(kern.matmul(Ak, Bk), batch + (M, N))
    out_shape = batch + ((M,) if a.ndim > 1 else ()) + ((N,) if b.ndim > 1 else ())

    def back(gk, X, t):
        if gk is None:
            return None
        if gk.size == X.size:
            return _reshape(gk, t.shape)
        return _reshape(gk, batch + X.shape[-2:])  # a materialised broadcast: the engine sums it back

    def bw(g):
        ga, gb = kern.matmul_backward(_reshape(contiguous(g), gshape), Ak, Bk,
                                      a.requires_grad, b.requires_grad)
        return back(ga, A, a), back(gb, B, b)
    return _result(_reshape(y, out_shape), (a, b), bw)


def tensor(data, requires_grad: bool = False, dtype=None) -> Tensor:
    """Make a Tensor holding a copy of ``data``; Python floats become float32, NumPy arrays keep their dtype."""
    arr = data.data if isinstance(data, Tensor) else data
    if isinstance(arr, np.ndarray):
        arr = arr.copy()
    return Tensor(arr, requires_grad=requires_grad, dtype=dtype)


def as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)
