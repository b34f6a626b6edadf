"""The kernel table of CUDA tensors (CuPy arrays): fastdl's CUDA kernels (``fastdl._C_cuda``), CuPy's
cuBLAS for the GEMMs and CuPy's elementwise maths for the MSE and BCE losses; only attention heads wider
than the attention kernel holds run the native CPU kernel on host copies.

Each function has the signature and the checks of the CPU kernel of the same name (``reference.OPS``):
arrays must be CuPy arrays of the kernel's dtype and shape, and what a kernel cannot check on the GPU
without a fault (class and embedding indices in range) is checked here first.  Imported only by
:func:`fastdl.cuda._load`, when CuPy, a GPU and the kernels are all there.
"""
from __future__ import annotations

import math
from types import SimpleNamespace

import cupy as cp
import numpy as np

from .. import _C_cuda as K
from .. import backend, reference
from ..reference._checks import _scalars
from ..reference.attention import _finite, _scale_in_range, _seed
from ..reference.conv import _conv_geometry
from ..reference.elementwise import ACTIVATIONS, _act_args
from ..reference.norm import _gn_dims, _ln_axes
from ..reference.optim import ADAPTIVE, _adaptive_hyper, _hyper
from ..reference.rnn import _directions_check
from ..reference.pool import _pool_check

_ACT = {"relu": 0, "tanh": 1, "sigmoid": 2}


def _stream() -> int:
    return cp.cuda.get_current_stream().ptr


