"""``pad`` (constant, reflect, replicate, circular) and ``interpolate`` (nearest, linear, bilinear).

Both are index maps per dimension: ``pad`` gathers each output position from one input position
(or writes the constant), and its backward scatters the gradient back with ``add.at``;
``interpolate`` is, along each resized dimension, a product with an (out, in) weight matrix built
with PyTorch's source-coordinate rules, and its backward the product with the transpose.
"""
from __future__ import annotations

import numpy as np

from ..backend import to_device
from ..shapes import astype, contiguous, dtype_of, numpy_like
from ..tensor import Tensor, _result, as_tensor

__all__ = ["pad", "interpolate", "upsample"]

_MODES = {"constant": None, "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad(input, pad, mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last ``len(pad) // 2`` dims: ``pad = (left, right, top, bottom, ...)`` from the last dim back.
    Negative amounts crop (constant mode), as PyTorch's."""
    x = as_tensor(input)
    if mode not in _MODES:
        raise ValueError(f"pad: mode must be one of {sorted(_MODES)}, got {mode!r}")
    pad = tuple(pad)
    if len(pad) % 2 or len(pad) // 2 > x.ndim or not all(isinstance(p, (int, np.integer)) for p in pad):
        raise ValueError(f"pad: pad must be an even number of integers, at most 2 per dim of shape {x.shape}, got {pad}")
    maps, out_shape = [], list(x.shape)
    for k in range(len(pad) // 2):
        d = x.ndim - 1 - k
        lo, hi, n = int(pad[2 * k]), int(pad[2 * k + 1]), x.shape[d]
        if mode == "constant":
            idx = np.concatenate([np.full(max(lo, 0), -1), np.arange(n), np.full(max(hi, 0), -1)])
            idx = idx[max(-lo, 0):len(idx) - max(-hi, 0)]
        else:
            if lo < 0 or hi < 0:
                raise ValueError(f"pad: negative padding is only for mode='constant', got {pad}")
            if mode == "reflect" and (lo >= n or hi >= n):
                raise ValueError(f"pad: reflect padding must be smaller than the dim it pads ({n}), got {pad}")
            if mode == "circular" and (lo > n or hi > n):
                raise ValueError(f"pad: circular padding must be at most the dim it pads ({n}), got {pad}")
            if n == 0:
                raise ValueError(f"pad: cannot pad an empty dim in mode {mode!r}")
            idx = np.pad(np.arange(n), (lo, hi), mode=_MODES[mode])
        if lo + hi + n < 0:
            raise ValueError(f"pad: cropping {pad} leaves a negative size for dim {d}")
        maps.append((d, idx))
        out_shape[d] = len(idx)
    grids = [np.arange(s) for s in x.shape]
    valid = np.ones(tuple(out_shape), dtype=bool)
    for d, idx in maps:
        grids[d] = np.maximum(idx, 0)
        if mode == "constant":
            shape = [1] * x.ndim
            shape[d] = len(idx)
            valid &= (idx >= 0).reshape(shape)
    xd = x.data
    fill = mode == "constant" and not valid.all()

    def forward(xp, a, *grids):
        out = a[xp.ix_(*grids)] if grids else xp.asarray(a, copy=True)
        return xp.where(valid_on(xp), out, xp.asarray(value, dtype=a.dtype)) if fill else out

    def valid_on(xp):
        return valid if xp is np else xp.asarray(valid)

    def backward(xp, g, *grids):
        full = xp.zeros(xd.shape, dtype=g.dtype)
        if grids:
            xp.add.at(full, xp.ix_(*grids), xp.where(valid_on(xp), g, xp.zeros_like(g)) if fill else g)
        else:
            full[...] = g
        return full
    out = numpy_like(forward, xd, *grids)
    return _result(astype(out, dtype_of(xd), copy=False), (x,), lambda g: (numpy_like(backward, g, *grids),))


def _weights(n_in, n_out, mode, align_corners, scale):
    """(n_out, n_in) interpolation matrix along one dim, with PyTorch's source coordinates."""
    w = np.zeros((n_out, n_in))
    o = np.arange(n_out)
    if mode == "nearest":
        s = n_in / n_out if scale is None else 1.0 / scale
        src = np.minimum(np.floor(o * s).astype(np.int64), n_in - 1)
        w[o, src] = 1.0
        return w
    if align_corners:
        src = o * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        s = n_in / n_out if scale is None else 1.0 / scale
        src = np.maximum((o + 0.5) * s - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    lam = src - i0
    np.add.at(w, (o, i0), 1 - lam)
    np.add.at(w, (o, i1), lam)
    return w


def interpolate(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None,
                recompute_scale_factor=None) -> Tensor:
    """Resize the spatial dims of (N, C, L) or (N, C, H, W): ``nearest``, ``linear`` (3-D), ``bilinear`` (4-D)."""
    x = as_tensor(input)
    if mode not in ("nearest", "linear", "bilinear"):
        raise ValueError(f"interpolate: mode must be 'nearest', 'linear' or 'bilinear', got {mode!r}")
    if x.ndim not in (3, 4):
        raise ValueError(f"interpolate: input must be (N, C, L) or (N, C, H, W), got shape {x.shape}")
    if (mode == "linear" and x.ndim != 3) or (mode == "bilinear" and x.ndim != 4):
        raise ValueError(f"interpolate: mode {mode!r} needs a {3 if mode == 'linear' else 4}-D input, got {x.shape}")
    if mode == "nearest" and align_corners is not None:
        raise ValueError("interpolate: align_corners applies only to linear and bilinear modes")
    if x.dtype.kind != "f":
        raise TypeError(f"interpolate: input must be floating point, got {x.dtype}")
    nsp = x.ndim - 2
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    if size is not None:
        size = (size,) * nsp if isinstance(size, (int, np.integer)) else tuple(size)
        scales = (None,) * nsp
    else:
        scales = (scale_factor,) * nsp if isinstance(scale_factor, (int, float)) else tuple(scale_factor)
        size = tuple(int(np.floor(s * f)) for s, f in zip(x.shape[2:], scales))
        if recompute_scale_factor:
            scales = (None,) * nsp
    if len(size) != nsp or any(s <= 0 for s in size):
        raise ValueError(f"interpolate: the output size must be {nsp} positive integers, got {size}")
    mats = [to_device(_weights(n, m, mode, bool(align_corners), s).astype(x.dtype), x.device)
            for n, m, s in zip(x.shape[2:], size, scales)]
    xd = x.data
    if nsp == 1:
        y = xd @ mats[0].T
    else:
        y = mats[0] @ xd @ mats[1].T

    def bw(g):
        return (g @ mats[0] if nsp == 1 else mats[0].T @ g @ mats[1],)
    return _result(contiguous(y), (x,), bw)


def upsample(input, size=None, scale_factor=None, mode: str = "nearest", align_corners=None) -> Tensor:
    return interpolate(input, size, scale_factor, mode, align_corners)
