"""Attention layers with PyTorch's names and layouts: ``MultiheadAttention`` (state dicts load
both ways) and ``AdditiveAttention`` (Bahdanau)."""
from __future__ import annotations

import math

import numpy as np

from .. import backend
from .. import functional as F
from .. import init
from ..shapes import float_arg, int_arg, want_memory
from ..tensor import Tensor, _results, as_tensor
from .layers import Linear
from .module import Module, Parameter


class MultiheadAttention(Module):
    """Multi-head attention as ``torch.nn.MultiheadAttention``.

    Parameters: ``in_proj_weight`` (3E, E) and ``in_proj_bias`` (3E,), or ``q_proj_weight``,
    ``k_proj_weight``, ``v_proj_weight`` when ``kdim``/``vdim`` differ from E; ``out_proj``
    (Linear E -> E); ``bias_k``, ``bias_v`` (1, 1, E) with ``add_bias_kv``.  Masks mean what they
    mean in PyTorch: ``key_padding_mask`` (N, S) True = ignore that key; a boolean ``attn_mask``
    (L, S) or (N*heads, L, S) True = may NOT attend; float masks are added to the scores.  A query
    that may attend to nothing gets zeros (PyTorch: NaN).
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, dtype=np.float32):
        super().__init__()
        cls = "MultiheadAttention"
        self.embed_dim = int_arg(embed_dim, "embed_dim", cls, 1)
        self.num_heads = int_arg(num_heads, "num_heads", cls, 1)
        if self.embed_dim % self.num_heads:
            raise ValueError(f"{cls}: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        dropout = float_arg(dropout, "dropout", cls, 0.0, 1.0, hi_open=True)
        E = self.embed_dim
        want_memory(4 * E * E, np.dtype(dtype).itemsize, cls, "the weights")
        self.kdim = E if kdim is None else int_arg(kdim, "kdim", cls, 1)
        self.vdim = E if vdim is None else int_arg(vdim, "vdim", cls, 1)
        self._qkv_same_embed_dim = self.kdim == E and self.vdim == E
        self.dropout, self.batch_first, self.head_dim = float(dropout), bool(batch_first), E // self.num_heads
        self.add_zero_attn = bool(add_zero_attn)
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * E, E), dtype))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.register_parameter("in_proj_weight", None)
            self.q_proj_weight = Parameter(np.empty((E, E), dtype))
            self.k_proj_weight = Parameter(np.empty((E, self.kdim), dtype))
            self.v_proj_weight = Parameter(np.empty((E, self.vdim), dtype))
        if bias:
            self.in_proj_bias = Parameter(np.zeros(3 * E, dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(E, E, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(np.empty((1, 1, E), dtype))
            self.bias_v = Parameter(np.empty((1, 1, E), dtype))
        else:
            self.bias_k = self.bias_v = None
        self._reset_parameters()

    def _reset_parameters(self):  # as PyTorch: Glorot-uniform projections, zero biases
        if self._qkv_same_embed_dim:
            init.glorot_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.glorot_uniform_(w)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.glorot_normal_(self.bias_k)
            init.glorot_normal_(self.bias_v)

    def _project(self, query, key, value):
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else (b[:E], b[E:2 * E], b[2 * E:])
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            wq, wk, wv = w[:E], w[E:2 * E], w[2 * E:]
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return F.linear(query, wq, bq), F.linear(key, wk, bk), F.linear(value, wv, bv)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        cls = "MultiheadAttention"
        self_attention = query is key and key is value
        q, k, v = as_tensor(query), as_tensor(key), as_tensor(value)
        batched = q.ndim == 3
        if q.ndim not in (2, 3) or k.ndim != q.ndim or v.ndim != q.ndim:
            raise ValueError(f"{cls}: query, key and value must all be 3-D (batched) or 2-D (unbatched), got "
                             f"shapes {q.shape}, {k.shape}, {v.shape}")
        if not batched:  # (L, E) -> (L, 1, E) in the sequence-first layout
            q, k, v = (t.reshape(t.shape[0], 1, t.shape[1]) for t in (q, k, v))
            if key_padding_mask is not None:
                key_padding_mask = np.asarray(getattr(key_padding_mask, "data", key_padding_mask))[None]
        bf = batched and self.batch_first  # the work stays in the caller's layout: no transposed copies
        seq, bat = (1, 0) if bf else (0, 1)
        L, N, E, S = q.shape[seq], q.shape[bat], q.shape[2], k.shape[seq]
        if E != self.embed_dim:
            raise ValueError(f"{cls}: query has {E} features, expected embed_dim={self.embed_dim}")
        if k.shape[2] != self.kdim or v.shape[2] != self.vdim:
            raise ValueError(f"{cls}: key and value must have kdim={self.kdim} and vdim={self.vdim} features, got "
                             f"{k.shape[2]} and {v.shape[2]}")
        if k.shape[:2] != v.shape[:2] or k.shape[bat] != N:
            raise ValueError(f"{cls}: key {k.shape} and value {v.shape} must match each other and query's batch {N}")
        H, hd = self.num_heads, self.head_dim
        mask = self._merged_mask(key_padding_mask, attn_mask, N, L, S, q.dtype)

        def heads(t, n):  # (N, n, E) or (n, N, E) -> (N, H, n, hd)
            return t.reshape(N, n, H, hd).transpose(0, 2, 1, 3) if bf else t.reshape(n, N, H, hd).transpose(1, 2, 0, 3)
        if self_attention and self._qkv_same_embed_dim and self.bias_k is None:
            # one projection for q, k and v, split into heads by one copy
            qkv = F.linear(q, self.in_proj_weight, self.in_proj_bias).reshape(q.shape[0], q.shape[1], 3, H, hd)
            qh, kh, vh = _split3(qkv.transpose(2, 0, 3, 1, 4) if bf else qkv.transpose(2, 1, 3, 0, 4))
        else:
            qp, kp, vp = self._project(q, k, v)
            if self.bias_k is not None:
                one = np.ones((N, 1, 1) if bf else (1, N, 1), q.dtype)
                kp = F.cat([kp, self.bias_k.reshape(1, 1, E) * one], axis=seq)
                vp = F.cat([vp, self.bias_v.reshape(1, 1, E) * one], axis=seq)
                mask = None if mask is None else np.concatenate([mask, np.zeros(mask.shape[:-1] + (1,), mask.dtype)],
                                                                -1)
                S += 1
            qh, kh, vh = heads(qp, L), heads(kp, S), heads(vp, S)
        if self.add_zero_attn:
            z = np.zeros((N, H, 1, hd), q.dtype)
            kh, vh = F.cat([kh, z], axis=2), F.cat([vh, z], axis=2)
            mask = None if mask is None else np.concatenate([mask, np.zeros(mask.shape[:-1] + (1,), mask.dtype)], -1)
            S += 1
        causal = bool(is_causal) and attn_mask is None
        p = self.dropout if self.training else 0.0
        weights = None
        if need_weights:
            if causal:
                cm = np.where(np.tril(np.ones((L, S), bool)), 0, -np.inf).astype(q.dtype)
                mask = cm if mask is None else mask + cm
            scores = (qh * q.dtype.type(1.0 / math.sqrt(hd))) @ kh.transpose(0, 1, 3, 2)
            keep = None
            if mask is not None:
                keep = mask > -np.inf
                scores = scores + np.where(keep, mask, 0).astype(q.dtype)
            weights = F.masked_softmax(scores, keep)
            if p > 0:
                weights = F.dropout(weights, p)
            out = weights @ vh
            weights = weights.mean(axis=1) if average_attn_weights else weights
        else:
            out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, dropout_p=p, is_causal=causal)
        out = out.transpose(0, 2, 1, 3).reshape(N, L, E) if bf else out.transpose(2, 0, 1, 3).reshape(L, N, E)
        out = self.out_proj(out)
        if not batched:
            return out.reshape(L, E), (None if weights is None else weights.reshape(weights.shape[1:]))
        return out, weights

    def _merged_mask(self, key_padding_mask, attn_mask, N, L, S, dtype):
        """key_padding_mask and attn_mask as one additive mask broadcastable to (N, H, L, S), or None."""
        cls = "MultiheadAttention"
        mask = None
        if key_padding_mask is not None:
            m = F.additive_mask(key_padding_mask, dtype, fn=f"{cls}: key_padding_mask", allowed_means="ignore")
            if m.shape != (N, S):
                raise ValueError(f"{cls}: key_padding_mask must have shape (N, S) = {(N, S)}, got {m.shape}")
            mask = m.reshape(N, 1, 1, S)
        if attn_mask is not None:
            m = F.additive_mask(attn_mask, dtype, fn=f"{cls}: attn_mask", allowed_means="ignore")
            if m.shape == (L, S):
                m = m.reshape(1, 1, L, S)
            elif m.shape == (N * self.num_heads, L, S):
                m = m.reshape(N, self.num_heads, L, S)
            else:
                raise ValueError(f"{cls}: attn_mask must have shape (L, S) = {(L, S)} or (N*num_heads, L, S) = "
                                 f"{(N * self.num_heads, L, S)}, got {m.shape}")
            mask = m if mask is None else mask + m
        return mask

    def extra_repr(self):
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}, " \
               f"batch_first={self.batch_first}"


def _split3(t: Tensor):
    """The three slices of t along axis 0 as three outputs of one node (backward stacks the gradients
    back, zeros for an unused one, instead of three scatters into full-size zeros)."""
    d = t.data
    xp = backend.array_namespace(d)

    def bw(grads):
        return (xp.stack([xp.zeros_like(d[0, ...]) if g is None else g for g in grads]),)
    return _results((d[0, ...], d[1, ...], d[2, ...]), (t,), bw)


class AdditiveAttention(Module):
    """Bahdanau attention: score(q, k_j) = v^T tanh(W_q q + W_k k_j), softmax over the keys.

    ``forward(query (N, Dq) or (N, L, Dq), keys (N, S, Dk), values=None (the keys), key_padding_mask
    (N, S) True = ignore)`` returns ``(context, weights)``: (N, Dv) and (N, S) for one query per
    sequence, (N, L, Dv) and (N, L, S) for L.  The scores are one fused native op.
    Parameters: ``query_proj`` (Linear Dq -> H, no bias), ``key_proj`` (Linear Dk -> H), ``v`` (H,).
    """

    def __init__(self, query_dim, key_dim, hidden_dim, dtype=np.float32):
        super().__init__()
        cls = "AdditiveAttention"
        self.query_dim = int_arg(query_dim, "query_dim", cls, 1)
        self.key_dim = int_arg(key_dim, "key_dim", cls, 1)
        self.hidden_dim = int_arg(hidden_dim, "hidden_dim", cls, 1)
        want_memory(self.hidden_dim * (self.query_dim + self.key_dim + 2), np.dtype(dtype).itemsize, cls, "the weights")
        self.query_proj = Linear(self.query_dim, self.hidden_dim, bias=False, dtype=dtype)
        self.key_proj = Linear(self.key_dim, self.hidden_dim, dtype=dtype)
        self.v = Parameter(np.empty(self.hidden_dim, dtype))
        init.uniform_(self.v, -1.0 / math.sqrt(self.hidden_dim), 1.0 / math.sqrt(self.hidden_dim))

    def project_keys(self, keys) -> Tensor:
        """W_k keys, to pass as ``projected_keys`` when the same keys serve many queries (a decoder)."""
        return self.key_proj(keys)

    def forward(self, query, keys, values=None, key_padding_mask=None, projected_keys=None):
        cls = "AdditiveAttention"
        q, k = as_tensor(query), as_tensor(keys)
        vals = k if values is None else as_tensor(values)
        if k.ndim != 3 or q.ndim not in (2, 3) or q.shape[0] != k.shape[0]:
            raise ValueError(f"{cls}: query must be (N, Dq) or (N, L, Dq) and keys (N, S, Dk) with the same N, got "
                             f"{q.shape} and {k.shape}")
        if vals.ndim != 3 or vals.shape[:2] != k.shape[:2]:
            raise ValueError(f"{cls}: values must be (N, S, Dv) with keys' N and S {k.shape[:2]}, got {vals.shape}")
        kp = self.project_keys(k) if projected_keys is None else as_tensor(projected_keys)
        scores = F.additive_attention(self.query_proj(q), kp, self.v)
        keep = None
        if key_padding_mask is not None:
            m = np.asarray(getattr(key_padding_mask, "data", key_padding_mask))
            if m.dtype != np.bool_ or m.shape != k.shape[:2]:
                raise ValueError(f"{cls}: key_padding_mask must be boolean (N, S) = {k.shape[:2]}, got "
                                 f"{m.dtype} {m.shape}")
            keep = ~m if q.ndim == 2 else ~m[:, None, :]
        weights = F.masked_softmax(scores, keep)
        if q.ndim == 2:
            return (weights.reshape(weights.shape[0], 1, weights.shape[1]) @ vals).reshape(vals.shape[0], -1), weights
        return weights @ vals, weights

    def extra_repr(self):
        return f"query_dim={self.query_dim}, key_dim={self.key_dim}, hidden_dim={self.hidden_dim}"
