"""NumPy reference of every native kernel: the readable maths, and the oracle.

Each function has the name, signature and result of its twin in the native
module ``fastdl._C``, so ``fastdl.set_backend("reference")`` can swap one for
the other.  Shapes are in the docstrings; nothing here is tuned for speed.
"""
from __future__ import annotations

import numpy as np

_F = (np.float32, np.float64)


def _float(x, fn: str, name: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.type not in _F:
        raise TypeError(f"{fn}: {name} must be float32 or float64, got {x.dtype}")
    return x


def _same(a, an, b, bn, fn, shape=True):
    if a.dtype != b.dtype:
        raise TypeError(f"{fn}: {bn} has dtype {b.dtype} but {an} has {a.dtype}")
    if shape and a.shape != b.shape:
        raise ValueError(f"{fn}: {bn} has shape {b.shape} but {an} has shape {a.shape}")


# ----------------------------------------------------------------- gemm
def _mm_check(a, b, fn):
    if a.ndim not in (2, 3) or b.ndim not in (2, 3):
        raise ValueError(f"{fn}: a and b must have 2 or 3 dimensions, got {a.shape} and {b.shape}")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"{fn}: a has shape {a.shape} and b has shape {b.shape}: inner dimensions differ")
    ba = a.shape[0] if a.ndim == 3 else 1
    bb = b.shape[0] if b.ndim == 3 else 1
    if ba != bb and 1 not in (ba, bb):
        raise ValueError(f"{fn}: batch sizes of a {a.shape} and b {b.shape} do not broadcast")


def matmul(a, b):
    """a (M, K) | (B, M, K), b (K, N) | (B, K, N) -> y (M, N) | (B, M, N)."""
    a = _float(a, "matmul", "a")
    b = np.asarray(b)
    _same(a, "a", b, "b", "matmul", shape=False)
    _mm_check(a, b, "matmul")
    return np.matmul(a, b)


def matmul_backward(gy, a, b, need_a=True, need_b=True):
    """gy like y -> (ga = gy b^T, gb = a^T gy), summed over a broadcast batch."""
    a = _float(a, "matmul_backward", "a")
    b, gy = np.asarray(b), np.asarray(gy)
    _mm_check(a, b, "matmul_backward")
    ga = gb = None
    if need_a:
        ga = np.matmul(gy, np.swapaxes(b, -1, -2))
        if ga.shape != a.shape:
            ga = ga.sum(axis=0).reshape(a.shape)
    if need_b:
        gb = np.matmul(np.swapaxes(a, -1, -2), gy)
        if gb.shape != b.shape:
            gb = gb.sum(axis=0).reshape(b.shape)
    return ga, gb


def linear_forward(x, weight, bias=None):
    """x (N, in), weight (out, in), bias (out,) -> y (N, out) = x weight^T + bias."""
    x = _float(x, "linear_forward", "x")
    weight = np.asarray(weight)
    if x.ndim != 2 or weight.ndim != 2 or x.shape[1] != weight.shape[1]:
        raise ValueError(f"linear_forward: x has shape {x.shape} but weight has shape {weight.shape}")
    y = x @ weight.T
    if bias is not None:
        y = y + bias
    return y


def linear_backward(gy, x, weight, need_x=True, need_weight=True, need_bias=True):
    """gy (N, out) -> gx = gy weight (N, in), gweight = gy^T x (out, in), gbias = sum_n gy (out,)."""
    gy, x, weight = np.asarray(gy), np.asarray(x), np.asarray(weight)
    return (gy @ weight if need_x else None,
            gy.T @ x if need_weight else None,
            gy.sum(axis=0) if need_bias else None)


# ----------------------------------------------------------------- elementwise
def relu_forward(x):
    """y = max(x, 0); NaN stays NaN."""
    x = _float(x, "relu_forward", "x")
    return np.where(x < 0, np.zeros((), x.dtype), x)


def relu_backward(gy, y):
    """gx = gy where y > 0, else 0."""
    return np.where(np.asarray(y) > 0, gy, np.zeros((), np.asarray(y).dtype)).astype(np.asarray(y).dtype)


def tanh_forward(x):
    """y = tanh(x)."""
    return np.tanh(_float(x, "tanh_forward", "x"))


def tanh_backward(gy, y):
    """gx = gy (1 - y^2)."""
    y = np.asarray(y)
    return (gy * (1 - y * y)).astype(y.dtype)


