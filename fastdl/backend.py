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


# ---------------------------------------------------------------- devices
class Device:
    """Where a tensor's storage lives: ``Device("cpu")``, ``Device("cuda:0")`` (PyTorch's ``torch.device``).
    Compares equal to its string (``t.device == "cpu"``)."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index: int | None = None):
        if isinstance(spec, Device):
            spec, index = spec.type, spec.index if index is None else index
        if not isinstance(spec, str):
            raise TypeError(f"device: expected a string such as 'cpu' or 'cuda:0', got {type(spec).__name__}")
        kind, _, idx = spec.partition(":")
        if idx:
            if index is not None or not idx.isdigit():
                raise ValueError(f"device: bad device string {spec!r}")
            index = int(idx)
        if kind != "cpu" and kind not in _DEVICES and kind != "cuda":
            known = ", ".join(["cpu", "cuda"] + [k for k in _DEVICES if k != "cuda"])
            raise ValueError(f"device: unknown device type {kind!r} (known: {known})")
        if index is not None and (kind == "cpu" or index < 0):
            raise ValueError(f"device: bad index {index} for {kind!r}")
        self.type, self.index = kind, index

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        return f"device(type={self.type!r}" + (f", index={self.index})" if self.index is not None else ")")

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            try:
                other = Device(other)
            except (TypeError, ValueError):
                return False
        return isinstance(other, Device) and (self.type, self.index or 0) == (other.type, other.index or 0)

    def __hash__(self) -> int:
        return hash((self.type, self.index or 0))


CPU = Device("cpu")


def np_dtype(dt) -> np.dtype:
    """A dtype of any namespace as NumPy's (fastdl's tensors report NumPy dtypes on every device)."""
    if isinstance(dt, np.dtype):
        return dt
    try:
        return np.dtype(dt)
    except TypeError:
        return np.dtype(str(dt).rsplit(".", 1)[-1])


def xp_dtype(xp, dt):
    """NumPy dtype ``dt`` as namespace ``xp``'s dtype object."""
    dt = np.dtype(dt)
    return dt if xp is np else getattr(xp, dt.name)


class ArrayBackend:
    """A storage type other than NumPy: its array ``namespace``, its kernel ``table`` (the names of
    ``reference.OPS``), and the copies to and from host NumPy arrays.  ``fastdl.cuda`` registers CuPy's
    as "cuda"; the tests register ``array_api_strict`` to prove the engine touches storage only through
    the namespace and the table."""

    def __init__(self, name: str, namespace, table, from_numpy, to_numpy, index_of=None, array_type=None):
        self.name, self.namespace, self.table = name, namespace, table
        self.from_numpy, self.to_numpy = from_numpy, to_numpy
        self.index_of = index_of or (lambda a: None)
        self.array_type = array_type  # the storage's array class (found without __array_namespace__)


_DEVICES: dict = {}  # device type -> ArrayBackend
_BY_NAMESPACE: dict = {}  # id(namespace module) -> ArrayBackend
_BY_TYPE: dict = {}  # array class -> ArrayBackend


_LOADERS: dict = {}  # device type -> a function that registers it on first use (fastdl.cuda's)


def register_loader(name: str, load) -> None:
    """``load()`` registers device ``name`` (or raises saying why it cannot) when a tensor first moves there."""
    _LOADERS[name] = load


def device_types() -> tuple:
    """"cpu", "cuda" and every registered device type."""
    return ("cpu", "cuda") + tuple(k for k in _DEVICES if k != "cuda")


def register_device(backend: ArrayBackend) -> None:
    """Make a storage type known: tensors holding its arrays report ``backend.name`` as their device and
    run on ``backend.table``."""
    _DEVICES[backend.name] = backend
    _BY_NAMESPACE[id(backend.namespace)] = backend
    if backend.array_type is not None:
        _BY_TYPE[backend.array_type] = backend


def unregister_device(name: str) -> None:
    b = _DEVICES.pop(name, None)
    if b is not None:
        _BY_NAMESPACE.pop(id(b.namespace), None)
        _BY_TYPE.pop(b.array_type, None)


def _foreign(a):
    """The ArrayBackend of a non-NumPy array (None for NumPy arrays, scalars and None)."""
    if a is None or isinstance(a, (np.ndarray, np.generic, int, float, bool, complex)):
        return None
    b = _BY_TYPE.get(type(a))
    if b is not None:
        return b
    ns = getattr(a, "__array_namespace__", None)
    if ns is None:
        return None
    b = _BY_NAMESPACE.get(id(ns()))
    if b is None:
        raise TypeError(f"fastdl: arrays of {ns().__name__} are not a registered device's storage")
    return b


def on_device(a) -> bool:
    """Whether ``a`` is an array of a registered device other than the CPU."""
    if type(a) is np.ndarray or a is None:
        return False
    try:
        return _foreign(a) is not None
    except TypeError:
        return False


