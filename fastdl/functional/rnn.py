"""Recurrent layers over whole sequences, and embeddings (native kernels).

``rnn_layer`` runs one layer in one direction: the native kernel does the
input projection for every step as one GEMM and then, per step, one GEMM for
the hidden path and one fused pass over the gates; backward is BPTT in one
call.  ``rnn`` stacks layers and directions as PyTorch's nn.RNN/GRU/LSTM.
"""
from __future__ import annotations

import numpy as np

from .. import backend
from ..autograd import is_grad_enabled
from ..tensor import Tensor, _result, _results, as_tensor, contiguous
from .basic import cat, cross_entropy, dropout, stack

__all__ = ["rnn_layer", "rnn", "embedding", "sequence_mask", "sequence_cross_entropy"]

MODES = ("rnn_tanh", "rnn_relu", "gru", "lstm")


def rnn_layer(mode: str, x, h0, c0, w_ih, w_hh, b_ih=None, b_hh=None, lengths=None, reverse: bool = False):
    """x (T, B, I), h0/c0 (B, H) -> out (T, B, H), h_n (B, H), c_n (B, H) or None (LSTM only).

    Steps t >= lengths[b] leave sequence b's state unchanged, output 0 and get no gradient.
    """
    layer = _Layer(mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse)
    return layer.finish(layer.kern.rnn_forward(mode, layer.x.data, *layer.arrays(), layer.ln, layer.reverse,
                                               layer.save))


class _Layer:
    """One layer and direction: its arguments checked and converted, the kernel chosen, and (finish)
    the autograd node over the kernel's results."""

    def __init__(self, mode, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, reverse):
        if mode not in MODES:
            raise ValueError(f"rnn: mode must be one of {MODES}, got {mode!r}")
        if (b_ih is None) != (b_hh is None):
            raise ValueError("rnn_layer: give both b_ih and b_hh, or neither")
        self.mode, self.reverse, self.lstm = mode, bool(reverse), mode == "lstm"
        self.x, self.h0, self.w_ih, self.w_hh = as_tensor(x), as_tensor(h0), as_tensor(w_ih), as_tensor(w_hh)
        self.c0 = as_tensor(c0) if c0 is not None else None
        self.b_ih = as_tensor(b_ih) if b_ih is not None else None
        self.b_hh = as_tensor(b_hh) if b_hh is not None else None
        self.ln = None if lengths is None else np.ascontiguousarray(np.asarray(lengths, dtype=np.int64))
        self.kern = backend.ops(self.x.data)
        self.parents = ([self.x, self.h0, self.w_ih, self.w_hh] + ([self.c0] if self.lstm else [])
                        + ([self.b_ih, self.b_hh] if self.b_ih is not None else []))
        # else nothing is kept for backward
        self.save = is_grad_enabled() and any(p.requires_grad for p in self.parents)

    def arrays(self):
        """(hx, cx, weight_ih, weight_hh, bias_ih, bias_hh) for the kernel."""
        raw = lambda t: None if t is None else t.data  # noqa: E731
        return (self.h0.data, raw(self.c0), self.w_ih.data, self.w_hh.data, raw(self.b_ih), raw(self.b_hh))

    def finish(self, results):
        out, hn, cn, gates, cells, hnl = results
        mode, lstm, kern, ln, reverse = self.mode, self.lstm, self.kern, self.ln, self.reverse
        x, h0, c0, w_ih, w_hh, b_ih, b_hh = self.x, self.h0, self.c0, self.w_ih, self.w_hh, self.b_ih, self.b_hh
        arrays = self.arrays()

        def bw(grads):
            dout, dhn = (None if g is None else contiguous(g) for g in grads[:2])
            dcn = contiguous(grads[2]) if lstm and grads[2] is not None else None
            need_w = w_ih.requires_grad or w_hh.requires_grad or (b_ih is not None and b_ih.requires_grad)
            dx, dh0, dc0, dwi, dwh, dbi, dbh = kern.rnn_backward(
                mode, dout, dhn, dcn, x.data, *arrays, out, gates, cells, hnl, ln, reverse, x.requires_grad,
                h0.requires_grad or (lstm and c0.requires_grad), need_w)
            return tuple([dx, dh0, dwi, dwh] + ([dc0] if lstm else []) + ([dbi, dbh] if b_ih is not None else []))
        if lstm:
            return _results((out, hn, cn), tuple(self.parents), bw)
        o, h = _results((out, hn), tuple(self.parents), bw)
        return o, h, None


def _directions(mode, x, layers):
    """Both directions of a layer over the same input: one kernel call that runs them side by side
    when the kernel table has it (the native one: a thread each), else one call each."""
    kern = layers[0].kern
    both = getattr(kern, "rnn_forward_dirs", None)
    if both is None or len(layers) == 1 or any(la.kern is not kern for la in layers):
        return [la.finish(kern.rnn_forward(mode, x.data, *la.arrays(), la.ln, la.reverse, la.save)) for la in layers]
    save = any(la.save for la in layers)
    results = both(mode, x.data, [la.arrays() + (la.reverse,) for la in layers], layers[0].ln, save)
    return [la.finish(r) for la, r in zip(layers, results)]