def _float(a, fn: str, name: str):
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{fn}: {name} must be a CUDA array, got {type(a).__name__}")
    if a.dtype not in (cp.float32, cp.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {a.dtype}")
    return _contiguous(a)


def _float_nd(a, ndim: int, fn: str, name: str):
    """_float, and ``ndim`` dimensions."""
    a = _float(a, fn, name)
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must have {ndim} dimensions, got shape {a.shape}")
    return a


def _contiguous(a):
    """C-contiguous, keeping a 0-d array 0-d (cp.ascontiguousarray would make it 1-d)."""
    return a if a.flags.c_contiguous else cp.array(a, order="C")


def _like(a, ref, fn: str, name: str, ref_name: str, shape=None):
    a = _float(a, fn, name)
    if a.dtype != ref.dtype:
        raise TypeError(f"{fn}: {name} has dtype {a.dtype} but {ref_name} has {ref.dtype}")
    want = ref.shape if shape is None else shape
    if a.shape != tuple(want):
        raise ValueError(f"{fn}: {name} has shape {a.shape}, expected {tuple(want)}")
    return a


def _code(a) -> int:
    return 0 if a.dtype == cp.float32 else 1


def _ptr(a) -> int:
    return 0 if a is None else int(a.data.ptr)


def _mask_of(mask, x, fn: str, x_name: str):
    """A bool or integer mask of x's shape, as bool (nonzero: True), C-contiguous."""
    m = cp.asarray(mask)
    if m.dtype.kind not in "biu":
        raise TypeError(f"{fn}: mask must be bool or integer, got {m.dtype}")
    if m.shape != x.shape:
        raise ValueError(f"{fn}: mask has shape {m.shape} but {x_name} has shape {x.shape}")
    return _contiguous(m.astype(cp.bool_, copy=False))


def _indices(idx, n: int, fn: str, name: str, ignore=None):
    """int64 indices on the GPU, checked to lie in [0, n) (``ignore`` excepted) before any kernel reads them."""
    i = _contiguous(cp.asarray(idx))
    if i.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must hold integers, got {i.dtype}")
    i = i.astype(cp.int64, copy=False)
    if i.size:
        bad = (i < 0) | (i >= n)
        if ignore is not None:
            bad &= i != ignore
        if bool(bad.any()):
            raise ValueError(f"{fn}: {name} holds values outside [0, {n})")
    return i


# ---------------------------------------------------------------- activations
def _act_forward(kind):
    def forward(x):
        fn = f"{kind}_forward"
        x = _float(x, fn, "x")
        y = cp.empty_like(x)
        K.act_forward(_ACT[kind], _code(x), _ptr(x), _ptr(y), x.size, _stream())
        return y
    forward.__name__ = f"{kind}_forward"
    return forward


def _act_backward(kind):
    def backward(gy, y):
        fn = f"{kind}_backward"
        y = _float(y, fn, "y")
        gy = _like(gy, y, fn, "gy", "y")
        gx = cp.empty_like(y)
        K.act_backward(_ACT[kind], _code(y), _ptr(gy), _ptr(y), _ptr(gx), y.size, _stream())
        return gx
    backward.__name__ = f"{kind}_backward"
    return backward


# ---------------------------------------------------------------- dropout and the parametrised activations
@_scalars(shape="ints", p="float", seed="int")
def dropout_mask(shape, p, seed):
    """The CPU kernel's keep-mask (the same counter hash), made on the GPU."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout_mask: p must be in [0, 1], got {p}")
    if seed < 0:
        raise ValueError(f"dropout_mask: seed must be >= 0, got {seed}")
    if seed >= 2**63:  # the CPU kernel's limit (int64), kept so both devices take the same seeds
        raise ValueError(f"dropout_mask: seed is too large: {seed}")
    if any(s < 0 for s in shape):
        raise ValueError("dropout_mask: shape has a negative size")
    out = cp.empty(tuple(shape), cp.uint8)
    K.dropout_mask(_ptr(out), out.size, p, seed, _stream())
    return out


@_scalars(scale="float")
def dropout_apply(x, mask, scale):
    fn = "dropout_apply"
    x = _float(x, fn, "x")
    m = _mask_of(mask, x, fn, "x").view(cp.uint8)
    if not np.isfinite(x.dtype.type(scale)):
        raise ValueError(f"{fn}: scale must be finite in the input's dtype, got {scale}")
    y = cp.empty_like(x)
    K.dropout_apply(_code(x), _ptr(x), _ptr(m), _ptr(y), x.size, scale, _stream())
    return y


@_scalars(kind="str", alpha="float", beta="float")
def activation_forward(x, kind, alpha=0.0, beta=0.0):
    _act_args(kind, alpha, beta, "activation_forward")
    x = _float(x, "activation_forward", "x")
    y = cp.empty_like(x)
    K.activation_forward(ACTIVATIONS.index(kind), _code(x), _ptr(x), _ptr(y), x.size, alpha, beta, _stream())
    return y


@_scalars(kind="str", alpha="float", beta="float")
def activation_backward(gy, x, kind, alpha=0.0, beta=0.0):
    fn = "activation_backward"
    _act_args(kind, alpha, beta, fn)
    x = _float(x, fn, "x")
    gy = _like(gy, x, fn, "gy", "x")
    gx = cp.empty_like(x)
    K.activation_backward(ACTIVATIONS.index(kind), _code(x), _ptr(gy), _ptr(x), _ptr(gx), x.size, alpha, beta,
                          _stream())
    return gx


# ---------------------------------------------------------------- softmax along any axis
def _rows(x, axis: int, fn: str):
    if not -max(x.ndim, 1) <= axis < max(x.ndim, 1):
        raise ValueError(f"{fn}: axis {axis} is out of range for {x.ndim} dimensions")
    return cp.ascontiguousarray(cp.moveaxis(x, axis, -1)) if x.ndim else x.reshape(1)


def _softmax_forward(log: int):
    def forward(x, axis=-1):
        fn = "log_softmax_forward" if log else "softmax_forward"
        x = _float(x, fn, "x")
        xm = _rows(x, axis, fn)
        y = cp.empty_like(xm)
        cols = xm.shape[-1] if xm.ndim else 1
        K.softmax_forward(log, _code(x), _ptr(xm), _ptr(y), xm.size // max(cols, 1), cols, _stream())
        return cp.ascontiguousarray(cp.moveaxis(y, -1, axis)) if x.ndim else y.reshape(())
    return forward


def _softmax_backward(log: int):
    def backward(gy, y, axis=-1):
        fn = "log_softmax_backward" if log else "softmax_backward"
        y = _float(y, fn, "y")
        gy = _like(gy, y, fn, "gy", "y")
        ym, gm = _rows(y, axis, fn), _rows(gy, axis, fn)
        gx = cp.empty_like(ym)
        cols = ym.shape[-1] if ym.ndim else 1
        K.softmax_backward(log, _code(y), _ptr(gm), _ptr(ym), _ptr(gx), ym.size // max(cols, 1), cols, _stream())
        return cp.ascontiguousarray(cp.moveaxis(gx, -1, axis)) if y.ndim else gx.reshape(())
    return backward


def _softmax_rows(a):
    cols = a.shape[-1]
    return a.size // max(cols, 1), cols


@_scalars(scale="float")
def masked_softmax_forward(x, mask=None, scale=1.0):
    fn = "masked_softmax_forward"
    x = _float(x, fn, "x")
    if not 1 <= x.ndim <= 64:
        raise ValueError(f"{fn}: x must have 1 to 64 dimensions, got shape {x.shape}")
    scale = _finite(scale, fn)
    keep = None if mask is None else _mask_of(mask, x, fn, "x")
    y = cp.empty_like(x)
    K.masked_softmax_forward(_code(x), _ptr(x), _ptr(keep), _ptr(y), *_softmax_rows(x), scale, _stream())
    return y


@_scalars(scale="float")
def masked_softmax_backward(gy, y, scale=1.0):
    fn = "masked_softmax_backward"
    y = _float(y, fn, "y")
    gy = _like(gy, y, fn, "gy", "y")
    if not 1 <= y.ndim <= 64:
        raise ValueError(f"{fn}: y must have 1 to 64 dimensions, got shape {y.shape}")
    scale = _finite(scale, fn)
    gx = cp.empty_like(y)
    K.masked_softmax_backward(_code(y), _ptr(gy), _ptr(y), _ptr(gx), *_softmax_rows(y), scale, _stream())
    return gx


# ---------------------------------------------------------------- cross-entropy
def cross_entropy_forward(logits, target, ignore_index=-100, label_smoothing=0.0):
    fn = "cross_entropy_forward"
    x = _float(logits, fn, "logits")
    if x.ndim != 2:
        raise ValueError(f"{fn}: logits must be (N, C), got shape {x.shape}")
    n, c = x.shape
    t = _indices(target, c, fn, "target", ignore=int(ignore_index))
    if t.shape != (n,):
        raise ValueError(f"{fn}: target has shape {t.shape}, expected ({n},)")
    loss, lse = cp.empty(n, x.dtype), cp.empty(n, x.dtype)
    K.cross_entropy_forward(_code(x), _ptr(x), _ptr(t), _ptr(loss), _ptr(lse), n, c, int(ignore_index),
                            float(label_smoothing), _stream())
    return loss, lse


def cross_entropy_backward(gloss, logits, target, lse, ignore_index=-100, label_smoothing=0.0):
    fn = "cross_entropy_backward"
    x = _float(logits, fn, "logits")
    if x.ndim != 2:
        raise ValueError(f"{fn}: logits must be (N, C), got shape {x.shape}")
    n, c = x.shape
    gloss = _like(gloss, x, fn, "gloss", "logits", (n,))
    lse = _like(lse, x, fn, "lse", "logits", (n,))
    t = _indices(target, c, fn, "target", ignore=int(ignore_index))
    if t.shape != (n,):
        raise ValueError(f"{fn}: target has shape {t.shape}, expected ({n},)")
    gx = cp.empty_like(x)
    K.cross_entropy_backward(_code(x), _ptr(gloss), _ptr(x), _ptr(t), _ptr(lse), _ptr(gx), n, c, int(ignore_index),
                             float(label_smoothing), _stream())
    return gx


# ---------------------------------------------------------------- optimizers (in place)
def _param(p, fn):
    if not isinstance(p, cp.ndarray) or p.dtype not in (cp.float32, cp.float64) or not p.flags.c_contiguous:
        raise TypeError(f"{fn}: param must be a C-contiguous float32 or float64 CUDA array")
    return p


def _state(a, p, fn, name, optional=False):
    if a is None:
        if optional:
            return None
        raise TypeError(f"{fn}: {name} is required")
    if not isinstance(a, cp.ndarray) or a.dtype != p.dtype or a.shape != p.shape or not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be a C-contiguous CUDA array of the parameter's shape and dtype")
    return a


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    fn = "sgd_step"
    p = _param(param, fn)
    g = _like(grad, p, fn, "grad", "param")
    buf = _state(momentum_buffer, p, fn, "momentum_buffer", optional=True)
    K.sgd_step(_code(p), _ptr(p), _ptr(g), _ptr(buf), p.size, float(lr), float(momentum), float(dampening),
               float(weight_decay), bool(nesterov), bool(maximize), bool(first_step), _stream())


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
              maximize, step):
    fn = "adam_step"
    p = _param(param, fn)
    g = _like(grad, p, fn, "grad", "param")
    m, v = _state(exp_avg, p, fn, "exp_avg"), _state(exp_avg_sq, p, fn, "exp_avg_sq")
    vmax = _state(max_exp_avg_sq, p, fn, "max_exp_avg_sq", optional=True)
    K.adam_step(_code(p), _ptr(p), _ptr(g), _ptr(m), _ptr(v), _ptr(vmax), p.size, float(lr), float(beta1), float(beta2),
                float(eps), float(weight_decay), bool(decoupled), bool(maximize), int(step), _stream())



def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum, maximize):
    fn = "rmsprop_step"
    p = _param(param, fn)
    g = _like(grad, p, fn, "grad", "param")
    sq = _state(square_avg, p, fn, "square_avg")
    ga = _state(grad_avg, p, fn, "grad_avg", optional=True)
    buf = _state(momentum_buffer, p, fn, "momentum_buffer", optional=True)
    _hyper(fn, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum)
    K.rmsprop_step(_code(p), _ptr(p), _ptr(g), _ptr(sq), _ptr(ga), _ptr(buf), p.size, float(lr), float(alpha),
                   float(eps), float(weight_decay), float(momentum), bool(maximize), _stream())


def adaptive_step(kind, param, grad, state_a, state_b, lr, beta1, beta2, eps, weight_decay, decoupled, maximize, step,
                  extra, extra2):
    fn = "adaptive_step"
    if kind not in ADAPTIVE:
        raise ValueError(f"{fn}: unknown optimizer kind '{kind}'")
    p = _param(param, fn)
    g = _like(grad, p, fn, "grad", "param")
    a = _state(state_a, p, fn, "state_a")
    b = _state(state_b, p, fn, "state_b", optional=True)
    if kind != "adagrad" and b is None:
        raise ValueError(f"{fn}: {kind} needs state_b")
    _adaptive_hyper(kind, lr, beta1, beta2, eps, weight_decay, step, extra, extra2)
    K.adaptive_step(ADAPTIVE.index(kind), _code(p), _ptr(p), _ptr(g), _ptr(a), _ptr(b), p.size, float(lr),
                    float(beta1), float(beta2), float(eps), float(weight_decay), bool(decoupled), bool(maximize),
                    int(step), float(extra), float(extra2), _stream())

# ---------------------------------------------------------------- MSE and BCE with logits (CuPy's elementwise maths)
def mse_forward(input, target):
    """sum (p - t)^2 as a Python float, accumulated in float64 (as the CPU kernel)."""
    fn = "mse_forward"
    p = _float(input, fn, "input")
    d = p.astype(cp.float64) - _like(target, p, fn, "target", "input")
    return float(cp.sum(d * d))


@_scalars(scale="float")
def mse_backward(scale, input, target):
    fn = "mse_backward"
    p = _float(input, fn, "input")
    t = _like(target, p, fn, "target", "input")
    return (p.dtype.type(scale) * 2 * (p - t)).astype(p.dtype)


def _bce_args(gloss, logits, target, mask, fn):
    x = _float(logits, fn, "logits")
    t = _like(target, x, fn, "target", "logits")
    g = None if gloss is None else _like(gloss, x, fn, "gloss", "logits")
    return x, t, None if mask is None else _mask_of(mask, x, fn, "logits"), g


def bce_with_logits_forward(logits, target, mask=None):
    x, t, m, _ = _bce_args(None, logits, target, mask, "bce_with_logits_forward")
    loss = cp.maximum(x, 0) - x * t + cp.log1p(cp.exp(-cp.abs(x)))
    return (loss if m is None else cp.where(m, loss, 0)).astype(x.dtype)


def bce_with_logits_backward(gloss, logits, target, mask=None):
    if gloss is None:
        raise TypeError("bce_with_logits_backward: gloss must be an array, got None")
    x, t, m, g = _bce_args(gloss, logits, target, mask, "bce_with_logits_backward")
    gx = g * (_act_forward("sigmoid")(x) - t)
    return (gx if m is None else cp.where(m, gx, 0)).astype(x.dtype)


# ---------------------------------------------------------------- embeddings
def embedding_forward(weight, indices):
    fn = "embedding_forward"
    w = _float(weight, fn, "weight")
    if w.ndim != 2:
        raise ValueError(f"{fn}: weight must be (V, D), got shape {w.shape}")
    i = _indices(indices, w.shape[0], fn, "indices")
    y = cp.empty(i.shape + (w.shape[1],), w.dtype)
    K.embedding_forward(_code(w), _ptr(w), _ptr(i), _ptr(y), i.size, w.shape[1], _stream())
    return y


def embedding_backward(gy, indices, num_embeddings, padding_idx=-1):
    fn = "embedding_backward"
    gy = _float(gy, fn, "gy")
    v = int(num_embeddings)
    if v < 1:
        raise ValueError(f"{fn}: num_embeddings must be >= 1")
    i = _indices(indices, v, fn, "indices").reshape(-1)
    if gy.ndim < 1 or gy.size != i.size * gy.shape[-1]:
        raise ValueError(f"{fn}: gy has shape {gy.shape}, expected the indices' shape + (D,)")
    d = gy.shape[-1]
    gw = cp.empty((v, d), gy.dtype)
    K.embedding_backward(_code(gy), _ptr(gy), _ptr(i), _ptr(gw), i.size, d, v, int(padding_idx), _stream())
    return gw


# ---------------------------------------------------------------- convolution: im2col + cuBLAS
# im2col + GEMM rather than an implicit-GEMM kernel: cuBLAS (through CuPy) runs the products near the
# GPU's peak, and the im2col / col2im gathers are simple enough to check by reading; the price is the
# (C*kh*kw, N*OH*OW) column matrix in GPU memory.
@_scalars(stride="pair", padding="quad", dilation="pair", groups="int")
def conv2d_forward(input, weight, bias, stride, padding, dilation, groups):
    fn = "conv2d_forward"
    x, w = _float(input, fn, "input"), _float(weight, fn, "weight")
    oh, ow = _conv_geometry(x, w, stride, padding, dilation, groups, fn)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    b = None if bias is None else _like(bias, x, fn, "bias", "input", (k,))
    cols = _im2col(x, (kh, kw), (oh, ow), stride, padding, dilation)  # (C*kh*kw, N*OH*OW)
    kg, rows = k // groups, cg * kh * kw
    y = cp.empty((k, n * oh * ow), x.dtype)
    for gi in range(groups):  # one GEMM per group: W_g (kg, rows) @ cols_g (rows, N*OH*OW)
        cp.matmul(w[gi * kg:(gi + 1) * kg].reshape(kg, rows), cols[gi * rows:(gi + 1) * rows], out=y[gi * kg:(gi + 1) * kg])
    y = cp.ascontiguousarray(y.reshape(k, n, oh, ow).transpose(1, 0, 2, 3))
    return y if b is None else y + b.reshape(1, k, 1, 1)


@_scalars(stride="pair", padding="quad", dilation="pair", groups="int", need_input="bool", need_weight="bool",
          need_bias="bool")
def conv2d_backward(gy, input, weight, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    fn = "conv2d_backward"
    x, w = _float(input, fn, "input"), _float(weight, fn, "weight")
    oh, ow = _conv_geometry(x, w, stride, padding, dilation, groups, fn)
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    g = _like(gy, x, fn, "gy", "input", (n, k, oh, ow))
    kg, rows = k // groups, cg * kh * kw
    gk = cp.ascontiguousarray(g.transpose(1, 0, 2, 3)).reshape(k, n * oh * ow)  # (K, N*OH*OW)
    gx = gw = gb = None
    if need_weight:
        cols = _im2col(x, (kh, kw), (oh, ow), stride, padding, dilation)
        gw = cp.empty((k, rows), x.dtype)
        for gi in range(groups):
            cp.matmul(gk[gi * kg:(gi + 1) * kg], cols[gi * rows:(gi + 1) * rows].T, out=gw[gi * kg:(gi + 1) * kg])
        gw = gw.reshape(w.shape)
    if need_input:
        gcols = cp.empty((c * kh * kw, n * oh * ow), x.dtype)
        for gi in range(groups):
            cp.matmul(w[gi * kg:(gi + 1) * kg].reshape(kg, rows).T, gk[gi * kg:(gi + 1) * kg],
                      out=gcols[gi * rows:(gi + 1) * rows])
        gx = cp.empty_like(x)
        K.col2im(_code(x), _ptr(gcols), _ptr(gx), _conv_geom(x, (kh, kw), (oh, ow), stride, padding, dilation),
                 _stream())
    if need_bias:
        gb = g.sum(axis=(0, 2, 3))
    return gx, gw, gb


def _conv_geom(x, k, out, stride, padding, dilation):
    n, c, h, w = x.shape
    return (n, c, h, w, k[0], k[1], out[0], out[1], stride[0], stride[1], padding[0], padding[1], dilation[0],
            dilation[1])


def _im2col(x, k, out, stride, padding, dilation):
    cols = cp.empty((x.shape[1] * k[0] * k[1], x.shape[0] * out[0] * out[1]), x.dtype)
    K.im2col(_code(x), _ptr(x), _ptr(cols), _conv_geom(x, k, out, stride, padding, dilation), _stream())
    return cols


# ---------------------------------------------------------------- pooling
def _planes(x, fn, name):
    if x.ndim not in (3, 4):
        raise ValueError(f"{fn}: {name} must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    return int(np.prod(x.shape[:-2]))


def _pool_input(input, kernel_size, stride, padding, dilation, ceil_mode, fn):
    """The pooled input checked as the CPU kernel checks it -> (x, its geometry tuple for the kernel, y)."""
    x = _float(input, fn, "input")
    p = _planes(x, fn, "input")
    if x.size == 0:
        raise ValueError(f"{fn}: input must not be empty, got shape {x.shape}")
    oh, ow = _pool_check(x, kernel_size, stride, padding, dilation, ceil_mode, fn)
    geom = (p,) + x.shape[-2:] + (oh, ow) + tuple(kernel_size) + tuple(stride) + tuple(padding) + tuple(dilation)
    return x, geom, cp.empty(x.shape[:-2] + (oh, ow), x.dtype)


@_scalars(kernel_size="pair", stride="pair", padding="pair", dilation="pair", ceil_mode="bool")
def max_pool2d_forward(input, kernel_size, stride, padding, dilation, ceil_mode):
    x, geom, y = _pool_input(input, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d_forward")
    idx = cp.empty(y.shape, cp.int64)
    K.max_pool2d_forward(_code(x), _ptr(x), _ptr(y), _ptr(idx), geom, _stream())
    return y, idx


def _pool_grad(gy, input_size, fn):
    """A pool's output gradient checked -> (gy, planes, (H, W), the input gradient's empty array)."""
    g = _float(gy, fn, "gy")
    p = _planes(g, fn, "gy")
    h, w = input_size
    if h < 1 or w < 1:
        raise ValueError(f"{fn}: input_size must be >= 1")
    return g, p, (h, w), cp.empty(g.shape[:-2] + (h, w), g.dtype)


@_scalars(input_size="pair")
def max_pool2d_backward(gy, indices, input_size):
    fn = "max_pool2d_backward"
    g, p, (h, w), gx = _pool_grad(gy, input_size, fn)
    idx = _contiguous(cp.asarray(indices))
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{fn}: indices must hold integers, got {idx.dtype}")
    idx = idx.astype(cp.int64, copy=False)
    if idx.shape != g.shape:
        raise ValueError(f"{fn}: indices has shape {idx.shape} but gy has {g.shape}")
    if idx.size and bool(((idx < -1) | (idx >= h * w)).any()):  # -1: an all-padding window
        raise IndexError(f"{fn}: indices out of range for the input size")
    # the window geometry is not needed: the kernel adds gy at the recorded indices
    K.max_pool2d_backward(_code(g), _ptr(g), _ptr(idx), _ptr(gx), (p, h, w) + g.shape[-2:] + (1,) * 8, _stream())
    return gx


@_scalars(kernel_size="pair", stride="pair", padding="pair", ceil_mode="bool", count_include_pad="bool")
def avg_pool2d_forward(input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    x, geom, y = _pool_input(input, kernel_size, stride, padding, (1, 1), ceil_mode, "avg_pool2d_forward")
    K.avg_pool2d_forward(_code(x), _ptr(x), _ptr(y), geom, bool(count_include_pad), _stream())
    return y


@_scalars(input_size="pair", kernel_size="pair", stride="pair", padding="pair", ceil_mode="bool",
          count_include_pad="bool")
def avg_pool2d_backward(gy, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad):
    fn = "avg_pool2d_backward"
    g, p, (h, w), gx = _pool_grad(gy, input_size, fn)
    if _pool_check(g, kernel_size, stride, padding, (1, 1), ceil_mode, fn, (h, w)) != g.shape[-2:]:
        raise ValueError(f"{fn}: gy {g.shape} does not match the pooled input size")
    K.avg_pool2d_backward(_code(g), _ptr(g), _ptr(gx), (p, h, w) + g.shape[-2:] + kernel_size + stride + padding
                          + (1, 1), bool(count_include_pad), _stream())
    return gx



@_scalars(output_size="pair")
def adaptive_avg_pool2d_forward(input, output_size):
    fn = "adaptive_avg_pool2d_forward"
    x = _float(input, fn, "input")
    p = _planes(x, fn, "input")
    oh, ow = output_size
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: output_size must be >= 1")
    if x.size == 0:
        raise ValueError(f"{fn}: input must not be empty, got shape {x.shape}")
    y = cp.empty(x.shape[:-2] + (oh, ow), x.dtype)
    K.adaptive_avg_pool2d_forward(_code(x), _ptr(x), _ptr(y), p, *x.shape[-2:], oh, ow, _stream())
    return y


@_scalars(input_size="pair")
def adaptive_avg_pool2d_backward(gy, input_size):
    fn = "adaptive_avg_pool2d_backward"
    g, p, (h, w), gx = _pool_grad(gy, input_size, fn)
    oh, ow = g.shape[-2:]
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: gy {g.shape} has an empty pooled size")
    K.adaptive_avg_pool2d_backward(_code(g), _ptr(g), _ptr(gx), p, h, w, oh, ow, _stream())
    return gx


# ---------------------------------------------------------------- normalization
def _chan(v, x, fn, name, n):
    return None if v is None else _like(v, x, fn, name, "input", (n,))


def _running(v, x, fn, name, n):
    """A running statistic, updated in place by the kernel: never converted (a copy would swallow the update)."""
    if v is None:
        return None
    if not isinstance(v, cp.ndarray) or v.dtype != x.dtype or v.shape != (n,) or not v.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be a C-contiguous CUDA array of shape ({n},) and the input's dtype")
    return v


@_scalars(training="bool", momentum="float", eps="float")
def batch_norm_forward(input, weight, bias, running_mean, running_var, training, momentum, eps):
    fn = "batch_norm_forward"
    x = _float(input, fn, "input")
    if x.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C) or (N, C, ...), got shape {x.shape}")
    if not eps > 0:
        raise ValueError(f"{fn}: eps must be > 0")
    n, c, sp = x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))
    w, b = _chan(weight, x, fn, "weight", c), _chan(bias, x, fn, "bias", c)
    rm, rv = _running(running_mean, x, fn, "running_mean", c), _running(running_var, x, fn, "running_var", c)
    if training and n * sp < 2 and c > 0:
        raise ValueError(f"{fn}: expected more than 1 value per channel when training, got input of shape {x.shape}")
    if not training and (rm is None or rv is None):
        raise ValueError(f"{fn}: evaluation needs running_mean and running_var")
    y, mean, rstd = cp.empty_like(x), cp.empty(c, x.dtype), cp.empty(c, x.dtype)
    K.batch_norm_forward(_code(x), _ptr(x), _ptr(w), _ptr(b), _ptr(rm), _ptr(rv), _ptr(y), _ptr(mean), _ptr(rstd), n, c,
                         sp, bool(training), float(momentum), float(eps), _stream())
    return y, mean, rstd


@_scalars(training="bool", need_input="bool", need_weight="bool", need_bias="bool")
def batch_norm_backward(gy, input, weight, mean, rstd, training, need_input=True, need_weight=True, need_bias=True):
    fn = "batch_norm_backward"
    x = _float(input, fn, "input")
    if x.ndim < 2:
        raise ValueError(f"{fn}: input must be (N, C) or (N, C, ...), got shape {x.shape}")
    g = _like(gy, x, fn, "gy", "input")
    n, c, sp = x.shape[0], x.shape[1], int(np.prod(x.shape[2:], dtype=np.int64))
    if mean is None or rstd is None:
        raise TypeError(f"{fn}: mean and rstd must be arrays, got None")
    w, m, r = _chan(weight, x, fn, "weight", c), _chan(mean, x, fn, "mean", c), _chan(rstd, x, fn, "rstd", c)
    gx = cp.empty_like(x) if need_input else None
    gw = cp.empty(c, x.dtype) if need_weight else None
    gb = cp.empty(c, x.dtype) if need_bias else None
    K.batch_norm_backward(_code(x), _ptr(g), _ptr(x), _ptr(w), _ptr(m), _ptr(r), _ptr(gx), _ptr(gw), _ptr(gb), n, c, sp,
                          bool(training), _stream())
    return gx, gw, gb


def _ln_rows(x, normalized_shape, fn):
    _ln_axes(x, tuple(normalized_shape), fn)
    d = int(np.prod(normalized_shape, dtype=np.int64))
    return x.size // max(d, 1), d


@_scalars(normalized_shape="ints", eps="float")
def layer_norm_forward(input, normalized_shape, weight, bias, eps):
    fn = "layer_norm_forward"
    x = _float(input, fn, "input")
    rows, d = _ln_rows(x, normalized_shape, fn)
    if not eps > 0:
        raise ValueError(f"{fn}: eps must be > 0")
    w = None if weight is None else _like(cp.reshape(weight, (-1,)), x, fn, "weight", "input", (d,))
    b = None if bias is None else _like(cp.reshape(bias, (-1,)), x, fn, "bias", "input", (d,))
    y, mean, rstd = cp.empty_like(x), cp.empty(rows, x.dtype), cp.empty(rows, x.dtype)
    K.layer_norm_forward(_code(x), _ptr(x), _ptr(w), _ptr(b), _ptr(y), _ptr(mean), _ptr(rstd), rows, d, float(eps),
                         _stream())
    return y, mean, rstd


@_scalars(normalized_shape="ints", need_input="bool", need_weight="bool", need_bias="bool")
def layer_norm_backward(gy, input, normalized_shape, weight, mean, rstd, need_input=True, need_weight=True,
                        need_bias=True):
    fn = "layer_norm_backward"
    x = _float(input, fn, "input")
    g = _like(gy, x, fn, "gy", "input")
    rows, d = _ln_rows(x, normalized_shape, fn)
    if mean is None or rstd is None:
        raise TypeError(f"{fn}: mean and rstd must be arrays, got None")
    m = _like(cp.reshape(mean, (-1,)), x, fn, "mean", "input", (rows,))
    r = _like(cp.reshape(rstd, (-1,)), x, fn, "rstd", "input", (rows,))
    w = None if weight is None else _like(cp.reshape(weight, (-1,)), x, fn, "weight", "input", (d,))
    gx = cp.empty_like(x) if need_input else None
    gw = cp.empty(tuple(normalized_shape), x.dtype) if need_weight else None
    gb = cp.empty(tuple(normalized_shape), x.dtype) if need_bias else None
    K.layer_norm_backward(_code(x), _ptr(g), _ptr(x), _ptr(w), _ptr(m), _ptr(r), _ptr(gx), _ptr(gw), _ptr(gb), rows, d,
                          _stream())
    return gx, gw, gb


# Group norm: each sample's group of channels is one row of the layer-norm kernels (no affine there),
# the per-channel scale and shift and the weight gradients by CuPy's broadcasting and sums.
def _gn_channel(v, x, c, fn, name):
    if v is None:
        return None
    v = cp.asarray(v)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"{fn}: {name} must be convertible to {x.dtype}, got dtype {v.dtype}")
    if v.size != c:
        raise ValueError(f"{fn}: {name} must have one entry per channel, got {v.shape}")
    return v.astype(x.dtype, copy=False).reshape((1, c) + (1,) * (x.ndim - 2))


@_scalars(num_groups="int", eps="float")
def group_norm_forward(input, num_groups, weight, bias, eps):
    fn = "group_norm_forward"
    x = _float(input, fn, "input")
    n, c, g, (_, _, d) = _gn_dims(x, num_groups, fn)
    rows = n * g
    if not eps > 0:
        raise ValueError(f"{fn}: eps must be > 0")
    w, b = _gn_channel(weight, x, c, fn, "weight"), _gn_channel(bias, x, c, fn, "bias")
    y, mean, rstd = cp.empty_like(x), cp.zeros(rows, x.dtype), cp.empty(rows, x.dtype)
    if d:
        K.layer_norm_forward(_code(x), _ptr(x), 0, 0, _ptr(y), _ptr(mean), _ptr(rstd), rows, d, float(eps), _stream())
    else:  # empty groups: mean 0, variance 0, as the CPU kernel
        rstd[...] = 1 / math.sqrt(eps)
    if w is not None:
        y *= w
    if b is not None:
        y += b
    return y, mean, rstd


@_scalars(num_groups="int", need_input="bool", need_weight="bool", need_bias="bool")
def group_norm_backward(gy, input, num_groups, weight, mean, rstd, need_input=True, need_weight=True, need_bias=True):
    fn = "group_norm_backward"
    x = _float(input, fn, "input")
    gy = _like(gy, x, fn, "gy", "input")
    n, c, g, (_, _, d) = _gn_dims(x, num_groups, fn)
    rows = n * g
    if mean is None or rstd is None:
        raise TypeError(f"{fn}: mean and rstd must be arrays, got None")
    m, r = cp.asarray(mean).reshape(-1), cp.asarray(rstd).reshape(-1)
    if m.size != rows or r.size != rows:
        raise ValueError(f"{fn}: mean and rstd must have one entry per sample and group ({rows})")
    m, r = _contiguous(m.astype(x.dtype, copy=False)), _contiguous(r.astype(x.dtype, copy=False))
    w = _gn_channel(weight, x, c, fn, "weight")
    gx = None
    if need_input:
        gx = cp.zeros_like(x)
        if d:
            gg = gy if w is None else _contiguous(gy * w)
            K.layer_norm_backward(_code(x), _ptr(gg), _ptr(x), 0, _ptr(m), _ptr(r), _ptr(gx), 0, 0, rows, d, _stream())
    axes = (0,) + tuple(range(2, x.ndim))
    gw = gb = None
    if need_weight:
        xhat = ((x.reshape(rows, -1) - m[:, None]) * r[:, None]).reshape(x.shape)
        gw = (gy * xhat).sum(axis=axes).astype(x.dtype)
    if need_bias:
        gb = gy.sum(axis=axes).astype(x.dtype)
    return gx, gw, gb


# ---------------------------------------------------------------- recurrent layers (cuBLAS for the products, fused cells)
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def _rnn_args(fn, mode, x, hx, cx, w_ih, w_hh, b_ih, b_hh, lengths):
    if mode not in _GATES:
        raise ValueError(f"{fn}: mode must be 'rnn_tanh', 'rnn_relu', 'gru' or 'lstm', got '{mode}'")
    g = _GATES[mode]
    x = _float_nd(x, 3, fn, "input")
    t, b, i = x.shape
    w_hh = _float_nd(w_hh, 2, fn, "weight_hh")
    h = w_hh.shape[1]
    w_hh = _like(w_hh, x, fn, "weight_hh", "input", (g * h, h))
    w_ih = _like(w_ih, x, fn, "weight_ih", "input", (g * h, i))
    hx = _like(hx, x, fn, "hx", "input", (b, h))
    if mode == "lstm":
        if cx is None:
            raise TypeError(f"{fn}: an LSTM needs the initial cell state cx")
        cx = _like(cx, x, fn, "cx", "input", (b, h))
    else:
        cx = None
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{fn}: give both bias_ih and bias_hh, or neither")
    if b_ih is not None:
        b_ih = _like(b_ih, x, fn, "bias_ih", "input", (g * h,))
        b_hh = _like(b_hh, x, fn, "bias_hh", "input", (g * h,))
    ln = None
    if lengths is not None:
        ln = _contiguous(cp.asarray(lengths))
        if ln.dtype.kind not in "iu":
            raise TypeError(f"{fn}: lengths must hold integers, got {ln.dtype}")
        ln = ln.astype(cp.int64, copy=False)
        if ln.shape != (b,):
            raise ValueError(f"{fn}: lengths has shape {ln.shape}, expected ({b},)")
        bad = (ln < 1) | (ln > t)
        if bool(bad.any()):
            k = int(cp.argmax(bad))
            raise ValueError(f"{fn}: lengths[{k}] = {int(ln[k])} is not in [1, {t}]")
    return x, hx, cx, w_ih, w_hh, b_ih, b_hh, ln, t, b, h, g


def rnn_forward(mode, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, lengths, reverse, save=True):
    """One layer over the sequence: the input path of every step as one GEMM, then per step the
    recurrent GEMM (cuBLAS) and the mode's fused cell."""
    fn = "rnn_forward"
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, T, B, H, G = _rnn_args(fn, mode, input, hx, cx, weight_ih, weight_hh,
                                                                  bias_ih, bias_hh, lengths)
    gru = mode == "gru"
    xw = (x.reshape(T * B, -1) @ w_ih.T).reshape(T, B, G * H)  # the input path of every step, one GEMM
    if b_ih is not None:
        xw += b_ih if gru else b_ih + b_hh  # the GRU's b_hh stays with the hidden path (the cell adds it)
    h = cp.array(h0, copy=True)
    c = cp.array(c0, copy=True) if mode == "lstm" else None
    out = cp.empty((T, B, H), x.dtype)
    gates = cp.empty((T, B, G * H), x.dtype) if save else None
    cells = cp.empty((T, B, H), x.dtype) if save and mode == "lstm" else None
    hnl = cp.empty((T, B, H), x.dtype) if save and gru else None
    hw = cp.empty((B, G * H), x.dtype)
    at = lambda a, t: None if a is None else a[t]  # noqa: E731
    for s in range(T):
        t = T - 1 - s if reverse else s
        cp.matmul(h, w_hh.T, out=hw)
        if mode == "lstm":
            K.lstm_cell_forward(_code(x), _ptr(xw[t]), _ptr(hw), _ptr(c), _ptr(h), _ptr(out[t]), _ptr(at(gates, t)),
                                _ptr(at(cells, t)), _ptr(ln), t, B, H, _stream())
        elif gru:
            K.gru_cell_forward(_code(x), _ptr(xw[t]), _ptr(hw), _ptr(b_hh), _ptr(h), _ptr(out[t]), _ptr(at(gates, t)),
                               _ptr(at(hnl, t)), _ptr(ln), t, B, H, _stream())
        else:
            K.rnn_cell_forward(_ACT[mode[4:]], _code(x), _ptr(xw[t]), _ptr(hw), _ptr(h), _ptr(out[t]),
                               _ptr(at(gates, t)), _ptr(ln), t, B, H, _stream())
    return out, h, c, gates, cells, hnl


