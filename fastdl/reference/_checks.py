"""Argument checks shared by the reference kernels: the same rules, exception types and argument
names as the native bindings' (csrc/bind/checks.h)."""
from __future__ import annotations

import numpy as np

_F = (np.float32, np.float64)


def _float(x, fn: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.type not in _F:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    return x


def _same(a, an, b, bn, fn, shape=True):
    if a.dtype != b.dtype:
        raise TypeError(f"{fn}: {bn} has dtype {b.dtype} but {an} has {a.dtype}")
    if shape and a.shape != b.shape:
        raise ValueError(f"{fn}: {bn} has shape {b.shape} but {an} has shape {a.shape}")


def _inplace(a, like, fn, name, optional=False):
    if a is None:
        if optional:
            return None
        raise TypeError(f"{fn}: {name} must be an array, got None")
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a NumPy array")
    if a.dtype != like.dtype:
        raise TypeError(f"{fn}: {name} has dtype {a.dtype}, expected {like.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be C-contiguous")
    if not a.flags.writeable:
        raise ValueError(f"{fn}: {name} is read-only")
    if a.size != like.size:
        raise ValueError(f"{fn}: {name} has {a.size} elements, the parameter has {like.size}")
    return a


def _shape_str(shape) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _same_dtype(a, an, b, bn, fn):
    if a.dtype != b.dtype:
        raise TypeError(f"{fn}: {bn} has dtype {b.dtype} but {an} has {a.dtype}")


def _same_shape(a, an, b, bn, fn):
    if a.shape != b.shape:
        raise ValueError(f"{fn}: {bn} has shape {_shape_str(b.shape)} but {an} has shape {_shape_str(a.shape)}")


def _want_ndim(a, name, fn, lo, hi=None):
    hi = lo if hi is None else hi
    if not lo <= a.ndim <= hi:
        span = f"{lo}" if lo == hi else f"{lo} to {hi}"
        raise ValueError(f"{fn}: {name} must have {span} dimensions, got shape {_shape_str(a.shape)}")


def _want_shape(a, shape, name, fn):
    if tuple(a.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} has shape {_shape_str(a.shape)}, expected {_shape_str(tuple(shape))}")


def _array(x, fn, name) -> np.ndarray:
    if x is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    return np.asarray(x)


def _ints(x, fn, name) -> np.ndarray:
    """Integer indices as int64, or TypeError naming the argument."""
    x = _array(x, fn, name)
    if x.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must hold integers, got {x.dtype}")
    return x.astype(np.int64, copy=False)


def _mask(mask, x, fn):
    """A boolean or integer mask shaped like x, as bool."""
    m = _array(mask, fn, "mask")
    if m.dtype.kind not in "biu":
        raise TypeError(f"{fn}: mask must be bool or integer, got {m.dtype}")
    _same_shape(x, "x", m, "mask", fn)
    return m.astype(bool)


def _convertible(a, dtype, fn, name):
    """``a`` as ``dtype``; TypeError naming the argument when it holds no numbers (strings, objects)."""
    a = _array(a, fn, name)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must be convertible to {np.dtype(dtype)}, got dtype {a.dtype}")
    return a.astype(dtype, copy=False)
