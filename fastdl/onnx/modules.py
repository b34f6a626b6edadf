"""ONNX forms of the modules recorded whole: the recurrent layers (ONNX's LSTM/GRU/RNN ops, PyTorch's gate
order mapped to ONNX's) and MultiheadAttention (projections, heads, scaled scores, masks, softmax)."""
from __future__ import annotations

import math

import numpy as np

from ..nn.attention import MultiheadAttention
from ..nn.rnn import RNNBase
from ..tensor import Tensor
from .tracer import ExportError

# PyTorch's gate blocks -> ONNX's: LSTM (i, f, g, o) -> (i, o, f, c); GRU (r, z, n) -> (z, r, h)
_ORDER = {"lstm": [0, 3, 1, 2], "gru": [1, 0, 2]}


def _gates(w, mode):
    order = _ORDER.get(mode)
    if order is None:
        return w
    blocks = np.split(w, len(order), axis=0)
    return np.concatenate([blocks[i] for i in order], axis=0)


def e_rnn(tr, res, module: RNNBase, input, hx=None, lengths=None):
    if lengths is not None or not isinstance(input, Tensor) or input.ndim != 3:
        raise ExportError(f"onnx.export: {type(module).__name__} exports batched tensors without lengths "
                          "(no PackedSequence)")
    mode, H, dirs = module.mode, module.hidden_size, 2 if module.bidirectional else 1
    op = {"lstm": "LSTM", "gru": "GRU"}.get(mode, "RNN")
    x = tr.value(input)
    if module.batch_first:
        x = tr.node("Transpose", [x], perm=[1, 0, 2])
    h0 = c0 = None
    if hx is not None:
        h0, c0 = (hx if mode == "lstm" else (hx, None))
    hs, cs = [], []
    params = module._params()
    for layer in range(module.num_layers):
        ps = params[layer * dirs:(layer + 1) * dirs]
        W = np.stack([_gates(p[0].data, mode) for p in ps])
        R = np.stack([_gates(p[1].data, mode) for p in ps])
        g = W.shape[1]
        B = np.stack([np.concatenate([_gates(p[2].data, mode), _gates(p[3].data, mode)]) if p[2] is not None
                      else np.zeros(2 * g, W.dtype) for p in ps])
        ins = [x, tr.const(W, "W"), tr.const(R, "R"), tr.const(B, "B"), ""]
        for state in (h0, c0) if mode == "lstm" else (h0,):
            if state is None:
                ins.append("")
                continue
            sl = tr.node("Slice", [tr.value(state), tr.ints([layer * dirs], "starts"), tr.ints([(layer + 1) * dirs], "ends"),
                                   tr.ints([0], "axes")])
            ins.append(sl)
        while ins and ins[-1] == "":
            ins.pop()
        attrs = dict(hidden_size=H, direction="bidirectional" if dirs == 2 else "forward")
        if mode == "gru":
            attrs["linear_before_reset"] = 1
        if op == "RNN":
            attrs["activations"] = ["Relu" if mode.endswith("relu") else "Tanh"] * dirs
        outs = tr.node(op, ins, n_out=3 if mode == "lstm" else 2, **attrs)
        y, yh = outs[0], outs[1]
        hs.append(yh)
        if mode == "lstm":
            cs.append(outs[2])
        x = tr.node("Reshape", [tr.node("Transpose", [y], perm=[0, 2, 1, 3]), tr.ints([0, 0, -1])])
    out, state = res
    if module.batch_first:
        x = tr.node("Transpose", [x], perm=[1, 0, 2])
    tr.out(out, x)
    h_n = hs[0] if len(hs) == 1 else tr.node("Concat", hs, axis=0)
    if mode == "lstm":
        c_n = cs[0] if len(cs) == 1 else tr.node("Concat", cs, axis=0)
        return out, (tr.out(state[0], h_n), tr.out(state[1], c_n))
    return out, tr.out(state, h_n)


def _additive(tr, mask, dtype, means_ignore: bool):
    """A mask as an additive float mask value: bool True means "ignore" (``means_ignore``) or "may attend"."""
    if mask is None:
        return None
    traced = tr.traced(mask)
    m = mask if traced else np.asarray(getattr(mask, "data", mask))
    kind = mask.dtype if traced else m.dtype
    if kind == bool:
        ninf, zero = tr.const(np.asarray(-np.inf, dtype)), tr.const(np.asarray(0, dtype))
        mv = tr.value(mask) if traced else tr.const(m, "mask")
        return tr.node("Where", [mv, ninf, zero] if means_ignore else [mv, zero, ninf])
    return tr.value(mask) if traced else tr.const(m.astype(dtype), "mask")


