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


# ----------------------------------------------------------------- convolution (NCHW)
def _conv_geometry(x, w, stride, padding, dilation, groups, fn):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{fn}: input and weight must be 4-D, got {x.shape} and {w.shape}")
    n, c, h, wd = x.shape
    k, cg, kh, kw = w.shape
    (sh, sw), (pt, pl, pb, pr), (dh, dw) = stride, padding, dilation
    if groups < 1:
        raise ValueError(f"{fn}: groups must be >= 1, got {groups}")
    if sh < 1 or sw < 1:
        raise ValueError(f"{fn}: stride must be >= 1")
    if dh < 1 or dw < 1:
        raise ValueError(f"{fn}: dilation must be >= 1")
    if min(pt, pl, pb, pr) < 0:
        raise ValueError(f"{fn}: padding must be >= 0")
    if c % groups or k % groups:
        raise ValueError(f"{fn}: in_channels {c} and out_channels {k} must be divisible by groups {groups}")
    if cg * groups != c:
        raise ValueError(f"{fn}: weight {w.shape} expects {cg * groups} input channels, input {x.shape} has {c}")
    eh, ew = dh * (kh - 1) + 1, dw * (kw - 1) + 1
    if h + pt + pb < eh or wd + pl + pr < ew:
        raise ValueError(f"{fn}: kernel ({eh}, {ew}) with dilation is larger than the padded input "
                         f"({h + pt + pb}, {wd + pl + pr})")
    return (h + pt + pb - eh) // sh + 1, (wd + pl + pr - ew) // sw + 1


def _windows(xp, kh, kw, oh, ow, stride, dilation):
    """(N, C, kh, kw, OH, OW): the input value under kernel tap (i, j) for output (oh, ow)."""
    (sh, sw), (dh, dw) = stride, dilation
    return np.stack([np.stack([xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                               for j in range(kw)], axis=2) for i in range(kh)], axis=2)


def conv2d_forward(input, weight, bias, stride, padding, dilation, groups):
    """input (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,) -> (N, K, OH, OW).

    y[n, k, oh, ow] = bias[k] + sum_{c in k's group, i, j} w[k, c, i, j] x_pad[n, c, oh*sh + i*dh, ow*sw + j*dw]
    with x_pad the input zero-padded by (top, left, bottom, right) = padding.
    """
    x = _float(input, "conv2d_forward", "input")
    w = np.asarray(weight)
    _same(x, "input", w, "weight", "conv2d_forward", shape=False)
    oh, ow = _conv_geometry(x, w, stride, padding, dilation, groups, "conv2d_forward")
    pt, pl, pb, pr = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    cols = _windows(xp, w.shape[2], w.shape[3], oh, ow, stride, dilation)
    cg, kg = x.shape[1] // groups, w.shape[0] // groups
    y = np.concatenate([np.einsum("ncabhw,kcab->nkhw", cols[:, g * cg:(g + 1) * cg], w[g * kg:(g + 1) * kg],
                                  optimize=True) for g in range(groups)], axis=1)
    if bias is not None:
        y = y + np.asarray(bias)[None, :, None, None]
    return y.astype(x.dtype)


def conv2d_backward(gy, input, weight, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """gy (N, K, OH, OW) -> (gx, gw, gb): the adjoints of conv2d_forward's sums."""
    x, w, gy = np.asarray(input), np.asarray(weight), np.asarray(gy)
    oh, ow = _conv_geometry(x, w, stride, padding, dilation, groups, "conv2d_backward")
    (pt, pl, pb, pr), (sh, sw), (dh, dw) = padding, stride, dilation
    kh, kw = w.shape[2:]
    cg, kg = x.shape[1] // groups, w.shape[0] // groups
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    gx = gw = gb = None
    if need_weight:
        cols = _windows(xp, kh, kw, oh, ow, stride, dilation)
        gw = np.concatenate([np.einsum("nkhw,ncabhw->kcab", gy[:, g * kg:(g + 1) * kg], cols[:, g * cg:(g + 1) * cg],
                                       optimize=True) for g in range(groups)], axis=0).astype(x.dtype)
    if need_input:
        dcols = np.concatenate([np.einsum("nkhw,kcab->ncabhw", gy[:, g * kg:(g + 1) * kg], w[g * kg:(g + 1) * kg],
                                          optimize=True) for g in range(groups)], axis=1)
        gxp = np.zeros_like(xp)
        for i in range(kh):
            for j in range(kw):
                gxp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw] += dcols[:, :, i, j]
        gx = gxp[:, :, pt:pt + x.shape[2], pl:pl + x.shape[3]].astype(x.dtype)
    if need_bias:
        gb = gy.sum(axis=(0, 2, 3)).astype(x.dtype)
    return gx, gw, gb


