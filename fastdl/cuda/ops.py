"""The kernel table of CUDA tensors (CuPy arrays): fastdl's CUDA kernels (``fastdl._C_cuda``) where they
exist, CuPy's cuBLAS for the GEMMs, and the native CPU kernels on host copies for the rest.

Each function has the signature and the checks of the CPU kernel of the same name (``reference.OPS``):
arrays must be CuPy arrays of the kernel's dtype and shape, and what a kernel cannot check on the GPU
without a fault (class and embedding indices in range) is checked here first.  Imported only by
:func:`fastdl.cuda._load`, when CuPy, a GPU and the kernels are all there.
"""
from __future__ import annotations

from types import SimpleNamespace

import cupy as cp

from .. import _C_cuda as K
from .. import backend, reference

_ACT = {"relu": 0, "tanh": 1, "sigmoid": 2}


def _stream() -> int:
    return cp.cuda.get_current_stream().ptr


def _float(a, fn: str, name: str):
    if not isinstance(a, cp.ndarray):
        raise TypeError(f"{fn}: {name} must be a CUDA array, got {type(a).__name__}")
    if a.dtype not in (cp.float32, cp.float64):
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {a.dtype}")
    return _contiguous(a)


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
    """The CUDA kernel table: our kernels, cuBLAS, and the CPU kernels on host copies for the rest."""
    base = backend._C if backend._C is not None else reference
    t = backend.host_table(base, cp.asnumpy, _from_numpy)
    for kind in _ACT:
        setattr(t, f"{kind}_forward", _act_forward(kind))
        setattr(t, f"{kind}_backward", _act_backward(kind))
    t.softmax_forward, t.softmax_backward = _softmax_forward(0), _softmax_backward(0)
    t.log_softmax_forward, t.log_softmax_backward = _softmax_forward(1), _softmax_backward(1)
    for f in (cross_entropy_forward, cross_entropy_backward, sgd_step, adam_step, embedding_forward,
              embedding_backward, matmul, matmul_backward, linear_forward, linear_backward):
        setattr(t, f.__name__, f)
    return t


def array_backend() -> backend.ArrayBackend:
    return backend.ArrayBackend("cuda", cp, table(), _from_numpy, cp.asnumpy, index_of=lambda a: a.device.id,
                                array_type=cp.ndarray)