def rnn_backward(mode, dout, dhn, dcn, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, output, gates, cells,
                 hn_linear, lengths, reverse, need_input=True, need_hidden=True, need_weights=True):
    """Backpropagation through time: per step (last first) the fused cell's backward and one GEMM for
    dL/dh_{t-1}; the weight gradients of all steps at once."""
    fn = "rnn_backward"
    x, h0, c0, w_ih, w_hh, b_ih, b_hh, ln, T, B, H, G = _rnn_args(fn, mode, input, hx, cx, weight_ih, weight_hh,
                                                                  bias_ih, bias_hh, lengths)
    lstm, gru = mode == "lstm", mode == "gru"

    def saved(v, name, shape):
        if v is None:
            raise TypeError(f"{fn}: {name} must be an array, got None")
        return _like(v, x, fn, name, "input", shape)
    out = saved(output, "output", (T, B, H))
    gates = saved(gates, "gates", (T, B, G * H))
    cells = saved(cells, "cells", (T, B, H)) if lstm else None
    hnl = saved(hn_linear, "hn_linear", (T, B, H)) if gru else None
    dout = None if dout is None else _like(dout, x, fn, "dout", "input", (T, B, H))
    order = [T - 1 - s for s in range(T)] if reverse else list(range(T))
    hprev, cur = cp.empty((T, B, H), x.dtype), cp.array(h0, copy=True)
    for t in order:  # the state before each step: the last valid output, or h0
        hprev[t] = cur
        cur = out[t] if ln is None else cp.where((t < ln)[:, None], out[t], cur)
    dh = cp.zeros((B, H), x.dtype) if dhn is None else cp.array(_like(dhn, x, fn, "dhn", "input", (B, H)), copy=True)
    dc = None
    if lstm:
        dc = cp.zeros((B, H), x.dtype) if dcn is None else cp.array(_like(dcn, x, fn, "dcn", "input", (B, H)), copy=True)
    dxw = cp.empty((T, B, G * H), x.dtype)
    dhw = cp.empty((T, B, G * H), x.dtype) if gru else dxw  # the same but for the GRU's n gate
    direct = cp.empty((B, H), x.dtype)
    for k in range(T - 1, -1, -1):
        t = order[k]
        go = _ptr(None if dout is None else dout[t])
        if lstm:
            cprev = c0 if k == 0 else cells[order[k - 1]]
            K.lstm_cell_backward(_code(x), _ptr(gates[t]), _ptr(cells[t]), _ptr(cprev), go, _ptr(dh), _ptr(dc),
                                 _ptr(dxw[t]), _ptr(direct), _ptr(ln), t, B, H, _stream())
        elif gru:
            K.gru_cell_backward(_code(x), _ptr(gates[t]), _ptr(hnl[t]), _ptr(hprev[t]), go, _ptr(dh), _ptr(dxw[t]),
                                _ptr(dhw[t]), _ptr(direct), _ptr(ln), t, B, H, _stream())
        else:
            K.rnn_cell_backward(_ACT[mode[4:]], _code(x), _ptr(out[t]), go, _ptr(dh), _ptr(dxw[t]), _ptr(direct),
                                _ptr(ln), t, B, H, _stream())
        dh = direct + dhw[t] @ w_hh
    fx, fh = dxw.reshape(T * B, G * H), dhw.reshape(T * B, G * H)
    dx = (fx @ w_ih).reshape(x.shape) if need_input else None
    dw_ih = fx.T @ x.reshape(T * B, -1) if need_weights else None
    dw_hh = fh.T @ hprev.reshape(T * B, H) if need_weights else None
    db_ih = fx.sum(axis=0) if need_weights and b_ih is not None else None
    db_hh = None if db_ih is None else (fh.sum(axis=0) if gru else db_ih.copy())
    return dx, dh if need_hidden else None, dc if need_hidden and lstm else None, dw_ih, dw_hh, db_ih, db_hh