# ----------------------------------------------------------------- pooling (NCHW or CHW)
def _pool_out(n, k, s, p, d, ceil, fn):
    num = n + 2 * p - d * (k - 1) - 1
    if num < 0:
        raise ValueError(f"{fn}: kernel is larger than the padded input")
    out = (num + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pool_check(x, kernel_size, stride, padding, dilation, ceil_mode, fn):
    if x.ndim not in (3, 4):
        raise ValueError(f"{fn}: input must be (N, C, H, W) or (C, H, W), got shape {x.shape}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if min(kh, kw) < 1:
        raise ValueError(f"{fn}: kernel_size must be >= 1")
    if min(sh, sw) < 1:
        raise ValueError(f"{fn}: stride must be >= 1")
    if min(dh, dw) < 1:
        raise ValueError(f"{fn}: dilation must be >= 1")
    if min(ph, pw) < 0:
        raise ValueError(f"{fn}: padding must be >= 0")
    if 2 * ph > dh * (kh - 1) + 1 or 2 * pw > dw * (kw - 1) + 1:
        raise ValueError(f"{fn}: padding should be at most half of the (dilated) kernel size")
    h, w = x.shape[-2:]
    return (_pool_out(h, kh, sh, ph, dh, ceil_mode, fn), _pool_out(w, kw, sw, pw, dw, ceil_mode, fn))


def _pool_windows(x, k, s, p, d, out, fill):
    """(planes, kh*kw, OH, OW) window values (padding = fill) and their flat input indices (-1 in padding)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw), (oh, ow) = k, s, p, d, out
    h, w = x.shape[-2:]
    planes = x.reshape(-1, h, w)
    need_h, need_w = (oh - 1) * sh + dh * (kh - 1) + 1, (ow - 1) * sw + dw * (kw - 1) + 1
    xp = np.pad(planes, ((0, 0), (ph, max(need_h - h - ph, 0)), (pw, max(need_w - w - pw, 0))), constant_values=fill)
    ids = np.pad(np.arange(h * w).reshape(h, w), ((ph, max(need_h - h - ph, 0)), (pw, max(need_w - w - pw, 0))),
                 constant_values=-1)
    vals, idx = [], []
    for i in range(kh):
        for j in range(kw):
            sl = (slice(i * dh, i * dh + sh * (oh - 1) + 1, sh), slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))
            vals.append(xp[(slice(None),) + sl])
            idx.append(ids[sl])
    return np.stack(vals, 1), np.stack(idx, 0)


def max_pool2d_forward(input, kernel_size, stride, padding, dilation, ceil_mode):
    """-> (y, indices): the max over each window (padding = -inf; a NaN in the window wins) and its flat
    index ih * W + iw in the input plane (first one on ties)."""
    x = _float(input, "max_pool2d_forward", "input")
    oh, ow = _pool_check(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d_forward")
    vals, ids = _pool_windows(x, kernel_size, stride, padding, dilation, (oh, ow), -np.inf)
    isn = np.isnan(vals)
    pick = np.where(isn.any(1), isn.argmax(1), np.argmax(np.where(isn, -np.inf, vals), axis=1))
    y = np.take_along_axis(vals, pick[:, None], 1)[:, 0]
    idx = np.take_along_axis(np.broadcast_to(ids, vals.shape), pick[:, None], 1)[:, 0]
    shape = x.shape[:-2] + (oh, ow)
    return y.reshape(shape).astype(x.dtype), idx.reshape(shape).astype(np.int64)


def max_pool2d_backward(gy, indices, input_size):
    """gx: gy routed to the input position of each window's max (summed where windows share it)."""
    gy, idx = np.asarray(gy), np.asarray(indices)
    h, w = input_size
    planes_g, planes_i = gy.reshape(-1, gy.shape[-2] * gy.shape[-1]), idx.reshape(-1, gy.shape[-2] * gy.shape[-1])
    if planes_i.size and (planes_i.min() < 0 or planes_i.max() >= h * w):
        raise IndexError("max_pool2d_backward: indices out of range for the input size")
    gx = np.zeros((planes_g.shape[0], h * w), gy.dtype)
    for p in range(planes_g.shape[0]):
        np.add.at(gx[p], planes_i[p], planes_g[p])
    return gx.reshape(gy.shape[:-2] + (h, w))


def _avg_divisor(h, w, k, s, p, out, count_include_pad):
    """Per output cell: the window size clipped to the padded input (or to the input)."""
    (kh, kw), (sh, sw), (ph, pw), (oh, ow) = k, s, p, out

    def axis(n, kk, ss, pp, o):
        start = np.arange(o) * ss - pp
        end = np.minimum(start + kk, n + pp)
        padded = end - start
        inside = np.minimum(end, n) - np.maximum(start, 0)
        return padded, inside
    ph_, ih = axis(h, kh, sh, ph, oh)
    pw_, iw = axis(w, kw, sw, pw, ow)
    return np.outer(ph_, pw_) if count_include_pad else np.outer(ih, iw)


def avg_pool2d_forward(input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """Window means; the divisor counts the padding (count_include_pad) or only the input cells, as PyTorch."""
    x = _float(input, "avg_pool2d_forward", "input")
    oh, ow = _pool_check(x, kernel_size, stride, padding, (1, 1), ceil_mode, "avg_pool2d_forward")
    vals, _ = _pool_windows(x, kernel_size, stride, padding, (1, 1), (oh, ow), 0.0)
    div = _avg_divisor(*x.shape[-2:], kernel_size, stride, padding, (oh, ow), count_include_pad)
    return (vals.sum(1) / div).reshape(x.shape[:-2] + (oh, ow)).astype(x.dtype)


def avg_pool2d_backward(gy, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """gx: each output's gradient / divisor, spread over its window's input cells."""
    gy = np.asarray(gy)
    h, w = input_size
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = gy.shape[-2:]
    div = _avg_divisor(h, w, kernel_size, stride, padding, (oh, ow), count_include_pad)
    g = gy.reshape(-1, oh, ow) / div
    need_h, need_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    gxp = np.zeros((g.shape[0], max(need_h, h + ph), max(need_w, w + pw)), gy.dtype)
    for i in range(kh):
        for j in range(kw):
            gxp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += g
    return gxp[:, ph:ph + h, pw:pw + w].reshape(gy.shape[:-2] + (h, w)).astype(gy.dtype)


def adaptive_avg_pool2d_forward(input, output_size):
    """Output cell (i, j) averages rows [floor(i H / OH), ceil((i+1) H / OH)) and the same for columns."""
    x = _float(input, "adaptive_avg_pool2d_forward", "input")
    oh, ow = output_size
    h, w = x.shape[-2:]
    y = np.empty(x.shape[:-2] + (oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[..., i, j] = x[..., i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)].mean(axis=(-2, -1))
    return y


def adaptive_avg_pool2d_backward(gy, input_size):
    gy = np.asarray(gy)
    h, w = input_size
    oh, ow = gy.shape[-2:]
    gx = np.zeros(gy.shape[:-2] + (h, w), gy.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, r1, c0, c1 = i * h // oh, -(-(i + 1) * h // oh), j * w // ow, -(-(j + 1) * w // ow)
            gx[..., r0:r1, c0:c1] += (gy[..., i, j] / ((r1 - r0) * (c1 - c0)))[..., None, None]
    return gx


# ----------------------------------------------------------------- normalization
def batch_norm_forward(input, weight, bias, running_mean, running_var, training, momentum, eps):
    """x (N, C, *) -> (y, mean, rstd) per channel c over the N and spatial axes.

    Training: batch mean and biased variance; the running statistics (updated
    in place) move by rm = (1 - momentum) rm + momentum mean and the same for
    the unbiased variance.  Evaluation: the running statistics.  y = (x - mean)
    rstd gamma + beta with rstd = 1 / sqrt(var + eps).
    """
    x = _float(input, "batch_norm_forward", "input")
    if x.ndim < 2:
        raise ValueError(f"batch_norm_forward: input must be (N, C) or (N, C, ...), got shape {x.shape}")
    if not eps > 0:
        raise ValueError("batch_norm_forward: eps must be > 0")
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    x64 = x.astype(np.float64)
    if training:
        m = x.size // max(x.shape[1], 1)
        if m < 2 and x.size:
            raise ValueError(f"batch_norm_forward: expected more than 1 value per channel when training, "
                             f"got input of shape {x.shape}")
        mean = x64.mean(axis=axes)
        var = x64.var(axis=axes)
        if running_mean is not None:
            rm = _inplace(running_mean, np.empty(x.shape[1], x.dtype), "batch_norm_forward", "running_mean")
            rm[...] = (1 - momentum) * rm + momentum * mean
        if running_var is not None:
            rv = _inplace(running_var, np.empty(x.shape[1], x.dtype), "batch_norm_forward", "running_var")
            rv[...] = (1 - momentum) * rv + momentum * var * m / max(m - 1, 1)
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm_forward: evaluation needs running_mean and running_var")
        mean, var = np.asarray(running_mean, np.float64), np.asarray(running_var, np.float64)
    rstd = 1 / np.sqrt(var + eps)
    y = (x64 - mean.reshape(shape)) * rstd.reshape(shape)
    if weight is not None:
        y = y * np.asarray(weight).reshape(shape)
    if bias is not None:
        y = y + np.asarray(bias).reshape(shape)
    return y.astype(x.dtype), mean.astype(x.dtype), rstd.astype(x.dtype)


def batch_norm_backward(gy, input, weight, mean, rstd, training, need_input=True, need_weight=True, need_bias=True):
    """gx = gamma rstd (gy - mean(gy) - xhat mean(gy xhat)) in training (gamma rstd gy in evaluation);
    ggamma = sum(gy xhat), gbeta = sum(gy)."""
    x, gy = np.asarray(input), np.asarray(gy)
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x - np.asarray(mean).reshape(shape)) * np.asarray(rstd).reshape(shape)
    gamma = np.ones(x.shape[1]) if weight is None else np.asarray(weight)
    gx = None
    if need_input:
        k = (gamma * np.asarray(rstd)).reshape(shape)
        if training:
            gx = k * (gy - gy.mean(axis=axes, keepdims=True) - xhat * (gy * xhat).mean(axis=axes, keepdims=True))
        else:
            gx = k * gy
        gx = gx.astype(x.dtype)
    return (gx, (gy * xhat).sum(axis=axes).astype(x.dtype) if need_weight else None,
            gy.sum(axis=axes).astype(x.dtype) if need_bias else None)


def _ln_axes(x, normalized_shape, fn):
    k = len(normalized_shape)
    if not 1 <= k <= x.ndim or tuple(x.shape[x.ndim - k:]) != tuple(normalized_shape):
        raise ValueError(f"{fn}: normalized_shape does not match the last dimensions of input {x.shape}")
    return tuple(range(x.ndim - k, x.ndim))


def layer_norm_forward(input, normalized_shape, weight, bias, eps):
    """Normalize over the trailing ``normalized_shape`` dims: -> (y, mean, rstd) with one mean/rstd per row."""
    x = _float(input, "layer_norm_forward", "input")
    axes = _ln_axes(x, normalized_shape, "layer_norm_forward")
    if not eps > 0:
        raise ValueError("layer_norm_forward: eps must be > 0")
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    rstd = 1 / np.sqrt(x64.var(axis=axes, keepdims=True) + eps)
    y = (x64 - mean) * rstd
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y.astype(x.dtype), mean.reshape(-1).astype(x.dtype), rstd.reshape(-1).astype(x.dtype)


def layer_norm_backward(gy, input, normalized_shape, weight, mean, rstd, need_input=True, need_weight=True,
                        need_bias=True):
    """gx = rstd (g - mean(g) - xhat mean(g xhat)) with g = gy gamma; ggamma = sum_rows gy xhat; gbeta = sum_rows gy."""
    x, gy = np.asarray(input), np.asarray(gy)
    axes = _ln_axes(x, normalized_shape, "layer_norm_backward")
    lead = x.shape[:x.ndim - len(axes)] + (1,) * len(axes)
    xhat = (x - np.asarray(mean).reshape(lead)) * np.asarray(rstd).reshape(lead)
    g = gy * (1 if weight is None else np.asarray(weight))
    gx = None
    if need_input:
        gx = (np.asarray(rstd).reshape(lead) * (g - g.mean(axis=axes, keepdims=True)
                                                - xhat * (g * xhat).mean(axis=axes, keepdims=True))).astype(x.dtype)
    rows = tuple(range(x.ndim - len(axes)))
    return (gx, (gy * xhat).sum(axis=rows).astype(x.dtype) if need_weight else None,
            gy.sum(axis=rows).astype(x.dtype) if need_bias else None)


# ----------------------------------------------------------------- embedding
def _emb_indices(indices, v, fn):
    i = np.asarray(indices)
    if i.dtype.kind not in "iu":
        raise TypeError(f"{fn}: indices must be integers, got {i.dtype}")
    if i.size and (i.min() < 0 or i.max() >= v):
        bad = i[(i < 0) | (i >= v)].flat[0]
        raise IndexError(f"{fn}: index {bad} is out of range for {v} embeddings")
    return i.astype(np.int64)


def embedding_forward(weight, indices):
    """weight (V, D), indices (...) -> (..., D) = weight[indices]."""
    w = _float(weight, "embedding_forward", "weight")
    if w.ndim != 2:
        raise ValueError(f"embedding_forward: weight must have 2 dimensions, got shape {w.shape}")
    return w[_emb_indices(indices, w.shape[0], "embedding_forward")]


def embedding_backward(gy, indices, num_embeddings, padding_idx=-1):
    """(V, D) scatter-add of gy rows at their indices; the padding_idx row gets nothing."""
    gy = np.asarray(gy)
    i = _emb_indices(indices, num_embeddings, "embedding_backward").reshape(-1)
    g = gy.reshape(-1, gy.shape[-1])
    gw = np.zeros((num_embeddings, g.shape[1]), gy.dtype)
    keep = i != padding_idx
    np.add.at(gw, i[keep], g[keep])
    return gw


# ----------------------------------------------------------------- recurrent (one layer, one direction)
_GATES = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _rnn_check(mode, x, hx, cx, w_ih, w_hh, lengths, fn):
    if mode not in _GATES:
        raise ValueError(f"rnn: mode must be 'rnn_tanh', 'rnn_relu', 'gru' or 'lstm', got '{mode}'")
    x = _float(x, fn, "input")
    if x.ndim != 3:
        raise ValueError(f"{fn}: input must have 3 dimensions, got shape {x.shape}")
    t, b, i = x.shape
    g = _GATES[mode]
    h = np.asarray(w_hh).shape[1]
    for arr, shape, name in ((w_hh, (g * h, h), "weight_hh"), (w_ih, (g * h, i), "weight_ih"), (hx, (b, h), "hx")):
        if np.asarray(arr).shape != shape:
            raise ValueError(f"{fn}: {name} has shape {np.asarray(arr).shape}, expected {shape}")
    if mode == "lstm":
        if cx is None:
            raise TypeError(f"{fn}: an LSTM needs the initial cell state c0")
        if np.asarray(cx).shape != (b, h):
            raise ValueError(f"{fn}: cx has shape {np.asarray(cx).shape}, expected {(b, h)}")
    if lengths is not None:
        ln = np.asarray(lengths)
        if ln.dtype.kind not in "iu":
            raise TypeError(f"{fn}: lengths must be integers")
        if ln.shape != (b,):
            raise ValueError(f"{fn}: lengths has shape {ln.shape}, expected ({b},)")
        if ln.size and (ln.min() < 1 or ln.max() > t):
            raise ValueError(f"{fn}: lengths must be in [1, {t}]")
    return x, t, b, h, g


def rnn_forward(mode, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, lengths, reverse):
    """One recurrent layer over the whole sequence (T, B, I), as PyTorch's RNN/GRU/LSTM:

    rnn:  h = tanh|relu(W_ih x + b_ih + W_hh h + b_hh)
    gru:  r, z = sigmoid(...), n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h = (1 - z) n + z h
    lstm: i, f, o = sigmoid(...), g = tanh(...), c = f c + i g, h = o tanh(c)

    Steps t >= lengths[b] keep b's state and output 0.  ``reverse`` runs t = T-1 .. 0.
    Returns (out, h_n, c_n, gates, cells, hn_linear) as the native kernel does.
    """
    x, t_len, b, h, g = _rnn_check(mode, input, hx, cx, weight_ih, weight_hh, lengths, "rnn_forward")
    dt = x.dtype
    w_ih, w_hh = np.asarray(weight_ih), np.asarray(weight_hh)
    b_ih = np.zeros(g * h, dt) if bias_ih is None else np.asarray(bias_ih)
    b_hh = np.zeros(g * h, dt) if bias_hh is None else np.asarray(bias_hh)
    ln = np.full(b, t_len) if lengths is None else np.asarray(lengths)
    hcur = np.array(hx, dt)
    ccur = np.array(cx, dt) if mode == "lstm" else None
    out = np.zeros((t_len, b, h), dt)
    gates = np.zeros((t_len, b, g * h), dt)
    cells = np.zeros((t_len, b, h), dt) if mode == "lstm" else None
    hnl = np.zeros((t_len, b, h), dt) if mode == "gru" else None
    for s in range(t_len):
        t = t_len - 1 - s if reverse else s
        live = (t < ln)[:, None]
        xg = x[t] @ w_ih.T + b_ih
        hg = hcur @ w_hh.T + b_hh
        if mode == "lstm":
            i, f = _sigmoid(xg[:, :h] + hg[:, :h]), _sigmoid(xg[:, h:2 * h] + hg[:, h:2 * h])
            gg, o = np.tanh(xg[:, 2 * h:3 * h] + hg[:, 2 * h:3 * h]), _sigmoid(xg[:, 3 * h:] + hg[:, 3 * h:])
            c_new = f * ccur + i * gg
            h_new = o * np.tanh(c_new)
            gates[t] = np.where(live, np.concatenate([i, f, gg, o], 1), 0)
            ccur = np.where(live, c_new, ccur)
            cells[t] = ccur
        elif mode == "gru":
            r, z = _sigmoid(xg[:, :h] + hg[:, :h]), _sigmoid(xg[:, h:2 * h] + hg[:, h:2 * h])
            n = np.tanh(xg[:, 2 * h:] + r * hg[:, 2 * h:])
            h_new = (1 - z) * n + z * hcur
            gates[t] = np.where(live, np.concatenate([r, z, n], 1), 0)
            hnl[t] = np.where(live, hg[:, 2 * h:], 0)
        else:
            a = xg + hg
            h_new = np.tanh(a) if mode == "rnn_tanh" else np.maximum(a, 0)
            gates[t] = np.where(live, h_new, 0)  # for the simple RNN the "gate" is the new state itself
        out[t] = np.where(live, h_new, 0)
        hcur = np.where(live, h_new, hcur)
    return out, hcur.astype(dt), None if ccur is None else ccur.astype(dt), gates, cells, hnl


def rnn_backward(mode, dout, dhn, dcn, input, hx, cx, weight_ih, weight_hh, bias_ih, bias_hh, output, gates, cells,
                 hn_linear, lengths, reverse, need_input=True, need_hidden=True, need_weights=True):
    """Backpropagation through time for rnn_forward: -> (dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh)."""
    x, t_len, b, h, g = _rnn_check(mode, input, hx, cx, weight_ih, weight_hh, lengths, "rnn_backward")
    dt = x.dtype
    w_ih, w_hh = np.asarray(weight_ih), np.asarray(weight_hh)
    out, gates = np.asarray(output), np.asarray(gates)
    ln = np.full(b, t_len) if lengths is None else np.asarray(lengths)
    order = [t_len - 1 - s for s in range(t_len)] if reverse else list(range(t_len))
    hprev = np.zeros((t_len, b, h), dt)
    cur = np.array(hx, dt)
    for t in order:
        hprev[t] = cur
        cur = np.where((t < ln)[:, None], out[t], cur)
    dh = np.zeros((b, h), dt) if dhn is None else np.array(dhn, dt)
    dc = (np.zeros((b, h), dt) if dcn is None else np.array(dcn, dt)) if mode == "lstm" else None
    dxg = np.zeros((t_len, b, g * h), dt)
    dhg = np.zeros((t_len, b, g * h), dt)
    for k in range(t_len - 1, -1, -1):
        t = order[k]
        live = (t < ln)[:, None]
        gh = dh if dout is None else dh + np.asarray(dout)[t]
        gr = gates[t]
        if mode == "lstm":
            i, f, gg, o = gr[:, :h], gr[:, h:2 * h], gr[:, 2 * h:3 * h], gr[:, 3 * h:]
            c = cells[t]
            cprev = np.asarray(cx) if k == 0 else cells[order[k - 1]]
            tc = np.tanh(c)
            dcv = dc + gh * o * (1 - tc * tc)
            d_all = np.concatenate([dcv * gg * i * (1 - i), dcv * cprev * f * (1 - f), dcv * i * (1 - gg * gg),
                                    gh * tc * o * (1 - o)], 1)
            dxg[t] = dhg[t] = np.where(live, d_all, 0)
            dc = np.where(live, dcv * f, dc)
            direct = np.zeros_like(dh)
        elif mode == "gru":
            r, z, n = gr[:, :h], gr[:, h:2 * h], gr[:, 2 * h:]
            hnv = np.asarray(hn_linear)[t]
            dan = gh * (1 - z) * (1 - n * n)
            dr = dan * hnv * r * (1 - r)
            dz = gh * (hprev[t] - n) * z * (1 - z)
            dxg[t] = np.where(live, np.concatenate([dr, dz, dan], 1), 0)
            dhg[t] = np.where(live, np.concatenate([dr, dz, dan * r], 1), 0)
            direct = gh * z
        else:
            da = gh * (1 - out[t] ** 2) if mode == "rnn_tanh" else gh * (out[t] > 0)
            dxg[t] = dhg[t] = np.where(live, da, 0)
            direct = np.zeros_like(dh)
        dh = np.where(live, direct + dhg[t] @ w_hh, dh)
    flat_x, flat_dxg, flat_dhg = x.reshape(-1, x.shape[2]), dxg.reshape(-1, g * h), dhg.reshape(-1, g * h)
    has_bias = bias_ih is not None
    return (
        (flat_dxg @ w_ih).reshape(x.shape).astype(dt) if need_input else None,
        dh.astype(dt) if need_hidden else None,
        dc.astype(dt) if need_hidden and mode == "lstm" else None,
        (flat_dxg.T @ flat_x).astype(dt) if need_weights else None,
        (flat_dhg.T @ hprev.reshape(-1, h)).astype(dt) if need_weights else None,
        flat_dxg.sum(0).astype(dt) if need_weights and has_bias else None,
        flat_dhg.sum(0).astype(dt) if need_weights and has_bias else None,
    )


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
    "conv2d_forward", "conv2d_backward", "max_pool2d_forward", "max_pool2d_backward",
    "avg_pool2d_forward", "avg_pool2d_backward", "adaptive_avg_pool2d_forward", "adaptive_avg_pool2d_backward",
    "batch_norm_forward", "batch_norm_backward", "layer_norm_forward", "layer_norm_backward",
    "rnn_forward", "rnn_backward", "embedding_forward", "embedding_backward",
    "sgd_step", "adam_step", "rmsprop_step",
)
"""The kernel table every backend provides."""
