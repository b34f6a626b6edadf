"""Max / average / adaptive average pooling over the last two axes."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _float, _ints, _same_shape, _size, _want_alloc, _want_nonempty


def _pool_out(n, k, s, p, d, ceil, fn):
    ext = _size(d * (k - 1), fn, "dilation * (kernel_size - 1)")
    num = _size(n + _size(2 * p, fn, "padding"), fn, "the padded input") - ext - 1
    if num < 0:
        raise ValueError(f"{fn}: kernel is larger than the padded input")
    out = (num + (s - 1 if ceil else 0)) // s + 1
    if ceil and (out - 1) * s >= n + p:
        out -= 1
    return out


def _want_planes(a, name, fn):
    if a.ndim not in (3, 4):
        raise ValueError(f"{fn}: {name} must be (N, C, H, W) or (C, H, W), got shape {a.shape}")


def _pool_check(x, kernel_size, stride, padding, dilation, ceil_mode, fn, hw=None):
    """Checks every argument; -> (OH, OW) for planes of hw (default: x's last two axes)."""
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    if min(kh, kw) < 1:
        raise ValueError(f"{fn}: kernel_size must be >= 1")
    if min(sh, sw) < 1:
        raise ValueError(f"{fn}: stride must be >= 1")
    if min(dh, dw) < 1:
        raise ValueError(f"{fn}: dilation must be >= 1")
    if min(ph, pw) < 0:
        raise ValueError(f"{fn}: padding must be >= 0")
    eh = _size(_size(dh * (kh - 1), fn, "dilation * (kernel_size - 1)") + 1, fn, "the window")
    ew = _size(_size(dw * (kw - 1), fn, "dilation * (kernel_size - 1)") + 1, fn, "the window")
    if ph > eh // 2 or pw > ew // 2:
        raise ValueError(f"{fn}: padding should be at most half of the (dilated) kernel size")
    h, w = x.shape[-2:] if hw is None else hw
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


@_scalars(kernel_size="pair", stride="pair", padding="pair", dilation="pair", ceil_mode="bool")
def max_pool2d_forward(input, kernel_size, stride, padding, dilation, ceil_mode):
    """-> (y, indices): the max over each window (padding = -inf; a NaN in the window wins) and its flat
    index ih * W + iw in the input plane (first one on ties; -1 for a window entirely in padding, whose
    maximum is -inf and whose gradient goes nowhere)."""
    x = _float(input, "max_pool2d_forward", "input")
    _want_planes(x, "input", "max_pool2d_forward")
    _want_nonempty(x, "input", "max_pool2d_forward")
    oh, ow = _pool_check(x, kernel_size, stride, padding, dilation, ceil_mode, "max_pool2d_forward")
    _want_alloc(x.shape[:-2] + (oh, ow), "max_pool2d_forward", "the output")
    vals, ids = _pool_windows(x, kernel_size, stride, padding, dilation, (oh, ow), -np.inf)
    isn = np.isnan(vals)
    pick = np.where(isn.any(1), isn.argmax(1), np.argmax(np.where(isn, -np.inf, vals), axis=1))
    y = np.take_along_axis(vals, pick[:, None], 1)[:, 0]
    idx = np.take_along_axis(np.broadcast_to(ids, vals.shape), pick[:, None], 1)[:, 0]
    shape = x.shape[:-2] + (oh, ow)
    return y.reshape(shape).astype(x.dtype), idx.reshape(shape).astype(np.int64)


@_scalars(input_size="pair")
def max_pool2d_backward(gy, indices, input_size):
    """gx: gy routed to the input position of each window's max (summed where windows share it)."""
    fn = "max_pool2d_backward"
    gy, idx = _float(gy, fn, "gy"), _ints(indices, fn, "indices")
    _same_shape(gy, "gy", idx, "indices", fn)
    _want_planes(gy, "gy", fn)
    h, w = input_size
    if h < 1 or w < 1:
        raise ValueError(f"{fn}: input_size must be >= 1")
    _want_alloc(gy.shape[:-2] + (h, w), fn, "the input gradient")
    planes_g, planes_i = gy.reshape(-1, gy.shape[-2] * gy.shape[-1]), idx.reshape(-1, gy.shape[-2] * gy.shape[-1])
    if planes_i.size and (planes_i.min() < -1 or planes_i.max() >= h * w):  # -1: an all-padding window
        raise IndexError("max_pool2d_backward: indices out of range for the input size")
    gx = np.zeros((planes_g.shape[0], h * w), gy.dtype)
    for p in range(planes_g.shape[0]):
        hit = planes_i[p] >= 0
        np.add.at(gx[p], planes_i[p][hit], planes_g[p][hit])
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


@_scalars(kernel_size="pair", stride="pair", padding="pair", ceil_mode="bool", count_include_pad="bool")
def avg_pool2d_forward(input, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """Window means; the divisor counts the padding (count_include_pad) or only the input cells, as PyTorch."""
    x = _float(input, "avg_pool2d_forward", "input")
    _want_planes(x, "input", "avg_pool2d_forward")
    _want_nonempty(x, "input", "avg_pool2d_forward")
    oh, ow = _pool_check(x, kernel_size, stride, padding, (1, 1), ceil_mode, "avg_pool2d_forward")
    _want_alloc(x.shape[:-2] + (oh, ow), "avg_pool2d_forward", "the output")
    vals, _ = _pool_windows(x, kernel_size, stride, padding, (1, 1), (oh, ow), 0.0)
    div = _avg_divisor(*x.shape[-2:], kernel_size, stride, padding, (oh, ow), count_include_pad)
    return (vals.sum(1) / div).reshape(x.shape[:-2] + (oh, ow)).astype(x.dtype)


@_scalars(input_size="pair", kernel_size="pair", stride="pair", padding="pair", ceil_mode="bool",
          count_include_pad="bool")
def avg_pool2d_backward(gy, input_size, kernel_size, stride, padding, ceil_mode, count_include_pad):
    """gx: each output's gradient / divisor, spread over its window's input cells."""
    fn = "avg_pool2d_backward"
    gy = _float(gy, fn, "gy")
    _want_planes(gy, "gy", fn)
    h, w = input_size
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    oh, ow = gy.shape[-2:]
    if h < 1 or w < 1:
        raise ValueError(f"{fn}: input_size must be >= 1")
    _want_alloc(gy.shape[:-2] + (h, w), fn, "the input gradient")
    if _pool_check(gy, kernel_size, stride, padding, (1, 1), ceil_mode, fn, (h, w)) != (oh, ow):
        raise ValueError(f"{fn}: gy {gy.shape} does not match the pooled input size")
    div = _avg_divisor(h, w, kernel_size, stride, padding, (oh, ow), count_include_pad)
    g = gy.reshape(-1, oh, ow) / div
    need_h, need_w = (oh - 1) * sh + kh, (ow - 1) * sw + kw
    gxp = np.zeros((g.shape[0], max(need_h, h + ph), max(need_w, w + pw)), gy.dtype)
    for i in range(kh):
        for j in range(kw):
            gxp[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw] += g
    return gxp[:, ph:ph + h, pw:pw + w].reshape(gy.shape[:-2] + (h, w)).astype(gy.dtype)


@_scalars(output_size="pair")
def adaptive_avg_pool2d_forward(input, output_size):
    """Output cell (i, j) averages rows [floor(i H / OH), ceil((i+1) H / OH)) and the same for columns."""
    fn = "adaptive_avg_pool2d_forward"
    x = _float(input, fn, "input")
    _want_planes(x, "input", fn)
    oh, ow = output_size
    h, w = x.shape[-2:]
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: output_size must be >= 1")
    _want_nonempty(x, "input", fn)
    _want_alloc(x.shape[:-2] + (oh, ow), fn, "the output")
    y = np.empty(x.shape[:-2] + (oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[..., i, j] = x[..., i * h // oh:-(-(i + 1) * h // oh), j * w // ow:-(-(j + 1) * w // ow)].mean(axis=(-2, -1))
    return y


@_scalars(input_size="pair")
def adaptive_avg_pool2d_backward(gy, input_size):
    """gx: each output's gradient spread evenly over its window's input cells."""
    fn = "adaptive_avg_pool2d_backward"
    gy = _float(gy, fn, "gy")
    _want_planes(gy, "gy", fn)
    h, w = input_size
    if h < 1 or w < 1:
        raise ValueError(f"{fn}: input_size must be >= 1")
    oh, ow = gy.shape[-2:]
    if oh < 1 or ow < 1:
        raise ValueError(f"{fn}: gy {gy.shape} has an empty pooled size")
    _want_alloc(gy.shape[:-2] + (h, w), fn, "the input gradient")
    gx = np.zeros(gy.shape[:-2] + (h, w), gy.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, r1, c0, c1 = i * h // oh, -(-(i + 1) * h // oh), j * w // ow, -(-(j + 1) * w // ow)
            gx[..., r0:r1, c0:c1] += (gy[..., i, j] / ((r1 - r0) * (c1 - c0)))[..., None, None]
    return gx
