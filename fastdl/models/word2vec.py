"""word2vec's objective as a network: two embedding tables and the library's masked
binary cross-entropy, trained by autograd and an optimizer.

The native trainer (``text.Word2Vec``) optimises the same loss: for an input vector h (one context
word's row of ``in_embed`` for skip-gram, the mean of the context rows for CBOW) and targets t_0 (the
word) and t_1..t_k (noise words), ``-log sigmoid(h . u_t0) - sum_k log sigmoid(-h . u_tk)`` with u the
rows of ``out_embed``; the trainer takes one SGD step per example, this model a step per batch.
``fastdl.reference.wordvec.word2vec_examples`` lists the trainer's examples for a corpus, so both
compute the same loss on the same samples (tests/test_wordvec.py checks it).
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn

__all__ = ["SkipGramNegativeSampling", "batch_examples"]


class SkipGramNegativeSampling(nn.Module):
    """``in_embed`` (the word vectors, word2vec's syn0) and ``out_embed`` (syn1neg), both
    (num_words, dim); initialised as word2vec does (inputs uniform in [-0.5, 0.5) / dim, outputs 0)."""

    def __init__(self, num_words: int, dim: int, seed=None):
        super().__init__()
        self.in_embed = nn.Embedding(num_words, dim)
        self.out_embed = nn.Embedding(num_words, dim)
        rng = np.random.default_rng(seed)
        self.in_embed.weight.data[...] = (rng.random((num_words, dim)) - 0.5) / dim
        self.out_embed.weight.data[...] = 0

    def forward(self, inputs, input_mask, targets, target_mask):
        """inputs (N, C) word indices with input_mask (N, C) (the valid ones: one for skip-gram, the
        context for CBOW, averaged); targets (N, K) with target_mask (N, K), column 0 the word,
        the rest noise.  Returns the summed loss over the valid targets."""
        im = np.asarray(input_mask, dtype=np.float32)
        count = im.sum(axis=1, keepdims=True)
        if np.any(count == 0):
            raise ValueError("SkipGramNegativeSampling: every example needs at least one input word")
        h = (self.in_embed(inputs) * (im / count)[:, :, None]).sum(axis=1)            # (N, D)
        u = self.out_embed(targets)                                                     # (N, K, D)
        logits = (u * h.reshape(h.shape[0], 1, h.shape[1])).sum(axis=2)                 # (N, K)
        labels = np.zeros(logits.shape, np.float32)
        labels[:, 0] = 1
        return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum", mask=target_mask)


def batch_examples(examples):
    """(inputs, input_mask, targets, target_mask) arrays, padded, from a list of (input words,
    targets) pairs as ``reference.wordvec.word2vec_examples`` returns them."""
    n = len(examples)
    c = max(len(e[0]) for e in examples)
    k = max(len(e[1]) for e in examples)
    inputs, im = np.zeros((n, c), np.int64), np.zeros((n, c), bool)
    targets, tm = np.zeros((n, k), np.int64), np.zeros((n, k), bool)
    for r, (ins, ts) in enumerate(examples):
        inputs[r, :len(ins)], im[r, :len(ins)] = ins, True
        targets[r, :len(ts)], tm[r, :len(ts)] = ts, True
    return inputs, im, targets, tm
