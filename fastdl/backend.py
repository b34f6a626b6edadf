"""Kernel tables, one per backend, and the one place where a backend is chosen.

Every backend exposes the same functions (the names in ``reference.OPS``):
``"native"`` is the C++ extension ``fastdl._C``, ``"reference"`` the
NumPy twin in :mod:`fastdl.reference`.  The table used for a call is picked
from the inputs' device by :func:`ops`; on the CPU it is the active backend,
set by :func:`set_backend` or the ``FASTDL_BACKEND`` environment variable.
"""
from __future__ import annotations

import os
from types import ModuleType

import numpy as np

from . import reference

try:  # the extension links the OpenBLAS of scipy-openblas32: load it first
    import scipy_openblas32  # noqa: F401
except ImportError:  # pragma: no cover - a dependency, but keep the message clear
    scipy_openblas32 = None

try:
    from . import _C
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _C = None
    _C_ERROR: Exception | None = exc
else:
    _C_ERROR = None

BACKENDS = ("native", "reference")
_current = "native"


def _table(name: str) -> ModuleType:
    if name == "reference":
        return reference
    if _C is None:
        raise ImportError(
            f"fastdl's native extension could not be loaded ({_C_ERROR}); "
            "reinstall fastdl, or use set_backend('reference') / FASTDL_BACKEND=reference")
    return _C


def set_backend(name: str) -> None:
    """Use the ``"native"`` kernels (default) or the NumPy ``"reference"`` for every op."""
    global _current
    if name not in BACKENDS:
        raise ValueError(f"set_backend: name must be one of {BACKENDS}, got {name!r}")
    _table(name)
    _current = name


def get_backend() -> str:
    """Name of the active backend."""
    return _current


def ops(*arrays) -> ModuleType:
    """The kernel table for these input arrays (today every array lives on the CPU)."""
    return _table(_current)


def array_namespace(x):
    """The array module of ``x`` (NumPy on the CPU; CuPy for CUDA storage).

    The engine takes its generic maths from here rather than from ``np`` directly, so a second
    storage type needs its own kernel table, not a second engine."""
    if isinstance(x, (np.ndarray, np.generic)) or np.isscalar(x):
        return np
    ns = getattr(x, "__array_namespace__", None)
    return ns() if ns is not None else np


def set_num_threads(n: int) -> None:
    """Threads of the native kernels' one pool (BLAS runs single-threaded inside it).  Default: the
    physical cores, or ``OMP_NUM_THREADS`` when set."""
    n = int(n)
    if n < 1:
        raise ValueError(f"set_num_threads: n must be >= 1, got {n}")
    if _C is not None:
        _C.set_num_threads(n)


def get_num_threads() -> int:
    """Threads the native kernels use."""
    return _C.get_num_threads() if _C is not None else 1


def native_available() -> bool:
    return _C is not None


_env = os.environ.get("FASTDL_BACKEND")
if _env:
    set_backend(_env)
