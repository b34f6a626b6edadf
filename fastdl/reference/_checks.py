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


def _size(v, fn, what):
    """A size that must fit int64 (the native module computes it there): ValueError otherwise."""
    if not -2**63 <= v < 2**63:
        raise ValueError(f"{fn}: {what} is too large")
    return v


def _available_memory() -> float:
    """MemAvailable (Linux), else the physical memory, else 0: the native rule (checks.h)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import os
        return float(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return 0.0


def _want_alloc(shape, fn, what, itemsize=8):
    """An output of ``shape`` fits int64 elements and half the available memory (``itemsize`` bytes an
    element, as the native check); ValueError naming it before anything is allocated."""
    n = 1
    for d in shape:
        n = _size(n * int(d), fn, what)
    if n * float(itemsize) < 2**30:  # small: no need to ask the system
        return
    mem = _available_memory()
    if mem and n * float(itemsize) > mem / 2:
        raise ValueError(f"{fn}: {what} would need {n * float(itemsize) / 2**30} GiB, more than half of the "
                         f"{mem / 2**30} GiB this machine has available")


def _want_nonempty(a, name, fn):
    """Channels and spatial sizes non-empty (only a batch of 0), as PyTorch's pooling."""
    if any(d == 0 for d in a.shape[(1 if a.ndim == 4 else 0):]):
        raise ValueError(f"{fn}: {name} of shape {_shape_str(a.shape)} has an empty channel or spatial axis "
                         "(only the batch may be 0)")


# ---------------------------------------------------------------- scalar arguments
# The rules of the native casters (csrc/bind/checks.h, Int/Float/Flag/Pair/Quad/Ints): the same
# accepted types and the same messages, so both backends reject a bad scalar alike.
def _repr(v) -> str:
    r = repr(v)
    return r[:80] + "..." if len(r) > 80 else r


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer))


def _int_value(v, fn, name):
    if not _is_int(v):
        raise TypeError(f"{fn}: {name} must be an integer, got {_repr(v)}")
    v = int(v)
    if not -2**63 <= v < 2**63:
        raise ValueError(f"{fn}: {name} is too large: {_repr(v)}")
    return v


def _float_value(v, fn, name):
    if not (_is_int(v) or isinstance(v, (float, np.floating))):
        raise TypeError(f"{fn}: {name} must be a number, got {_repr(v)}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{fn}: {name} is too large: {_repr(v)}") from None


def _flag_value(v, fn, name):
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if _is_int(v) and _int_value(v, fn, name) in (0, 1):
        return bool(v)
    raise TypeError(f"{fn}: {name} must be a bool, got {_repr(v)}")


def _ints_value(v, n, fn, name):
    what = " must be a pair of integers, got " if n == 2 else " must be four integers, got " if n == 4 else \
        " must be a tuple of integers, got "
    if not isinstance(v, (tuple, list)):
        raise TypeError(f"{fn}: {name}{what}{_repr(v)}")
    if n and len(v) != n:
        raise ValueError(f"{fn}: {name}{what}{_repr(v)}")
    return tuple(_int_value(x, fn, name) for x in v)


def _str_value(v, fn, name):
    if not isinstance(v, str):
        raise TypeError(f"{fn}: {name} must be a string, got {_repr(v)}")
    return v


_RULES = {
    "str": _str_value,
    "int": _int_value, "float": _float_value, "bool": _flag_value,
    "pair": lambda v, fn, name: _ints_value(v, 2, fn, name), "quad": lambda v, fn, name: _ints_value(v, 4, fn, name),
    "ints": lambda v, fn, name: _ints_value(v, 0, fn, name),
}


def _scalars(**rules):
    """Check and convert the named scalar arguments of a reference kernel before it runs ("int",
    "float", "bool", "pair", "quad", "ints"), as the native casters do."""
    import functools
    import inspect

    def deco(f):
        sig = inspect.signature(f)

        @functools.wraps(f)
        def checked(*args, **kwargs):
            b = sig.bind(*args, **kwargs)
            b.apply_defaults()
            for name, rule in rules.items():
                b.arguments[name] = _RULES[rule](b.arguments[name], f.__name__, name)
            return f(*b.args, **b.kwargs)
        return checked
    return deco
