"""1-D convolution and pooling, transposed convolution, adaptive max pooling, group norm and embedding bags,
all on the existing native kernels:

- ``conv1d``/``max_pool1d``/``avg_pool1d`` are the 2-D kernels on (N, C, 1, L);
- ``conv_transpose2d`` is the adjoint of ``conv2d``: its forward is conv2d's input gradient, its input
  gradient is conv2d's forward and its weight gradient is conv2d's weight gradient with the roles of
  input and output swapped (no zero-stuffed input is ever built);
- ``group_norm`` is the layer-norm kernel over (N, G, C/G * spatial), then a per-channel affine map;
- ``embedding_bag`` gathers with the embedding kernel and reduces each bag with ``np.add.reduceat``.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..shapes import astype, float_arg, int_arg, numpy_like, pair_arg, reshape
from ..tensor import Tensor, _result, as_tensor, contiguous
from .conv import adaptive_avg_pool2d, avg_pool2d, conv2d, max_pool2d

__all__ = ["conv1d", "conv_transpose1d", "conv_transpose2d", "max_pool1d", "avg_pool1d", "adaptive_max_pool2d",
           "adaptive_max_pool1d", "adaptive_avg_pool1d", "group_norm", "embedding_bag"]


def _one(v, name, fn):
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ValueError(f"{fn}: {name} must be an int or a 1-tuple, got {v!r}")
        v = v[0]
    return v


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    """input (N, C, L), weight (K, C/groups, k), bias (K,) -> (N, K, OL); ``padding``: int, "valid" or "same"."""
    x, w = as_tensor(input), as_tensor(weight)
    if x.ndim == 2:
        return conv1d(x.unsqueeze(0), w, bias, stride, padding, dilation, groups).squeeze(0)
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"conv1d: expected input (N, C, L) and weight (out, in/groups, k), got {x.shape} and {w.shape}")
    pad = padding if isinstance(padding, str) else (0, _one(padding, "padding", "conv1d"))
    y = conv2d(x.unsqueeze(2), w.unsqueeze(2), bias, (1, _one(stride, "stride", "conv1d")), pad,
               (1, _one(dilation, "dilation", "conv1d")), groups)
    return y.squeeze(2)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1,
                     dilation=1) -> Tensor:
    """Transposed convolution: input (N, Cin, H, W), weight (Cin, Cout/groups, kh, kw) -> (N, Cout, OH, OW) with
    OH = (H - 1) sh - 2 ph + dh (kh - 1) + oph + 1, as PyTorch's."""
    fn = "conv_transpose2d"
    x, w = as_tensor(input), as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    if x.ndim == 3:
        return conv_transpose2d(x.unsqueeze(0), w, b, stride, padding, output_padding, groups, dilation).squeeze(0)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"{fn}: expected input (N, C, H, W) and weight (in, out/groups, kh, kw), got {x.shape} "
                         f"and {w.shape}")
    if x.dtype != w.dtype:
        raise TypeError(f"{fn}: input has dtype {x.dtype} but weight has {w.dtype}")
    groups = int_arg(groups, "groups", fn, 1)
    if w.shape[0] != x.shape[1] or w.shape[0] % groups:
        raise ValueError(f"{fn}: weight must have in_channels ({x.shape[1]}, divisible by groups={groups}) rows, "
                         f"got shape {w.shape}")
    st, dil = pair_arg(stride, "stride", fn, 1), pair_arg(dilation, "dilation", fn, 1)
    ph, pw = pair_arg(padding, "padding", fn, 0)
    oph, opw = pair_arg(output_padding, "output_padding", fn, 0)
    if oph >= max(st[0], dil[0]) or opw >= max(st[1], dil[1]):
        raise ValueError(f"{fn}: output_padding must be smaller than stride or dilation, got {output_padding}")
    out_hw = tuple((n - 1) * s - 2 * p + d * (k - 1) + op + 1
                   for n, s, p, d, k, op in zip(x.shape[2:], st, (ph, pw), dil, w.shape[2:], (oph, opw)))
    if min(out_hw) <= 0:
        raise ValueError(f"{fn}: the output size {out_hw} is not positive for input {x.shape} and weight {w.shape}")
    n_out = w.shape[1] * groups
    pad = (ph, pw, ph, pw)
    kern = backend.ops(x.data)
    xp = backend.array_namespace(x.data)
    # conv2d's "input", on the data's device: only its shape is read, so it is left uninitialised (zeroing
    # it cost 0.9 ms of a 21 ms step for a (32, 32, 32, 32) output)
    shape_of_out = xp.empty((x.shape[0], n_out) + out_hw, dtype=backend.xp_dtype(xp, x.dtype))
    xd, wd = x.data, w.data
    y = kern.conv2d_backward(xd, shape_of_out, wd, st, pad, dil, groups, True, False, False)[0]
    if b is not None:  # into the kernel's fresh result, not a second full-size array
        y += reshape(b.data, (1, -1, 1, 1))
    parents = (x, w) if b is None else (x, w, b)

    def bw(g):
        g = contiguous(g)
        gx = kern.conv2d_forward(g, wd, None, st, pad, dil, groups) if x.requires_grad else None
        gw = kern.conv2d_backward(xd, g, wd, st, pad, dil, groups, False, True, False)[1] if w.requires_grad else None
        if b is None:
            return gx, gw
        return gx, gw, xp.sum(g, axis=(0, 2, 3))
    return _result(contiguous(astype(y, x.dtype, copy=False)), parents, bw)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups: int = 1,
                     dilation=1) -> Tensor:
    x, w = as_tensor(input), as_tensor(weight)
    if x.ndim != 3 or w.ndim != 3:
        raise ValueError(f"conv_transpose1d: expected input (N, C, L) and weight (in, out/groups, k), got {x.shape} "
                         f"and {w.shape}")
    f = "conv_transpose1d"
    y = conv_transpose2d(x.unsqueeze(2), w.unsqueeze(2), bias, (1, _one(stride, "stride", f)),
                         (0, _one(padding, "padding", f)), (0, _one(output_padding, "output_padding", f)), groups,
                         (1, _one(dilation, "dilation", f)))
    return y.squeeze(2)


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False):
    x = as_tensor(input)
    if x.ndim not in (2, 3):
        raise ValueError(f"max_pool1d: input must be (N, C, L) or (C, L), got shape {x.shape}")
    f = "max_pool1d"
    k = _one(kernel_size, "kernel_size", f)
    out = max_pool2d(x.unsqueeze(-2), (1, k), None if stride is None else (1, _one(stride, "stride", f)),
                     (0, _one(padding, "padding", f)), (1, _one(dilation, "dilation", f)), ceil_mode, return_indices)
    if return_indices:
        return out[0].squeeze(-2), Tensor(out[1].data.reshape(out[0].shape[:-2] + out[0].shape[-1:]))
    return out.squeeze(-2)


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    x = as_tensor(input)
    if x.ndim not in (2, 3):
        raise ValueError(f"avg_pool1d: input must be (N, C, L) or (C, L), got shape {x.shape}")
    f = "avg_pool1d"
    return avg_pool2d(x.unsqueeze(-2), (1, _one(kernel_size, "kernel_size", f)),
                      None if stride is None else (1, _one(stride, "stride", f)), (0, _one(padding, "padding", f)),
                      ceil_mode, count_include_pad).squeeze(-2)