def rnn_forward_dirs(mode, input, directions, lengths, save=True):
    """Both directions of a layer, one after the other on the stream (the CPU kernel's threads have no
    counterpart here)."""
    _directions_check(directions)
    return [rnn_forward(mode, input, *d[:6], lengths, d[6], save) for d in directions]


# ---------------------------------------------------------------- scaled dot-product attention
def _attention_args(fn, q, k, v, mask, mask_div, scale, dropout_p):
    """reference._sdpa_args for CUDA arrays: (q, k, v, mask, scale, mb, ml)."""
    q, k, v = _float_nd(q, 3, fn, "q"), _float_nd(k, 3, fn, "k"), _float_nd(v, 3, fn, "v")
    B, L, E = q.shape
    S, Ev = k.shape[1], v.shape[2]
    k = _like(k, q, fn, "k", "q", (B, S, E))
    v = _like(v, q, fn, "v", "q", (B, S, Ev))
    mb = ml = 1
    if mask is not None:
        mask = _float(mask, fn, "mask")
        if mask.dtype != q.dtype:
            raise TypeError(f"{fn}: mask must be an additive mask of q's dtype {q.dtype}, got {mask.dtype}")
        if mask.ndim != 3 or mask.shape[2] != S or mask.shape[1] not in (1, L) or (mask.shape[0] < 1 and B > 0):
            raise ValueError(f"{fn}: mask must have shape (mb >= 1, 1 or L={L}, S={S}), got {tuple(mask.shape)}")
        mb, ml = mask.shape[:2]
        if mask_div < 1:
            raise ValueError(f"{fn}: mask_div must be >= 1, got {mask_div}")
    if scale is None:
        scale = 1.0 / math.sqrt(E) if E > 0 else 1.0
    elif not math.isfinite(float(scale)):
        raise ValueError(f"{fn}: scale must be finite, got {scale}")
    if not 0.0 <= dropout_p < 1.0:
        raise ValueError(f"{fn}: dropout_p must be in [0, 1), got {dropout_p}")
    _scale_in_range(float(scale), np.dtype(q.dtype), fn)
    return q, k, v, mask, float(scale), max(mb, 1), ml