def attention_core(tr, q, k, v, mask=None, is_causal=False, scale=None, mask_name=None):
    """softmax(q k^T * scale + mask) v on (..., L, E) x (..., S, E) values (``q``, ``k``, ``v`` tensors or names)."""
    name = lambda t: t if isinstance(t, str) else tr.value(t)  # noqa: E731
    qt = q if isinstance(q, Tensor) else None
    dtype = qt.dtype if qt is not None else np.float32
    E = qt.shape[-1] if qt is not None else None
    s = scale if scale is not None else 1.0 / math.sqrt(E)
    kt = tr.node("Transpose", [name(k)], perm=list(range(k.ndim - 2)) + [k.ndim - 1, k.ndim - 2])
    scores = tr.node("Mul", [tr.node("MatMul", [name(q), kt]), tr.const(np.asarray(s, dtype), "scale")])
    if mask_name is None and mask is not None:
        mask_name = _additive(tr, mask, dtype, means_ignore=False)
    if is_causal:
        L, S = q.shape[-2], k.shape[-2]
        mask_name = _merge(tr, mask_name, tr.const(np.where(np.tril(np.ones((L, S), bool)), 0, -np.inf).astype(dtype),
                                                   "causal"))
    if mask_name is not None:
        scores = tr.node("Add", [scores, mask_name])
    return tr.node("MatMul", [tr.node("Softmax", [scores], axis=-1), name(v)])


def _merge(tr, a, b):
    return b if a is None else tr.node("Add", [a, b])


def e_mha(tr, res, m: MultiheadAttention, query, key, value, key_padding_mask=None, need_weights=True,
          attn_mask=None, average_attn_weights=True, is_causal=False):
    if m.bias_k is not None or m.add_zero_attn:
        raise ExportError("onnx.export: MultiheadAttention with add_bias_kv or add_zero_attn is not supported")
    if query.ndim != 3:
        raise ExportError("onnx.export: MultiheadAttention exports batched (3-D) inputs")
    E, H = m.embed_dim, m.num_heads
    hd = E // H
    dtype = query.dtype

    def seq_first(t):
        return tr.node("Transpose", [tr.value(t)], perm=[1, 0, 2]) if m.batch_first else tr.value(t)
    qs, ks, vs = seq_first(query), seq_first(key), seq_first(value)
    if m._qkv_same_embed_dim:
        w = m.in_proj_weight.data
        ws = (w[:E], w[E:2 * E], w[2 * E:])
    else:
        ws = (m.q_proj_weight.data, m.k_proj_weight.data, m.v_proj_weight.data)
    b = m.in_proj_bias.data if m.in_proj_bias is not None else None

    def proj(x, i):  # (n, N, E) -> (N, H, n, hd)
        y = tr.node("MatMul", [x, tr.const(np.ascontiguousarray(ws[i].T), "w_proj")])
        if b is not None:
            y = tr.node("Add", [y, tr.const(b[i * E:(i + 1) * E], "b_proj")])
        y = tr.node("Reshape", [y, tr.ints([0, 0, H, hd])])
        return tr.node("Transpose", [y], perm=[1, 2, 0, 3])
    qh, kh, vh = proj(qs, 0), proj(ks, 1), proj(vs, 2)
    mask = None
    if key_padding_mask is not None:
        kpm = _additive(tr, key_padding_mask, dtype, means_ignore=True)
        mask = tr.node("Unsqueeze", [kpm, tr.ints([1, 2], "axes")])
    if attn_mask is not None:
        am = _additive(tr, attn_mask, dtype, means_ignore=True)
        shape = attn_mask.shape
        if len(shape) == 3:
            am = tr.node("Reshape", [am, tr.ints([-1, H, shape[1], shape[2]])])
        mask = _merge(tr, mask, am)
    causal = bool(is_causal) and attn_mask is None
    L, S = query.shape[1 if m.batch_first else 0], key.shape[1 if m.batch_first else 0]
    kt = tr.node("Transpose", [kh], perm=[0, 1, 3, 2])
    scores = tr.node("Mul", [tr.node("MatMul", [qh, kt]), tr.const(np.asarray(1.0 / math.sqrt(hd), dtype), "scale")])
    if causal:
        mask = _merge(tr, mask, tr.const(np.where(np.tril(np.ones((L, S), bool)), 0, -np.inf).astype(dtype), "causal"))
    if mask is not None:
        scores = tr.node("Add", [scores, mask])
    weights = tr.node("Softmax", [scores], axis=-1)
    o = tr.node("MatMul", [weights, vh])  # (N, H, L, hd)
    o = tr.node("Reshape", [tr.node("Transpose", [o], perm=[2, 0, 1, 3]), tr.ints([0, 0, E])])  # (L, N, E)
    o = tr.node("MatMul", [o, tr.const(np.ascontiguousarray(m.out_proj.weight.data.T), "w_out")])
    if m.out_proj.bias is not None:
        o = tr.node("Add", [o, tr.value(m.out_proj.bias)])
    if m.batch_first:
        o = tr.node("Transpose", [o], perm=[1, 0, 2])
    out, w = res
    tr.out(out, o)
    if w is not None:
        wn = tr.node("ReduceMean", [weights], axes=[1], keepdims=0) if average_attn_weights and tr.opset < 18 else \
            (tr.node("ReduceMean", [weights, tr.ints([1], "axes")], keepdims=0) if average_attn_weights else weights)
        w = tr.out(w, wn)
    return out, w


MODULES = [(RNNBase, e_rnn), (MultiheadAttention, e_mha)]