def _bounds(n, m):
    """PyTorch's adaptive windows: [floor(i n / m), ceil((i + 1) n / m)) for output i."""
    i = np.arange(m)
    return (i * n) // m, -((-(i + 1) * n) // m)


def adaptive_max_pool2d(input, output_size, return_indices: bool = False):
    """Max over PyTorch's adaptive windows; indices are flat positions h * W + w; NaN wins, as PyTorch."""
    fn = "adaptive_max_pool2d"
    x = as_tensor(input)
    if x.ndim not in (3, 4) or min(x.shape[-2:]) == 0:
        raise ValueError(f"{fn}: input must be (N, C, H, W) or (C, H, W) with non-empty H and W, got {x.shape}")
    if isinstance(output_size, (int, np.integer)):
        output_size = (output_size, output_size)
    H, W = x.shape[-2:]
    oh, ow = (H if output_size[0] is None else int_arg(output_size[0], "output_size", fn, 1),
              W if output_size[1] is None else int_arg(output_size[1], "output_size", fn, 1))
    lead = tuple(x.shape[:-2])
    (hs, he), (ws, we) = _bounds(H, oh), _bounds(W, ow)

    def forward(xp, a):
        vals = xp.empty(lead + (oh, ow), dtype=a.dtype)
        idx = xp.empty(lead + (oh, ow), dtype=xp.int64)
        for i in range(oh):
            for j in range(ow):
                win = a[..., hs[i]:he[i], ws[j]:we[j]].reshape(lead + (-1,))
                nan = xp.isnan(win) if a.dtype.kind == "f" else xp.zeros(win.shape, dtype=bool)
                k = xp.where(nan.any(-1), nan.argmax(-1), win.argmax(-1))
                vals[..., i, j] = xp.take_along_axis(win, k[..., None], -1)[..., 0]
                ww = int(we[j] - ws[j])
                idx[..., i, j] = (int(hs[i]) + k // ww) * W + int(ws[j]) + k % ww
        return vals, idx

    def backward(xp, g, idx):
        full = xp.zeros(lead + (H * W,), dtype=g.dtype)
        flat_g, flat_i = g.reshape(-1, oh * ow), idx.reshape(-1, oh * ow)
        rows = xp.arange(flat_g.shape[0])[:, None]
        xp.add.at(full.reshape(-1, H * W), (rows, flat_i), flat_g)
        return full.reshape(x.shape)
    vals, idx = numpy_like(forward, x.data)
    out = _result(vals, (x,), lambda g: (numpy_like(backward, g, idx),))
    return (out, Tensor(idx)) if return_indices else out


def adaptive_max_pool1d(input, output_size, return_indices: bool = False):
    x = as_tensor(input)
    out = adaptive_max_pool2d(x.unsqueeze(-2), (1, _one(output_size, "output_size", "adaptive_max_pool1d")),
                              return_indices)
    if return_indices:
        return out[0].squeeze(-2), Tensor(out[1].data[..., 0, :])
    return out.squeeze(-2)


def adaptive_avg_pool1d(input, output_size) -> Tensor:
    x = as_tensor(input)
    return adaptive_avg_pool2d(x.unsqueeze(-2), (1, _one(output_size, "output_size", "adaptive_avg_pool1d"))).squeeze(-2)


def group_norm(input, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    """Normalise each of ``num_groups`` channel groups of every sample (Wu & He), then scale and shift per channel."""
    x = as_tensor(input)
    g = int_arg(num_groups, "num_groups", "group_norm", 1)
    if x.ndim < 2 or x.shape[1] % g:
        raise ValueError(f"group_norm: input must be (N, C, ...) with C divisible by num_groups={g}, got {x.shape}")
    eps = float_arg(eps, "eps", "group_norm", 0.0, lo_open=True)
    w = None if weight is None else as_tensor(weight)
    b = None if bias is None else as_tensor(bias)
    kern = backend.ops(x.data)
    y, mean, rstd = kern.group_norm_forward(contiguous(x.data), g, None if w is None else w.data,
                                            None if b is None else b.data, eps)
    parents = tuple(t for t in (x, w, b) if t is not None)
    xd, wd = x.data, None if w is None else w.data

    def bw(gy):
        gx, gw, gb = kern.group_norm_backward(contiguous(gy), xd, g, wd, mean, rstd, x.requires_grad,
                                              w is not None and w.requires_grad, b is not None and b.requires_grad)
        return tuple(v for v, t in ((gx, x), (gw, w), (gb, b)) if t is not None)
    return _result(y, parents, bw)


def _segments(op, a, starts, sizes):
    """op's reduction of each non-empty run a[start:start + size] of rows (bags in order).  Not
    ``op.reduceat(a, starts, axis=0)``: NumPy's reduceat along the first axis of a 2-D array is slow
    (64 bags of 200 rows of 128 floats: 14.8 ms, against 0.7 ms for these slices)."""
    full = sizes > 0
    if full.all() and np.all(sizes == sizes[0]):  # one bag per row of a 2-D input: equal runs
        return op.reduce(a.reshape(len(sizes), int(sizes[0]), -1), axis=1)
    if np.count_nonzero(full) > 4096:  # many small bags: the per-bag Python loop would cost more
        return op.reduceat(a, starts[full], axis=0)
    return np.stack([op.reduce(a[s:s + n], axis=0) for s, n in zip(starts[full], sizes[full])])


def embedding_bag(input, weight, offsets=None, mode: str = "mean", per_sample_weights=None,
                  padding_idx=None) -> Tensor:
    """Sum, mean or max of the embeddings of each bag: ``input`` (B, L) holds one bag per row, or ``input`` (n,)
    with ``offsets`` (B,) the start of each bag.  ``padding_idx`` entries are left out (an empty bag gives
    zeros); ``per_sample_weights`` (mode "sum") scale each entry."""
    fn = "embedding_bag"
    w = as_tensor(weight)
    idx = np.asarray(input.data if isinstance(input, Tensor) else input)
    if mode not in ("sum", "mean", "max"):
        raise ValueError(f"{fn}: mode must be 'sum', 'mean' or 'max', got {mode!r}")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{fn}: input must hold integer indices, got dtype {idx.dtype}")
    if idx.ndim == 2:
        if offsets is not None:
            raise ValueError(f"{fn}: offsets must be None for a 2-D input (one bag per row)")
        starts = np.arange(idx.shape[0], dtype=np.int64) * idx.shape[1]
        flat = idx.reshape(-1)
    elif idx.ndim == 1:
        if offsets is None:
            raise ValueError(f"{fn}: a 1-D input needs offsets (the start of each bag)")
        starts = np.asarray(offsets.data if isinstance(offsets, Tensor) else offsets).astype(np.int64).reshape(-1)
        if starts.size and (starts[0] != 0 or np.any(np.diff(starts) < 0) or starts[-1] > idx.size):
            raise ValueError(f"{fn}: offsets must start at 0, not decrease, and stay within the input's {idx.size} "
                             "entries")
        flat = idx
    else:
        raise ValueError(f"{fn}: input must be 1-D (with offsets) or 2-D, got shape {idx.shape}")
    v, d = w.shape
    if flat.size and (flat.min() < 0 or flat.max() >= v):
        raise IndexError(f"{fn}: input holds indices outside [0, {v})")
    psw = None
    if per_sample_weights is not None:
        if mode != "sum":
            raise ValueError(f"{fn}: per_sample_weights is only supported for mode='sum'")
        psw = as_tensor(per_sample_weights)
        if psw.shape != idx.shape:
            raise ValueError(f"{fn}: per_sample_weights must have the input's shape {idx.shape}, got {psw.shape}")
    keep = np.ones(flat.size, bool) if padding_idx is None else flat != (padding_idx % v)
    pad = -1 if padding_idx is None else padding_idx % v
    nb = starts.size
    sizes = np.diff(np.append(starts, flat.size))
    bag = np.repeat(np.arange(nb), sizes)  # the bag of each entry (bags are contiguous runs)
    kern = backend.ops(w.data)
    rows = kern.embedding_forward(w.data, flat)  # (n, D) gathered natively
    if padding_idx is not None:
        rows[~keep] = 0
    if psw is not None:
        rows = rows * psw.data.reshape(-1, 1)
    counts = np.bincount(bag[keep], minlength=nb).astype(w.dtype)
    nonempty = sizes > 0
    out = np.zeros((nb, d), w.dtype)
    if mode == "max":
        if flat.size:
            masked = np.where(keep[:, None], rows, -np.inf)
            out[nonempty] = _segments(np.maximum, masked, starts, sizes)
        out[counts == 0] = 0
        # the entry that won each (bag, dim): the first one equal to the maximum
        hit = keep[:, None] & (rows == out[bag])
        first = np.where(hit, np.arange(flat.size)[:, None], flat.size)
        pick = np.full((nb, d), flat.size, np.int64)
        if flat.size:
            pick[nonempty] = _segments(np.minimum, first, starts, sizes)
    else:
        if flat.size:
            out[nonempty] = _segments(np.add, rows, starts, sizes)
        if mode == "mean":
            out = out / np.maximum(counts, 1)[:, None]
    parents = (w,) if psw is None else (w, psw)

    def bw(g):
        g = contiguous(g)
        if mode == "max":
            gw = np.zeros_like(w.data)
            b_, j_ = np.nonzero((pick < flat.size) & (counts > 0)[:, None])
            np.add.at(gw, (flat[pick[b_, j_]], j_), g[b_, j_])
            return (gw,)
        # mean: each bag's gradient divided once, before it is repeated for the bag's entries
        ge = (g / np.maximum(counts, 1)[:, None] if mode == "mean" else g)[bag]
        gpsw = None
        if psw is not None:
            gpsw = ((ge * w.data[flat]).sum(1) * keep).reshape(idx.shape)
            ge = ge * psw.data.reshape(-1, 1)
        gw = kern.embedding_backward(np.ascontiguousarray(ge, dtype=w.dtype), flat, v, pad)  # native scatter-add
        return (gw,) if psw is None else (gw, gpsw)
    return _result(out.astype(w.dtype), parents, bw)

