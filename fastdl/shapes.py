"""Shape and dtype helpers of the Tensor and the functional layer (contiguity, reductions' axes), and
the argument checks of the layers' constructors (integers, pairs, numbers in range, memory)."""
from __future__ import annotations

import numpy as np

from .backend import array_namespace as _xp
from .backend import CPU, device_of, np_dtype, on_device, to_device, xp_dtype
from .reference._checks import _available_memory  # the one rule for both backends and the layers


def contiguous(a) -> np.ndarray:
    """``a`` as a C-contiguous ndarray, copying only when needed (0-d stays 0-d); another device's array
    is returned as it is (its kernels take the layouts that namespace makes)."""
    if type(a) is np.ndarray:
        return a if a.flags.c_contiguous else np.array(a, order="C")
    if on_device(a):
        return a
    a = np.asarray(a)
    return a if a.flags.c_contiguous else np.array(a, order="C")


def astype(a, dtype, copy: bool = True):
    """``a`` converted to (NumPy) ``dtype`` in its own namespace."""
    if isinstance(a, np.ndarray):
        return a.astype(dtype, copy=copy)
    xp = _xp(a)
    return xp.astype(a, xp_dtype(xp, dtype), copy=copy)


def copy(a):
    """A copy of ``a`` in its own namespace."""
    if isinstance(a, np.ndarray):
        return a.copy()
    return _xp(a).asarray(a, copy=True)


def reshape(a, shape):
    try:
        return a.reshape(shape)  # NumPy, CuPy
    except AttributeError:  # the array API's function form only
        return _xp(a).reshape(a, shape)


def permute(a, perm):
    """``a`` with its axes in order ``perm``, C-contiguous."""
    if isinstance(a, np.ndarray):
        return np.ascontiguousarray(a.transpose(perm))
    xp = _xp(a)
    out = xp.permute_dims(a, tuple(perm))
    make = getattr(xp, "ascontiguousarray", None)
    return make(out) if make is not None else out


def broadcast_to(a, shape, copy: bool = False):
    """``a`` broadcast to ``shape``: a read-only view, or with ``copy`` a C-contiguous array."""
    if isinstance(a, np.ndarray):
        out = np.broadcast_to(a, shape)
        return np.ascontiguousarray(out) if copy else out
    xp = _xp(a)
    out = xp.broadcast_to(a, tuple(shape))
    return xp.asarray(out, copy=True) if copy else out


def numpy_like(fn, data, *arrays):
    """``fn(xp, data, *arrays)`` with ``xp`` a namespace that has NumPy's whole API, for the maths the
    array API standard lacks (integer-array indexing, scatter-add, einsum): NumPy and CuPy, which have
    it, run ``fn`` where ``data`` is (NumPy arrays among ``arrays`` moved to its device); another
    namespace goes through host copies, and the result (an array, or a tuple of them) comes back to
    ``data``'s device."""
    xp = _xp(data)
    if xp is np:
        return fn(np, data, *(to_device(a, CPU) for a in arrays))
    dev = device_of(data)
    if hasattr(getattr(xp, "add", None), "at"):  # CuPy: ufunc.at and fancy indexing on the device
        return fn(xp, data, *(to_device(a, dev) for a in arrays))
    out = fn(np, to_device(data, CPU), *(to_device(a, CPU) for a in arrays))
    return tuple(to_device(o, dev) for o in out) if isinstance(out, tuple) else to_device(out, dev)


def grid(xp, shape, dim, index):
    """The index tuple of ``a[grid]`` picking ``index`` along ``dim`` and every place elsewhere (as
    ``np.indices(shape, sparse=True)`` with ``index`` at ``dim``), in namespace ``xp``."""
    n = len(shape)
    return tuple(index if k == dim else xp.reshape(xp.arange(shape[k]), (1,) * k + (shape[k],) + (1,) * (n - k - 1))
                 for k in range(n))


def dtype_of(a) -> np.dtype:
    return a.dtype if isinstance(a, np.ndarray) else np_dtype(a.dtype)


def is_float(dtype) -> bool:
    return np.dtype(dtype).kind == "f"


def axis_arg(axis, dim):
    a = dim if dim is not None else axis
    return tuple(a) if isinstance(a, list) else a


def keep_arg(keepdims, keepdim):
    return bool(keepdim) if keepdim is not None else bool(keepdims)


def reduced_count(shape, axis) -> int:
    """How many elements a reduction over ``axis`` averages."""
    if axis is None:
        return int(np.prod(shape, dtype=np.int64))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else axis
    return int(np.prod([shape[a] for a in axes], dtype=np.int64))


def keep_dims(g, shape, axis, keepdims):
    """Reinsert reduced axes into a gradient so that it broadcasts against ``shape``."""
    if axis is None:
        return reshape(g, (1,) * len(shape))
    if keepdims:
        return g
    axes = (axis,) if isinstance(axis, int) else axis
    return _xp(g).expand_dims(g, tuple(a % len(shape) for a in axes))


# ---------------------------------------------------------------- argument checks shared by the layers
_I64 = 2**63


def int_arg(v, name: str, fn: str, lo: int | None = 0) -> int:
    """``v`` as an int (not a bool, float or string) that fits int64 and is >= ``lo``; TypeError or
    ValueError naming the argument otherwise."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an integer, got {v!r}"[:200])
    v = int(v)
    if not -_I64 <= v < _I64:
        raise ValueError(f"{fn}: {name} is too large: {v}")
    if lo is not None and v < lo:
        raise ValueError(f"{fn}: {name} must be >= {lo}, got {v}")
    return v


def pair_arg(v, name: str, fn: str, lo: int | None = 0) -> tuple:
    """An int or a pair of ints (each checked by :func:`int_arg`) as a pair."""
    if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
        v = int_arg(v, name, fn, lo)
        return v, v
    if isinstance(v, (str, bytes)) or not hasattr(v, "__len__"):
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}"[:200])
    if len(v) != 2:
        raise ValueError(f"{fn}: {name} must be an int or a pair of ints, got {v!r}"[:200])
    return int_arg(v[0], name, fn, lo), int_arg(v[1], name, fn, lo)


def float_arg(v, name: str, fn: str, lo=None, hi=None, lo_open=False, hi_open=False) -> float:
    """``v`` as a finite float in the given range; TypeError or ValueError naming the argument."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a number, got {v!r}"[:200])
    v = float(v)
    if not np.isfinite(v):
        raise ValueError(f"{fn}: {name} must be a finite number, got {v}")
    if (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and (v >= hi if hi_open else v > hi)):
        rng = f"{'(' if lo_open else '['}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}" \
              f"{')' if hi_open else ']'}"
        raise ValueError(f"{fn}: {name} must be in {rng}, got {v}")
    return v


def want_memory(n_elements: int, itemsize: int, fn: str, what: str) -> None:
    """ValueError before allocating parameters that could not be trained here: ``n_elements`` of them
    with a gradient and two optimizer states each (Adam's) must fit in the available memory."""
    need = 4.0 * float(n_elements) * itemsize
    if need < 2**30:  # small: no need to ask the system
        return
    mem = _available_memory()
    if mem and need > mem:
        raise ValueError(f"{fn}: {what} with their gradients and optimizer state would need {need / 2**30:.1f} GiB, "
                         f"more than the {mem / 2**30:.1f} GiB this machine has available")
