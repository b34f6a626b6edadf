"""Making tensors, with PyTorch's names and default dtypes (float32 for real numbers, int64 for integers).

Random draws come from the library's seeded generator (:func:`fastdl.manual_seed`).
``from_numpy`` shares the array's memory, as PyTorch's does.
"""
from __future__ import annotations

import numbers

import numpy as np

from .rng import generator
from .tensor import Tensor

__all__ = ["zeros", "ones", "empty", "full", "rand", "randn", "randint", "arange", "linspace", "eye",
           "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like", "from_numpy"]


def _shape(size, fn):
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"{fn}: sizes must be integers, got {shape!r}")
        if s < 0:
            raise ValueError(f"{fn}: sizes must be >= 0, got {shape!r}")
    return tuple(int(s) for s in shape)


def _dtype(dtype, default, fn):
    try:
        return np.dtype(default if dtype is None else dtype)
    except TypeError:
        raise TypeError(f"{fn}: dtype must be a NumPy dtype or its name, got {dtype!r}") from None


def _made(arr, requires_grad):
    return Tensor(arr, requires_grad=requires_grad)


def zeros(*size, dtype=None, requires_grad=False) -> Tensor:
    return _made(np.zeros(_shape(size, "zeros"), _dtype(dtype, np.float32, "zeros")), requires_grad)


def ones(*size, dtype=None, requires_grad=False) -> Tensor:
    return _made(np.ones(_shape(size, "ones"), _dtype(dtype, np.float32, "ones")), requires_grad)


def empty(*size, dtype=None, requires_grad=False) -> Tensor:
    """Zero-filled (never uninitialised memory: reading it is defined)."""
    return _made(np.zeros(_shape(size, "empty"), _dtype(dtype, np.float32, "empty")), requires_grad)


def _fill_dtype(value):
    if isinstance(value, (bool, np.bool_)):
        return np.bool_
    if isinstance(value, (numbers.Integral,)):
        return np.int64
    return np.float32


def full(size, fill_value, dtype=None, requires_grad=False) -> Tensor:
    """``size`` filled with ``fill_value``; the dtype follows the value (bool, int64, float32) unless given."""
    size = (size,) if isinstance(size, (int, np.integer)) else size
    return _made(np.full(_shape((size,), "full"), fill_value, _dtype(dtype, _fill_dtype(fill_value), "full")),
                 requires_grad)


def rand(*size, dtype=None, requires_grad=False) -> Tensor:
    """Uniform on [0, 1)."""
    dt = _dtype(dtype, np.float32, "rand")
    return _made(generator().random(_shape(size, "rand")).astype(dt), requires_grad)


def randn(*size, dtype=None, requires_grad=False) -> Tensor:
    """Standard normal."""
    dt = _dtype(dtype, np.float32, "randn")
    return _made(generator().standard_normal(_shape(size, "randn")).astype(dt), requires_grad)


def randint(low, high=None, size=None, dtype=None) -> Tensor:
    """Integers uniform on [low, high) (``randint(high, size)`` starts at 0), int64 by default."""
    if size is None:
        if high is None or not isinstance(high, (tuple, list)):
            raise TypeError("randint: give size, e.g. randint(0, 10, (3,))")
        low, high, size = 0, low, high
    if high is None:
        low, high = 0, low
    if high <= low:
        raise ValueError(f"randint: high must be greater than low, got low={low}, high={high}")
    return Tensor(generator().integers(low, high, _shape((size,), "randint")).astype(_dtype(dtype, np.int64, "randint")))


def arange(start, end=None, step=1, dtype=None, requires_grad=False) -> Tensor:
    """``[start, end)`` by ``step``; int64 when every bound is an integer, float32 otherwise."""
    if end is None:
        start, end = 0, start
    if step == 0:
        raise ValueError("arange: step must be nonzero")
    ints = all(isinstance(v, (numbers.Integral,)) for v in (start, end, step))
    dt = _dtype(dtype, np.int64 if ints else np.float32, "arange")
    if ints or dt.kind != "f":
        arr = np.arange(start, end, step).astype(dt)
    else:  # float bounds: computed in float64, as PyTorch does, then cast
        n = max(int(np.ceil((end - start) / step)), 0)
        arr = (start + step * np.arange(n, dtype=np.float64)).astype(dt)
    return _made(arr, requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False) -> Tensor:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"linspace: steps must be a non-negative integer, got {steps!r}")
    return _made(np.linspace(start, end, int(steps)).astype(_dtype(dtype, np.float32, "linspace")), requires_grad)


def eye(n, m=None, dtype=None, requires_grad=False) -> Tensor:
    n, m = _shape((n, n if m is None else m), "eye")
    return _made(np.eye(n, m, dtype=_dtype(dtype, np.float32, "eye")), requires_grad)


def _like(maker, t, fn, dtype, requires_grad, *args) -> Tensor:
    """``maker`` (zeros, ones, full, rand, randn) at ``t``'s shape, in ``t``'s dtype unless one is given."""
    if not isinstance(t, (Tensor, np.ndarray)):
        raise TypeError(f"{fn}: expects a tensor, got {type(t).__name__}")
    return maker(t.shape, *args, dtype=t.dtype if dtype is None else dtype, requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _like(zeros, t, "zeros_like", dtype, requires_grad)


def ones_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _like(ones, t, "ones_like", dtype, requires_grad)


def empty_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _like(empty, t, "empty_like", dtype, requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False) -> Tensor:
    return _like(full, t, "full_like", dtype, requires_grad, fill_value)


def rand_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _like(rand, t, "rand_like", dtype, requires_grad)


def randn_like(t, dtype=None, requires_grad=False) -> Tensor:
    return _like(randn, t, "randn_like", dtype, requires_grad)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor over ``array``'s memory: changing one changes the other (no copy, dtype kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expects a numpy.ndarray, got {type(array).__name__}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"from_numpy: dtype {array.dtype} is not supported (bool, integers, floats)")
    if not array.flags.c_contiguous:
        raise ValueError("from_numpy: the array must be C-contiguous to share its memory (fastdl's storage is "
                         "always C-contiguous); pass np.ascontiguousarray(array), which copies")
    return Tensor(array)  # the Tensor wraps a C-contiguous array without copying it
