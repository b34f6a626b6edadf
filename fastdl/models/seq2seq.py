"""Sequence to sequence with attention (Bahdanau et al., 2015): a bidirectional LSTM encoder, an
LSTM decoder that attends over the encoder's outputs at every step, teacher forcing in training,
greedy and beam decoding."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn
from ..autograd import no_grad
from ..tensor import Tensor
from ..text import beam_search


class Seq2Seq(nn.Module):
    """Encoder-decoder with additive attention.

    Encoder: embedding, then a bidirectional LSTM over the (padded) source.  Decoder step i: the
    attention of the previous state s_{i-1} over the encoder outputs gives a context c_i; an
    LSTMCell reads [embedding of y_{i-1}; c_i]; the logits come from [s_i; c_i].  The decoder state
    starts from tanh(Linear) of the encoder's final forward and backward states.
    """

    def __init__(self, src_vocab_size: int, tgt_vocab_size: int, embed_dim: int = 32, enc_hidden: int = 64,
                 dec_hidden: int = 128, attn_dim: int = 64, pad_id: int = 0, dtype=np.float32):
        super().__init__()
        for name, v in (("src_vocab_size", src_vocab_size), ("tgt_vocab_size", tgt_vocab_size),
                        ("embed_dim", embed_dim), ("enc_hidden", enc_hidden), ("dec_hidden", dec_hidden),
                        ("attn_dim", attn_dim)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"Seq2Seq: {name} must be a positive integer, got {v!r}")
        self.pad_id = int(pad_id)
        self.src_embed = nn.Embedding(src_vocab_size, embed_dim, padding_idx=pad_id, dtype=dtype)
        self.encoder = nn.LSTM(embed_dim, enc_hidden, bidirectional=True, batch_first=True, dtype=dtype)
        self.init_h = nn.Linear(2 * enc_hidden, dec_hidden, dtype=dtype)
        self.init_c = nn.Linear(2 * enc_hidden, dec_hidden, dtype=dtype)
        self.tgt_embed = nn.Embedding(tgt_vocab_size, embed_dim, dtype=dtype)
        self.attention = nn.AdditiveAttention(dec_hidden, 2 * enc_hidden, attn_dim, dtype=dtype)
        self.cell = nn.LSTMCell(embed_dim + 2 * enc_hidden, dec_hidden, dtype=dtype)
        self.out = nn.Linear(dec_hidden + 2 * enc_hidden, tgt_vocab_size, dtype=dtype)

    def encode(self, src, lengths):
        """src (N, S) token ids padded with pad_id, lengths (N,) -> the decoder's memory:
        (outputs (N, S, 2H), padding mask (N, S) True = pad, projected keys, h0, c0)."""
        src = np.asarray(src, dtype=np.int64)
        lengths = np.asarray(lengths, dtype=np.int64)
        if src.ndim != 2 or lengths.shape != (src.shape[0],):
            raise ValueError(f"Seq2Seq: src must be (N, S) and lengths (N,), got {src.shape} and {lengths.shape}")
        if np.any(lengths < 1) or np.any(lengths > src.shape[1]):
            raise ValueError(f"Seq2Seq: lengths must be in [1, {src.shape[1]}], got {lengths.tolist()}")
        out, (hn, _) = self.encoder(self.src_embed(src), lengths=lengths)
        last = F.cat([hn[0], hn[1]], axis=1)  # final forward and backward states (N, 2H)
        h0, c0 = self.init_h(last).tanh(), self.init_c(last).tanh()
        pad = np.arange(src.shape[1])[None, :] >= lengths[:, None]
        return out, pad, self.attention.project_keys(out), h0, c0

    def step(self, y_prev, h, c, memory, pad, keys):
        """One decoder step: previous tokens (N,) -> (logits (N, V), h, c, attention weights (N, S))."""
        ctx, w = self.attention(h, memory, key_padding_mask=pad, projected_keys=keys)
        h, c = self.cell(F.cat([self.tgt_embed(np.asarray(y_prev, dtype=np.int64)), ctx], axis=1), (h, c))
        return self.out(F.cat([h, ctx], axis=1)), h, c, w

    def forward(self, src, lengths, tgt_in):
        """Teacher forcing: tgt_in (N, T) starts with BOS; returns logits (N, T, V) for tgt_in shifted by one."""
        tgt_in = np.asarray(tgt_in, dtype=np.int64)
        memory, pad, keys, h, c = self.encode(src, lengths)
        logits = []
        for t in range(tgt_in.shape[1]):
            lg, h, c, _ = self.step(tgt_in[:, t], h, c, memory, pad, keys)
            logits.append(lg)
        return F.stack(logits, axis=1)

    def loss(self, src, lengths, tgt_in, tgt_out) -> Tensor:
        """Mean cross-entropy of the next tokens (pad_id targets ignored)."""
        logits = self(src, lengths, tgt_in)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), np.asarray(tgt_out).reshape(-1),
                               ignore_index=self.pad_id)

    def greedy(self, src, lengths, bos: int, eos: int, max_len: int):
        """The most likely next token at every step: (tokens (N, max_len), weights (N, max_len, S))."""
        with no_grad():
            memory, pad, keys, h, c = self.encode(src, lengths)
            y = np.full(len(lengths), bos, np.int64)
            toks, ws = [], []
            for _ in range(max_len):
                lg, h, c, w = self.step(y, h, c, memory, pad, keys)
                y = lg.numpy().argmax(axis=1)
                toks.append(y)
                ws.append(w.numpy())
        return np.stack(toks, axis=1), np.stack(ws, axis=1)

    def beam(self, src_ids, bos: int, eos: int, beam_width: int = 5, max_len: int = 20, length_penalty: float = 0.0,
             n_best: int = 1):
        """Beam search for one source sequence (a list of ids): ``text.beam_search``'s n-best list."""
        src = np.asarray(src_ids, dtype=np.int64)[None, :]
        with no_grad():
            memory, pad, keys, h, c = self.encode(src, [src.shape[1]])

            def step_fn(tokens, state):
                h, c, memory, pad, keys = state
                lg, h, c, _ = self.step(tokens, h, c, memory, pad, keys)
                return F.log_softmax(lg, axis=1).numpy(), (h, c, memory, pad, keys)
            state = (h, c, memory, pad, keys)
            return beam_search(step_fn, state, bos, eos, beam_width, max_len, length_penalty, n_best)