@_scalars(mask_div="int", is_causal="bool", dropout_p="float", seed="int")
def attention_forward(q, k, v, mask=None, mask_div=1, is_causal=False, scale=None, dropout_p=0.0, seed=0):
    fn = "attention_forward"
    q, k, v, mask, scale, mb, ml = _attention_args(fn, q, k, v, mask, mask_div, scale, dropout_p)
    _seed(seed, fn)
    B, L, E = q.shape
    S, Ev = k.shape[1], v.shape[2]
    out, lse = cp.empty((B, L, Ev), q.dtype), cp.empty((B, L), q.dtype)
    K.attention_forward(_code(q), _ptr(q), _ptr(k), _ptr(v), _ptr(mask), mb, ml, mask_div, _ptr(out), _ptr(lse), B, L,
                        S, E, Ev, is_causal, scale, dropout_p, seed, _stream())
    return out, lse


@_scalars(mask_div="int", is_causal="bool", dropout_p="float", seed="int")
def attention_backward(gout, q, k, v, out, lse, mask=None, mask_div=1, is_causal=False, scale=None, dropout_p=0.0,
                       seed=0):
    fn = "attention_backward"
    q, k, v, mask, scale, mb, ml = _attention_args(fn, q, k, v, mask, mask_div, scale, dropout_p)
    _seed(seed, fn)
    B, L, E = q.shape
    S, Ev = k.shape[1], v.shape[2]
    gout = _like(gout, q, fn, "gout", "q", (B, L, Ev))
    out = _like(out, q, fn, "out", "q", (B, L, Ev))
    lse = _like(lse, q, fn, "lse", "q", (B, L))
    gq, gk, gv = cp.empty_like(q), cp.empty_like(k), cp.empty_like(v)
    D = cp.empty((B, L), q.dtype)
    K.attention_backward(_code(q), _ptr(gout), _ptr(q), _ptr(k), _ptr(v), _ptr(out), _ptr(lse), _ptr(mask), mb, ml,
                         mask_div, _ptr(D), _ptr(gq), _ptr(gk), _ptr(gv), B, L, S, E, Ev, is_causal, scale, dropout_p,
                         seed, _stream())
    return gq, gk, gv


