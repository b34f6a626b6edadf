"""fastdl: deep learning with native C++ kernels on one thread pool under a PyTorch-shaped API.

>>> import fastdl
>>> x = fastdl.tensor([[1.0, 2.0]], requires_grad=True)
>>> (x * x).sum().backward(); x.grad
tensor([[2., 4.]])
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import backend
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import get_backend, get_num_threads, set_backend, set_num_threads
from .gradcheck import GradcheckError, gradcheck
from .rng import manual_seed
from .serialization import load, save
from .tensor import Tensor, as_tensor, matmul, tensor

from . import functional, init, nn, optim, data, datasets, text, train, models  # noqa: E402  (after the core)
from .functional import cat, stack  # noqa: E402
from .optim.ema import ewa  # noqa: E402

float32, float64, int64 = "float32", "float64", "int64"


def zeros(*shape, dtype="float32", requires_grad=False) -> Tensor:
    import numpy as np
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.zeros(shape, dtype=dtype), requires_grad=requires_grad)


def ones(*shape, dtype="float32", requires_grad=False) -> Tensor:
    import numpy as np
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(np.ones(shape, dtype=dtype), requires_grad=requires_grad)


def randn(*shape, dtype="float32", requires_grad=False) -> Tensor:
    from .rng import generator
    shape = shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape
    return Tensor(generator().standard_normal(shape).astype(dtype), requires_grad=requires_grad)


__all__ = [
    "Tensor", "tensor", "as_tensor", "matmul", "cat", "stack", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "manual_seed", "gradcheck", "GradcheckError", "save", "load", "set_backend",
    "get_backend", "set_num_threads", "get_num_threads", "zeros", "ones", "randn", "functional", "init",
    "nn", "optim", "data", "datasets", "train", "models", "backend", "ewa",
]
