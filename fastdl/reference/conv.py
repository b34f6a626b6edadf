"""conv2d on NCHW: stride, asymmetric padding, dilation, groups; gradients by the adjoint."""
from __future__ import annotations

import numpy as np

from ._checks import _scalars, _array, _float, _same_dtype, _size, _want_alloc, _want_ndim, _want_shape


def _conv_geometry(x, w, stride, padding, dilation, groups, fn):
    _want_ndim(x, "input", fn, 4)
    _want_ndim(w, "weight", fn, 4)
    _same_dtype(x, "input", w, "weight", fn)
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
    if kh < 1 or kw < 1:
        raise ValueError(f"{fn}: kernel size must be >= 1, weight has shape {w.shape}")
    # the same int64 limits as the native sizes
    eh = _size(_size(dh * (kh - 1), fn, "dilation * (kernel - 1)") + 1, fn, "the dilated kernel")
    ew = _size(_size(dw * (kw - 1), fn, "dilation * (kernel - 1)") + 1, fn, "the dilated kernel")
    ph = _size(h + _size(pt + pb, fn, "padding"), fn, "the padded input")
    pw = _size(wd + _size(pl + pr, fn, "padding"), fn, "the padded input")
    if ph < eh or pw < ew:
        raise ValueError(f"{fn}: kernel ({eh}, {ew}) with dilation is larger than the padded input ({ph}, {pw})")
    oh, ow = (ph - eh) // sh + 1, (pw - ew) // sw + 1
    _want_alloc((n, k, oh, ow), fn, "the output")
    return oh, ow


def _windows(xp, kh, kw, oh, ow, stride, dilation):
    """(N, C, kh, kw, OH, OW): the input value under kernel tap (i, j) for output (oh, ow)."""
    (sh, sw), (dh, dw) = stride, dilation
    return np.stack([np.stack([xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                               for j in range(kw)], axis=2) for i in range(kh)], axis=2)


@_scalars(stride="pair", padding="quad", dilation="pair", groups="int")
def conv2d_forward(input, weight, bias, stride, padding, dilation, groups):
    """input (N, C, H, W), weight (K, C/groups, kh, kw), bias (K,) -> (N, K, OH, OW).

    y[n, k, oh, ow] = bias[k] + sum_{c in k's group, i, j} w[k, c, i, j] x_pad[n, c, oh*sh + i*dh, ow*sw + j*dw]
    with x_pad the input zero-padded by (top, left, bottom, right) = padding.
    """
    fn = "conv2d_forward"
    x, w = _float(input, fn, "input"), _array(weight, fn, "weight")
    oh, ow = _conv_geometry(x, w, stride, padding, dilation, groups, fn)
    if bias is not None:
        bias = _array(bias, fn, "bias")
        _same_dtype(x, "input", bias, "bias", fn)
        _want_shape(bias, w.shape[:1], "bias", fn)
    pt, pl, pb, pr = padding
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    cols = _windows(xp, w.shape[2], w.shape[3], oh, ow, stride, dilation)
    cg, kg = x.shape[1] // groups, w.shape[0] // groups
    y = np.concatenate([np.einsum("ncabhw,kcab->nkhw", cols[:, g * cg:(g + 1) * cg], w[g * kg:(g + 1) * kg],
                                  optimize=True) for g in range(groups)], axis=1)
    if bias is not None:
        y = y + bias[None, :, None, None]
    return y.astype(x.dtype)


@_scalars(stride="pair", padding="quad", dilation="pair", groups="int", need_input="bool",
          need_weight="bool", need_bias="bool")
def conv2d_backward(gy, input, weight, stride, padding, dilation, groups, need_input=True, need_weight=True,
                    need_bias=True):
    """gy (N, K, OH, OW) -> (gx, gw, gb): the adjoints of conv2d_forward's sums."""
    fn = "conv2d_backward"
    gy, x, w = _array(gy, fn, "gy"), _float(input, fn, "input"), _array(weight, fn, "weight")
    oh, ow = _conv_geometry(x, w, stride, padding, dilation, groups, fn)
    _same_dtype(x, "input", gy, "gy", fn)
    _want_shape(gy, (x.shape[0], w.shape[0], oh, ow), "gy", fn)
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
