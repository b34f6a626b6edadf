"""Shape and dtype helpers of the Tensor and the functional layer: contiguity, reductions' axes."""
from __future__ import annotations

import numpy as np

from .backend import array_namespace as _xp


def contiguous(a) -> np.ndarray:
    """``a`` as a C-contiguous ndarray, copying only when needed (0-d stays 0-d)."""
    a = np.asarray(a)
    return a if a.flags.c_contiguous else np.array(a, order="C")


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
        return g.reshape((1,) * len(shape))
    if keepdims:
        return g
    axes = (axis,) if isinstance(axis, int) else axis
    return _xp(g).expand_dims(g, tuple(a % len(shape) for a in axes))
