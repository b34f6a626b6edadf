"""Batch and layer normalization (native kernels), PyTorch's semantics."""
from __future__ import annotations

from .. import backend
from ..shapes import float_arg, int_arg
from ..tensor import Tensor, _result, as_tensor, contiguous

__all__ = ["batch_norm", "layer_norm"]


def batch_norm(input, running_mean=None, running_var=None, weight=None, bias=None, training: bool = False,
               momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Normalize each channel of (N, C, *): batch statistics in training (and the running
    statistics, NumPy arrays updated in place: r = (1 - momentum) r + momentum stat, the variance
    unbiased), the running statistics in evaluation; then scale by ``weight``, shift by ``bias``."""
    x = as_tensor(input)
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
    rv = running_var.data if isinstance(running_var, Tensor) else running_var
    kern = backend.ops(x.data)
    y, mean, rstd = kern.batch_norm_forward(x.data, None if w is None else w.data, None if b is None else b.data,
                                            rm, rv, bool(training), float(momentum), float(eps))
    parents = tuple(t for t in (x, w, b) if t is not None)
    xd, wd = x.data, None if w is None else w.data

    def bw(g):
        gx, gw, gb = kern.batch_norm_backward(contiguous(g), xd, wd, mean, rstd, bool(training), x.requires_grad,
                                              w is not None and w.requires_grad, b is not None and b.requires_grad)
        return tuple(v for v, t in ((gx, x), (gw, w), (gb, b)) if t is not None)
    return _result(y, parents, bw)


def layer_norm(input, normalized_shape, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalize over the trailing ``normalized_shape`` dims of each sample, then scale and shift."""
    x = as_tensor(input)
    ns = normalized_shape if isinstance(normalized_shape, (list, tuple)) else (normalized_shape,)
    ns = tuple(int_arg(v, "normalized_shape", "layer_norm", 1) for v in ns)
    eps = float_arg(eps, "eps", "layer_norm", 0.0, lo_open=True)
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    kern = backend.ops(x.data)
    y, mean, rstd = kern.layer_norm_forward(x.data, list(ns), None if w is None else w.data,
                                            None if b is None else b.data, float(eps))
    parents = tuple(t for t in (x, w, b) if t is not None)
    xd, wd = x.data, None if w is None else w.data

    def bw(g):
        gx, gw, gb = kern.layer_norm_backward(contiguous(g), xd, list(ns), wd, mean, rstd, x.requires_grad,
                                              w is not None and w.requires_grad, b is not None and b.requires_grad)
        return tuple(v for v, t in ((gx, x), (gw, w), (gb, b)) if t is not None)
    return _result(y, parents, bw)