def to_args(target, dtype=None):
    """``.to()``'s arguments as ``(Device or None, dtype or None)``: ``target`` is a device (a Device, or a
    string naming a device type) or else a dtype, as in PyTorch's ``.to(device)``, ``.to(dtype)``."""
    if target is None or isinstance(target, Device) or \
            isinstance(target, str) and target.partition(":")[0] in device_types():
        return (None if target is None else Device(target)), dtype
    return None, target


def cuda_device(device=None) -> Device:
    """``.cuda(device)``'s argument (None, an index, or a device) as a Device."""
    if device is None or isinstance(device, int):
        return Device("cuda", device)
    return Device(device)


def device_of(a) -> Device:
    """The device of an array (NumPy: cpu)."""
    b = _foreign(a)
    return CPU if b is None else Device(b.name, b.index_of(a))


def ops(*arrays) -> ModuleType:
    """The kernel table for these input arrays: the active CPU backend for NumPy arrays, the registered
    table of their device otherwise.  Arrays on two devices are refused, naming both."""
    for a in arrays:
        if a is not None and type(a) is not np.ndarray:
            break
    else:  # every array on the CPU: the active backend
        return _C if _current == "native" and _C is not None else _table(_current)
    found = None
    for a in arrays:
        if a is None or type(a) is np.ndarray:
            continue
        b = _foreign(a)
        if b is not None:
            if found is not None and found is not b:
                raise RuntimeError(f"expected all arrays on one device, got {found.name} and {b.name}")
            found = b
    if found is None:
        return _table(_current)
    for a in arrays:
        if type(a) is np.ndarray:
            raise RuntimeError(f"expected all arrays on one device, got cpu and {found.name}")
    return found.table


def to_device(a, dev: Device):
    """``a`` (an array of any registered device, or NumPy) copied to ``dev`` (no copy when it is there)."""
    src = _foreign(a)
    if (src.name if src else "cpu") == dev.type:
        return a
    host = np.asarray(src.to_numpy(a) if src is not None else a)
    if not host.flags.c_contiguous:  # (np.ascontiguousarray would make a 0-d array 1-d)
        host = np.array(host, order="C")
    if dev.type == "cpu":
        return host
    b = _DEVICES.get(dev.type)
    if b is None and dev.type in _LOADERS:
        _LOADERS[dev.type]()  # raises, saying why, when the device cannot be used here
        b = _DEVICES.get(dev.type)
    if b is None:
        raise RuntimeError(f"to: device {dev} is not available (no such device is registered)")
    return b.from_numpy(host, dev.index)


def host_table(base: ModuleType, to_numpy, from_numpy):
    """A kernel table for another storage type made of ``base``'s kernels (the NumPy reference, or the
    native ones) run on host copies: every array argument is copied to NumPy, every array result back,
    and arrays the kernel updated in place (optimizer states, parameters) are written back.  Slow, and
    only for proving the engine device-agnostic or for ops a device lacks."""
    from types import SimpleNamespace

    def wrap(fn):
        def call(*args, **kwargs):
            pairs = []

            def down(v):
                if _foreign(v) is not None:
                    h = np.array(to_numpy(v), copy=True)
                    pairs.append((v, h, h.copy()))
                    return h
                if isinstance(v, (list, tuple)):
                    return type(v)(down(x) for x in v)
                return v
            hargs = [down(a) for a in args]
            hkw = {k: down(v) for k, v in kwargs.items()}
            out = fn(*hargs, **hkw)
            for dev_arr, h, before in pairs:  # the kernel's in-place updates land in the device arrays
                if not np.array_equal(h, before, equal_nan=h.dtype.kind == "f"):
                    _write_back(dev_arr, h, from_numpy)

            def up(v):
                if isinstance(v, np.ndarray):
                    return from_numpy(v)
                if isinstance(v, tuple):
                    return tuple(up(x) for x in v)
                if isinstance(v, list):
                    return [up(x) for x in v]
                return v
            return up(out)
        call.__name__ = fn.__name__
        return call
    return SimpleNamespace(**{name: wrap(getattr(base, name)) for name in reference.OPS})


def _write_back(dev_arr, host, from_numpy) -> None:
    setter = getattr(dev_arr, "__setitem__", None)
    if setter is not None:
        setter(Ellipsis, from_numpy(host))


def array_namespace(x):
    """The array module of ``x`` (NumPy on the CPU; CuPy for CUDA storage).

    The engine takes its generic maths from here rather than from ``np`` directly, so a second
    storage type needs its own kernel table, not a second engine."""
    if isinstance(x, (np.ndarray, np.generic)) or np.isscalar(x):
        return np
    b = _BY_TYPE.get(type(x))
    if b is not None:
        return b.namespace
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