def _additive_args(qp, kp, v, fn):
    qp = _float_nd(qp, 3, fn, "qp")
    B, L, H = qp.shape
    kp = _float_nd(kp, 3, fn, "kp")
    kp = _like(kp, qp, fn, "kp", "qp", (B, kp.shape[1], H))
    return qp, kp, _like(v, qp, fn, "v", "qp", (H,)), B, L, kp.shape[1], H


def additive_attention_forward(qp, kp, v):
    qp, kp, v, B, L, S, H = _additive_args(qp, kp, v, "additive_attention_forward")
    s = cp.empty((B, L, S), qp.dtype)
    K.additive_attention_forward(_code(qp), _ptr(qp), _ptr(kp), _ptr(v), _ptr(s), B, L, S, H, _stream())
    return s


@_scalars(need_qp="bool", need_kp="bool", need_v="bool")
def additive_attention_backward(gs, qp, kp, v, need_qp=True, need_kp=True, need_v=True):
    fn = "additive_attention_backward"
    qp, kp, v, B, L, S, H = _additive_args(qp, kp, v, fn)
    gs = _like(gs, qp, fn, "gs", "qp", (B, L, S))
    gq = cp.empty_like(qp) if need_qp else None
    gk = cp.empty_like(kp) if need_kp else None
    vpart = cp.empty_like(qp) if need_v else None
    K.additive_attention_backward(_code(qp), _ptr(gs), _ptr(qp), _ptr(kp), _ptr(v), _ptr(gq), _ptr(vpart), _ptr(gk),
                                  B, L, S, H, _stream())
    return gq, gk, None if vpart is None else vpart.sum(axis=(0, 1))