def rnn(mode: str, input, hx, params, num_layers: int = 1, bidirectional: bool = False, batch_first: bool = False,
        dropout_p: float = 0.0, training: bool = True, lengths=None):
    """Stacked (and bidirectional) recurrent network, PyTorch layouts.

    params: per layer and direction, (w_ih, w_hh, b_ih, b_hh) in PyTorch's order
    (layer 0 forward, layer 0 reverse, layer 1 forward, ...).  hx: h0 (L*D, B, H),
    or (h0, c0) for an LSTM, or None for zeros.  Returns output (T, B, D*H)
    (batch-first if asked) and h_n (L*D, B, H) (and c_n).
    """
    x = as_tensor(input)
    if x.ndim != 3:
        raise ValueError(f"rnn: input must be (T, B, F) (or (B, T, F) with batch_first), got shape {x.shape}")
    if batch_first:
        x = x.transpose(1, 0, 2)
    dirs = 2 if bidirectional else 1
    B = x.shape[1]
    H = as_tensor(params[0][1]).shape[1]
    lstm = mode == "lstm"
    if hx is None:
        xp = backend.array_namespace(x.data)
        z = xp.zeros((num_layers * dirs, B, H), dtype=backend.xp_dtype(xp, x.dtype))
        h0, c0 = Tensor(z), (Tensor(xp.zeros_like(z)) if lstm else None)
    elif lstm:
        h0, c0 = as_tensor(hx[0]), as_tensor(hx[1])
    else:
        h0, c0 = as_tensor(hx), None
    for t, name in ((h0, "h0"), (c0, "c0")):
        if t is not None and t.shape != (num_layers * dirs, B, H):
            raise ValueError(f"rnn: {name} has shape {t.shape}, expected {(num_layers * dirs, B, H)}")
    hs, cs = [], []
    layer_in = x
    for layer in range(num_layers):
        outs = []
        layers = [_Layer(mode, layer_in, h0[k], None if c0 is None else c0[k], *params[k], lengths, d == 1)
                  for d, k in ((d, layer * dirs + d) for d in range(dirs))]
        for o, h, c in _directions(mode, layer_in, layers):
            outs.append(o)
            hs.append(h)
            cs.append(c)
        layer_in = outs[0] if dirs == 1 else cat(outs, axis=2)
        if dropout_p > 0 and training and layer < num_layers - 1:
            layer_in = dropout(layer_in, dropout_p, True)
    out = layer_in.transpose(1, 0, 2) if batch_first else layer_in
    # (one layer and direction: h_n is its state with a leading axis of one, a view instead of a copy)
    h_n = hs[0].unsqueeze(0) if len(hs) == 1 else stack(hs, axis=0)
    if not lstm:
        return out, h_n
    return out, (h_n, cs[0].unsqueeze(0) if len(cs) == 1 else stack(cs, axis=0))


def embedding(indices, weight, padding_idx=None) -> Tensor:
    """weight (V, D)[indices]; the gradient is scattered (summed) back to the rows used, except padding_idx."""
    w = as_tensor(weight)
    idx = indices.data if isinstance(indices, Tensor) else indices
    idx = idx if backend.on_device(idx) else np.asarray(idx)
    kern = backend.ops(w.data)
    y = kern.embedding_forward(w.data, idx)
    v = w.shape[0]
    pad = -1 if padding_idx is None else (padding_idx % v)
    return _result(y, (w,), lambda g: (kern.embedding_backward(contiguous(g), idx, v, pad),))


def sequence_mask(lengths, max_len: int | None = None) -> np.ndarray:
    """(B, T) boolean: True at t < lengths[b]."""
    ln = np.asarray(lengths)
    t = int(ln.max()) if max_len is None else max_len
    return np.arange(t)[None, :] < ln[:, None]


def sequence_cross_entropy(logits, targets, lengths=None, ignore_index: int = -100) -> Tensor:
    """Per-token cross-entropy of (B, T, C) logits against (B, T) targets, averaged over the real
    tokens only: positions t >= lengths[b] (and targets equal to ``ignore_index``) count for nothing."""
    x = as_tensor(logits)
    t = np.array(targets.data if isinstance(targets, Tensor) else targets, dtype=np.int64)
    if x.ndim != 3 or t.shape != x.shape[:2]:
        raise ValueError(f"sequence_cross_entropy: expected logits (B, T, C) and targets (B, T), got {x.shape} "
                         f"and {t.shape}")
    if lengths is not None:
        t[~sequence_mask(lengths, t.shape[1])] = ignore_index
    return cross_entropy(x.reshape(-1, x.shape[2]), t.reshape(-1), ignore_index=ignore_index)
