"""fastdl: deep learning with native C++ kernels on one thread pool under a PyTorch-shaped API.

>>> import fastdl
>>> x = fastdl.tensor([[1.0, 2.0]], requires_grad=True)
>>> (x * x).sum().backward(); x.grad
tensor([[2., 4.]])
"""
from __future__ import annotations

__version__ = "0.1.0"

from . import backend, cuda
from .autograd import enable_grad, is_grad_enabled, no_grad, set_grad_enabled
from .backend import Device as device, get_backend, get_num_threads, set_backend, set_num_threads
from .gradcheck import GradcheckError, gradcheck
from .rng import manual_seed
from .serialization import load, save
from .tensor import Tensor, as_tensor, matmul, tensor
from .creation import *  # noqa: F401,F403
from .creation import __all__ as _creation

from . import functional, init, nn, optim, data, datasets, text, train, models  # noqa: E402  (after the core)
from .functional import (cat, stack, where, einsum, bmm, mm, tril, triu, maximum, minimum, clamp,  # noqa: E402
                         flatten, logsumexp, cumsum, prod, topk, sort, gather, index_select, masked_fill)
from .functional.maths import norm  # noqa: E402
from .optim.ema import ewa  # noqa: E402

float32, float64, int64, int32, bool_ = "float32", "float64", "int64", "int32", "bool"
float, double, long = float32, float64, int64  # PyTorch's aliases (fastdl.float is "float32")


__all__ = [
    "Tensor", "tensor", "as_tensor", "matmul", "cat", "stack", "no_grad", "enable_grad", "is_grad_enabled",
    "set_grad_enabled", "manual_seed", "gradcheck", "GradcheckError", "save", "load", "set_backend",
    "get_backend", "set_num_threads", "get_num_threads", "functional", "init",
    "nn", "optim", "data", "datasets", "train", "models", "backend", "ewa", "where", "einsum", "bmm", "mm",
    "tril", "triu", "maximum", "minimum", "clamp", "flatten", "logsumexp", "cumsum", "prod", "topk", "sort",
    "gather", "index_select", "masked_fill", "norm", "device", "cuda",
] + _creation
