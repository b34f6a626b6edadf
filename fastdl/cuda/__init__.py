"""CUDA: tensors whose storage is CuPy arrays on a GPU, run on fastdl's own CUDA kernels.

Optional twice over: the kernels are a separate extension, ``fastdl._C_cuda``, built only with
``pip install . -Ccmake.define.FASTDL_CUDA=ON`` (needs the CUDA toolkit's nvcc), and the storage and
generic maths come from CuPy (``pip install 'fastdl[cuda]'``).  Nothing here is imported until a
tensor or model is moved to "cuda" or one of these functions is called, so the CPU library never needs
either.  Ops without a CUDA kernel yet run the native CPU kernel on host copies (correct, slow); GEMMs
run through CuPy's cuBLAS.
"""
from __future__ import annotations

import importlib.util

from .. import backend

__all__ = ["is_built", "is_available", "device_count", "synchronize", "get_device_name", "status", "architectures"]


def is_built() -> bool:
    """Whether this installation has the CUDA kernels (``fastdl._C_cuda``)."""
    return importlib.util.find_spec("fastdl._C_cuda") is not None


def _cupy():
    try:
        import cupy
    except ImportError:
        return None
    return cupy


def device_count() -> int:
    """GPUs that CuPy sees (0 without CuPy, a driver or a GPU)."""
    cp = _cupy()
    if cp is None:
        return 0
    try:
        return int(cp.cuda.runtime.getDeviceCount())
    except Exception:  # no driver, no device: CuPy raises its CUDARuntimeError
        return 0


def is_available() -> bool:
    """A GPU, CuPy and the CUDA kernels: tensors can move to "cuda"."""
    return is_built() and device_count() > 0


def _reason() -> str:
    if not is_built():
        return "this build of fastdl has no CUDA kernels (pip install . -Ccmake.define.FASTDL_CUDA=ON)"
    if _cupy() is None:
        return "CuPy is not installed (pip install 'fastdl[cuda]')"
    return "no GPU is seen"


def architectures() -> str:
    """The GPU architectures the kernels were compiled for ("" when not built)."""
    if not is_built():
        return ""
    from .. import _C_cuda
    return _C_cuda.architectures


def get_device_name(index: int = 0) -> str:
    cp = _cupy()
    if cp is None or device_count() <= index:
        raise RuntimeError(f"get_device_name: no GPU {index} ({_reason()})")
    props = cp.cuda.runtime.getDeviceProperties(index)
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


def synchronize(device=None) -> None:
    """Wait for every kernel queued on the GPU (the current one, or ``device``)."""
    if not is_available():
        raise RuntimeError(f"synchronize: CUDA is not available ({_reason()})")
    cp = _cupy()
    index = backend.Device(device).index if device is not None else None
    with cp.cuda.Device(index or 0):
        cp.cuda.Device().synchronize()


def status() -> str:
    """One line for ``fastdl info``."""
    if not is_built():
        return "not built"
    archs = architectures()
    n = device_count()
    if n == 0:
        return f"built ({archs}), no GPU seen" + ("" if _cupy() is not None else " (CuPy is not installed)")
    return f"built ({archs}), {n} GPU(s): " + ", ".join(get_device_name(i) for i in range(n))


def _load() -> None:
    """Register the "cuda" device with the backend (called the first time something moves to "cuda")."""
    if not is_available():
        raise RuntimeError(f"CUDA is not available: {_reason()}")
    from . import ops
    backend.register_device(ops.array_backend())


backend.register_loader("cuda", _load)