def _attention_on(ours, host, n_arrays):
    """Our kernel for heads it holds (E, Ev <= K.attention_max_features), the host kernel beyond; the
    first n_arrays arguments carry the head sizes last (q, k, v; gout, q, k, v)."""
    def run(*args, **kw):
        if any(getattr(a, "ndim", 0) == 3 and a.shape[2] > K.attention_max_features for a in args[:n_arrays]):
            return host(*args, **kw)
        return ours(*args, **kw)
    return run


# ---------------------------------------------------------------- GEMMs (cuBLAS through CuPy)
def matmul(a, b):
    a, b = _float(a, "matmul", "a"), _float(b, "matmul", "b")
    return cp.matmul(a, b)


def matmul_backward(gy, a, b, need_a=True, need_b=True):
    ga = gb = None
    if need_a:
        ga = cp.matmul(gy, cp.swapaxes(b, -1, -2))
        if ga.shape != a.shape:
            ga = ga.sum(axis=0).reshape(a.shape)
    if need_b:
        gb = cp.matmul(cp.swapaxes(a, -1, -2), gy)
        if gb.shape != b.shape:
            gb = gb.sum(axis=0).reshape(b.shape)
    return ga, gb


def linear_forward(x, weight, bias=None):
    fn = "linear_forward"
    x, w = _float(x, fn, "x"), _float(weight, fn, "weight")
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[1] or x.dtype != w.dtype:
        raise ValueError(f"{fn}: x {x.shape} {x.dtype} and weight {w.shape} {w.dtype} do not fit (N, in) x (out, in)")
    y = x @ w.T
    return y if bias is None else y + bias