def sigmoid_forward(x):
    """y = 1 / (1 + exp(-x)), computed without overflow."""
    x = _float(x, "sigmoid_forward", "x")
    with np.errstate(over="ignore"):
        return (1 / (1 + np.exp(-x))).astype(x.dtype)


def sigmoid_backward(gy, y):
    """gx = gy y (1 - y)."""
    y = np.asarray(y)
    return (gy * y * (1 - y)).astype(y.dtype)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def dropout_mask(shape, p, seed):
    """Keep-mask (uint8) of inverted dropout: u_i >= p with u_i = splitmix64(seed + (i+1) golden) / 2^64.

    Counter-based, so it is the same for any thread count and for both backends.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout_mask: p must be in [0, 1], got {p}")
    shape = tuple(int(s) for s in shape)
    if any(s < 0 for s in shape):
        raise ValueError("dropout_mask: shape has a negative size")
    n = int(np.prod(shape, dtype=np.int64))
    i = np.arange(1, n + 1, dtype=np.uint64)
    h = _splitmix64(np.uint64(seed) + i * _GOLDEN)
    u = (h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0)
    return (u >= p).astype(np.uint8).reshape(shape)


def dropout_apply(x, mask, scale):
    """y = x * mask * scale (inverted dropout; also its backward)."""
    x = _float(x, "dropout_apply", "x")
    mask = np.asarray(mask)
    if mask.shape != x.shape:
        raise ValueError(f"dropout_apply: mask has shape {mask.shape} but x has shape {x.shape}")
    return (x * (mask.astype(bool) * x.dtype.type(scale))).astype(x.dtype)


# ----------------------------------------------------------------- softmax
def _axis_check(x, axis, fn):
    if x.ndim == 0:
        raise ValueError(f"{fn}: x must have at least 1 dimension")
    if not -x.ndim <= axis < x.ndim:
        raise IndexError(f"{fn}: axis {axis} is out of range for x of shape {x.shape}")


def softmax_forward(x, axis=-1):
    """y = exp(x - max) / sum(exp(x - max)) along `axis`."""
    x = _float(x, "softmax_forward", "x")
    _axis_check(x, axis, "softmax_forward")
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isneginf(m), 0, m)
        e = np.exp(x - m)
        return (e / e.sum(axis=axis, keepdims=True)).astype(x.dtype)


def softmax_backward(gy, y, axis=-1):
    """gx = y (gy - sum(gy y))."""
    y = np.asarray(y)
    return (y * (gy - np.sum(gy * y, axis=axis, keepdims=True))).astype(y.dtype)


def log_softmax_forward(x, axis=-1):
    """y = x - logsumexp(x) along `axis`."""
    x = _float(x, "log_softmax_forward", "x")
    _axis_check(x, axis, "log_softmax_forward")
    with np.errstate(invalid="ignore", divide="ignore"):
        m = np.max(x, axis=axis, keepdims=True)
        m = np.where(np.isneginf(m), 0, m)
        return (x - m - np.log(np.exp(x - m).sum(axis=axis, keepdims=True))).astype(x.dtype)


def log_softmax_backward(gy, y, axis=-1):
    """gx = gy - exp(y) sum(gy)."""
    y = np.asarray(y)
    return (gy - np.exp(y) * np.sum(gy, axis=axis, keepdims=True)).astype(y.dtype)


# ----------------------------------------------------------------- losses
def _targets(target, n, c, ignore_index, fn):
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(f"{fn}: target must hold integer class indices, got {t.dtype}")
    if t.shape != (n,):
        raise ValueError(f"{fn}: target has shape {t.shape}, expected ({n},)")
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        i = int(np.argmax(bad))
        raise IndexError(f"{fn}: target[{i}] = {t[i]} is not a class index in [0, {c})")
    return t.astype(np.int64)


def cross_entropy_forward(logits, target, ignore_index=-100, label_smoothing=0.0):
    """logits (N, C), target (N,) -> (loss (N,), lse (N,)).

    loss_n = (1 - eps) (lse_n - x[n, t_n]) + eps (lse_n - mean_c x[n, c]), 0 where t_n == ignore_index.
    """
    x = _float(logits, "cross_entropy_forward", "logits")
    if x.ndim != 2:
        raise ValueError(f"cross_entropy_forward: logits must have 2 dimensions, got shape {x.shape}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"cross_entropy_forward: label_smoothing must be in [0, 1], got {label_smoothing}")
    n, c = x.shape
    t = _targets(target, n, c, ignore_index, "cross_entropy_forward")
    keep = t != ignore_index
    with np.errstate(invalid="ignore"):
        m = x.max(axis=1)
        lse = m + np.log(np.exp(x - m[:, None]).sum(axis=1))
    picked = x[np.arange(n), np.where(keep, t, 0)]
    nll = lse - picked
    eps = label_smoothing
    loss = nll if eps == 0 else (1 - eps) * nll + eps * (lse - x.mean(axis=1))
    return np.where(keep, loss, 0).astype(x.dtype), lse.astype(x.dtype)


def cross_entropy_backward(gloss, logits, target, lse, ignore_index=-100, label_smoothing=0.0):
    """gloss (N,) -> glogits (N, C) = gloss_n (softmax - (1 - eps) onehot(t_n) - eps / C)."""
    x = _float(logits, "cross_entropy_backward", "logits")
    n, c = x.shape
    t = _targets(target, n, c, ignore_index, "cross_entropy_backward")
    keep = t != ignore_index
    p = np.exp(x - np.asarray(lse)[:, None])
    onehot = np.zeros_like(x)
    onehot[np.arange(n)[keep], t[keep]] = 1
    eps = label_smoothing
    g = np.asarray(gloss)[:, None] * (p - (1 - eps) * onehot - eps / c)
    return np.where(keep[:, None], g, 0).astype(x.dtype)


def _mask(mask, x, fn):
    if mask is None:
        return np.ones(x.shape, bool)
    m = np.asarray(mask)
    if m.dtype.kind not in "biu":
        raise TypeError(f"{fn}: mask must be bool or integer, got {m.dtype}")
    if m.shape != x.shape:
        raise ValueError(f"{fn}: mask has shape {m.shape} but x has shape {x.shape}")
    return m.astype(bool)


def bce_with_logits_forward(logits, target, mask=None):
    """Element-wise max(x, 0) - x t + log(1 + exp(-|x|)); 0 where mask is 0 (a missing label)."""
    x = _float(logits, "bce_with_logits_forward", "logits")
    t = np.asarray(target)
    _same(x, "logits", t, "target", "bce_with_logits_forward")
    m = _mask(mask, x, "bce_with_logits_forward")
    loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
    return np.where(m, loss, 0).astype(x.dtype)


def bce_with_logits_backward(gloss, logits, target, mask=None):
    """gx = gloss (sigmoid(x) - t); 0 where mask is 0."""
    x = _float(logits, "bce_with_logits_backward", "logits")
    m = _mask(mask, x, "bce_with_logits_backward")
    g = np.asarray(gloss) * (sigmoid_forward(x) - target)
    return np.where(m, g, 0).astype(x.dtype)


def mse_forward(input, target):
    """sum_i (p_i - t_i)^2 as a Python float (accumulated in float64)."""
    p = _float(input, "mse_forward", "input")
    t = np.asarray(target)
    _same(p, "input", t, "target", "mse_forward")
    d = p.astype(np.float64) - t
    return float(np.sum(d * d))


def mse_backward(scale, input, target):
    """gp = scale * 2 (p - t)."""
    p = _float(input, "mse_backward", "input")
    return (p.dtype.type(scale) * 2 * (p - np.asarray(target))).astype(p.dtype)


# ----------------------------------------------------------------- optimizers (in place)
def _inplace(a, like, fn, name, optional=False):
    if a is None:
        if optional:
            return None
        raise TypeError(f"{fn}: {name} must be an array, got None")
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a NumPy array")
    if a.dtype != like.dtype:
        raise TypeError(f"{fn}: {name} has dtype {a.dtype}, expected {like.dtype}")
    if not a.flags.c_contiguous:
        raise ValueError(f"{fn}: {name} must be C-contiguous")
    if not a.flags.writeable:
        raise ValueError(f"{fn}: {name} is read-only")
    if a.size != like.size:
        raise ValueError(f"{fn}: {name} has {a.size} elements, the parameter has {like.size}")
    return a


def _lerp(a, b, w):
    """torch.lerp with a scalar weight."""
    return a + w * (b - a) if w < 0.5 else b - (b - a) * (1 - w)


def sgd_step(param, grad, momentum_buffer, lr, momentum, dampening, weight_decay, nesterov, maximize, first_step):
    """PyTorch's SGD, in place: g += wd p; buf = g (first step) or momentum buf + (1 - dampening) g;
    g = g + momentum buf (Nesterov) or buf; p -= lr g."""
    p = _inplace(_float(param, "sgd_step", "param"), param, "sgd_step", "param")
    buf = _inplace(momentum_buffer, p, "sgd_step", "momentum_buffer", optional=True)
    t = p.dtype.type
    g = -np.asarray(grad, p.dtype) if maximize else np.asarray(grad, p.dtype)
    if weight_decay != 0:
        g = g + t(weight_decay) * p
    if buf is not None:
        buf[...] = g if first_step else t(momentum) * buf + t(1 - dampening) * g
        g = g + t(momentum) * buf if nesterov else buf
    p -= t(lr) * g


def adam_step(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, lr, beta1, beta2, eps, weight_decay, decoupled,
              maximize, step):
    """PyTorch's Adam (AdamW when ``decoupled``), in place; ``step`` counts from 1.

    m = lerp(m, g, 1 - beta1); v = beta2 v + (1 - beta2) g^2; vmax = max(vmax, v) (amsgrad);
    p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps).
    """
    fn = "adam_step"
    p = _inplace(_float(param, fn, "param"), param, fn, "param")
    if step < 1:
        raise ValueError(f"adam_step: step must be >= 1, got {step}")
    if not (0 <= beta1 < 1 and 0 <= beta2 < 1):
        raise ValueError("adam_step: betas must be in [0, 1)")
    m = _inplace(exp_avg, p, fn, "exp_avg")
    v = _inplace(exp_avg_sq, p, fn, "exp_avg_sq")
    vmax = _inplace(max_exp_avg_sq, p, fn, "max_exp_avg_sq", optional=True)
    t = p.dtype.type
    g = -np.asarray(grad, p.dtype) if maximize else np.asarray(grad, p.dtype)
    if weight_decay != 0:
        if decoupled:
            p *= t(1 - lr * weight_decay)
        else:
            g = g + t(weight_decay) * p
    m[...] = _lerp(m, g, t(1 - beta1))
    v[...] = v * t(beta2) + t(1 - beta2) * g * g
    vv = v
    if vmax is not None:
        np.maximum(vmax, v, out=vmax)
        vv = vmax
    step_size = t(lr / (1 - beta1 ** step))
    denom = np.sqrt(vv) / t(np.sqrt(1 - beta2 ** step)) + t(eps)
    p += -step_size * (m / denom)


def rmsprop_step(param, grad, square_avg, grad_avg, momentum_buffer, lr, alpha, eps, weight_decay, momentum, maximize):
    """PyTorch's RMSprop, in place: s = alpha s + (1 - alpha) g^2; (centered) ga = lerp(ga, g, 1 - alpha),
    avg = sqrt(s - ga^2) + eps; buf = momentum buf + g / avg, p -= lr buf (or p -= lr g / avg)."""
    fn = "rmsprop_step"
    p = _inplace(_float(param, fn, "param"), param, fn, "param")
    sq = _inplace(square_avg, p, fn, "square_avg")
    ga = _inplace(grad_avg, p, fn, "grad_avg", optional=True)
    buf = _inplace(momentum_buffer, p, fn, "momentum_buffer", optional=True)
    t = p.dtype.type
    g = -np.asarray(grad, p.dtype) if maximize else np.asarray(grad, p.dtype)
    if weight_decay != 0:
        g = g + t(weight_decay) * p
    sq[...] = sq * t(alpha) + t(1 - alpha) * g * g
    if ga is not None:
        ga[...] = _lerp(ga, g, t(1 - alpha))
        avg = np.sqrt(sq - ga * ga)
    else:
        avg = np.sqrt(sq)
    avg = avg + t(eps)
    if buf is not None:
        buf[...] = buf * t(momentum) + g / avg
        p += -t(lr) * buf
    else:
        p += -t(lr) * (g / avg)


OPS = (
    "matmul", "matmul_backward", "linear_forward", "linear_backward",
    "relu_forward", "relu_backward", "tanh_forward", "tanh_backward",
    "sigmoid_forward", "sigmoid_backward", "dropout_mask", "dropout_apply",
    "softmax_forward", "softmax_backward", "log_softmax_forward", "log_softmax_backward",
    "cross_entropy_forward", "cross_entropy_backward",
    "bce_with_logits_forward", "bce_with_logits_backward", "mse_forward", "mse_backward",
    "sgd_step", "adam_step", "rmsprop_step",
)
"""The kernel table every backend provides."""