def linear_backward(gy, x, weight, need_x=True, need_weight=True, need_bias=True):
    return (gy @ weight if need_x else None, gy.T @ x if need_weight else None,
            gy.sum(axis=0) if need_bias else None)


def _from_numpy(h, index=None):
    with cp.cuda.Device(index or 0):
        return cp.asarray(h)


def table() -> SimpleNamespace:
    """The CUDA kernel table: every op of ``reference.OPS`` on the device (the host table underneath is
    only reached by attention heads too wide for our kernel)."""
    base = backend._C if backend._C is not None else reference
    t = backend.host_table(base, cp.asnumpy, _from_numpy)
    for kind in _ACT:
        setattr(t, f"{kind}_forward", _act_forward(kind))
        setattr(t, f"{kind}_backward", _act_backward(kind))
    t.softmax_forward, t.softmax_backward = _softmax_forward(0), _softmax_backward(0)
    t.log_softmax_forward, t.log_softmax_backward = _softmax_forward(1), _softmax_backward(1)
    t.rnn_forward, t.rnn_backward, t.rnn_forward_dirs = rnn_forward, rnn_backward, rnn_forward_dirs
    t.attention_forward = _attention_on(attention_forward, t.attention_forward, 3)
    t.attention_backward = _attention_on(attention_backward, t.attention_backward, 4)
    for f in (dropout_mask, dropout_apply, activation_forward, activation_backward, masked_softmax_forward,
              masked_softmax_backward, cross_entropy_forward, cross_entropy_backward, mse_forward, mse_backward,
              bce_with_logits_forward, bce_with_logits_backward, sgd_step, adam_step,
              rmsprop_step, adaptive_step, embedding_forward, embedding_backward, matmul, matmul_backward,
              linear_forward, linear_backward, conv2d_forward, conv2d_backward, max_pool2d_forward,
              max_pool2d_backward, avg_pool2d_forward, avg_pool2d_backward, adaptive_avg_pool2d_forward,
              adaptive_avg_pool2d_backward, batch_norm_forward, batch_norm_backward, layer_norm_forward,
              layer_norm_backward, group_norm_forward, group_norm_backward, additive_attention_forward,
              additive_attention_backward):
        setattr(t, f.__name__, f)
    return t


def array_backend() -> backend.ArrayBackend:
    return backend.ArrayBackend("cuda", cp, table(), _from_numpy, cp.asnumpy, index_of=lambda a: a.device.id,
                                array_type=cp.ndarray)

