"""GloVe (Pennington, Socher and Manning, 2014): global co-occurrence counts, then weighted least
squares ``sum f(X_ij) (w_i . w~_j + b_i + b~_j - log X_ij)^2`` by AdaGrad, trained natively.

Memory: the co-occurrence counter uses a dense table of at most ``dense_entries`` doubles for
pairs of frequent words (8 bytes each, 128 MiB by default) and 12 bytes per distinct remaining pair,
with a merge buffer of ``buffer_entries`` triples (48 MiB by default); at the peak of the final
merge the sparse pairs are held twice.  Training then holds 16 bytes per non-zero entry (row,
column, log X, weight) and 4 * (4D + 4) bytes per word.  The number of distinct pairs grows with the
corpus and the window, and is bounded by V^2; for 10M tokens of English with V = 100k and window 10
it is some tens of millions (bench/bench_word2vec.py measures it on a synthetic corpus).
"""
from __future__ import annotations

import time

import numpy as np

from ..progress import progress_bar
from .corpus import encode_corpus, word_vocab
from .keyedvectors import KeyedVectors
from .word2vec import _int, _num, _workers

__all__ = ["GloVe", "prepare_cooccurrences"]


def prepare_cooccurrences(rows, cols, x, x_max, alpha, seed):
    """The training arrays (rows, cols, log X, f(X)), shuffled once with ``seed``; the inputs are
    consumed one at a time so that the peak is about 24 bytes per entry."""
    n = len(x)
    perm = np.random.default_rng([seed, 1]).permutation(n)
    if n < 2**31:
        perm = perm.astype(np.int32)
    rows = rows[perm]
    cols = cols[perm]
    x = x[perm]
    del perm
    logx = np.log(x)
    fx = np.minimum(np.float32(1), (x / np.float32(x_max)) ** np.float32(alpha)).astype(np.float32)
    return rows, cols, logx.astype(np.float32, copy=False), fx


class GloVe:
    """GloVe word vectors.  ``corpus``: a file path or a re-iterable of token lists; given, the
    model counts co-occurrences and trains at once.  ``window`` words on each side (``symmetric``)
    weighted 1/distance; f(x) = min(1, (x / x_max)^alpha); AdaGrad with ``learning_rate``; the
    vectors in ``wv`` are W + W~ (``combine="sum"``, the paper's choice) or W alone (``"word"``).
    ``loss_history``: the mean weighted squared error per entry, per epoch."""

    def __init__(self, corpus=None, vector_size: int = 100, window: int = 10, x_max: float = 100.0,
                 alpha: float = 0.75, epochs: int = 25, learning_rate: float = 0.05, workers=None, seed: int = 0,
                 min_count: int = 5, max_vocab_size=None, symmetric: bool = True, combine: str = "sum",
                 progress=None, dense_entries: int = 1 << 24, buffer_entries: int = 1 << 22):
        fn = "GloVe"
        self.vector_size = _int(vector_size, "vector_size", 1, fn)
        self.window = _int(window, "window", 1, fn)
        self.x_max = _num(x_max, "x_max", fn=fn, strict=True)
        self.alpha = _num(alpha, "alpha", fn=fn)
        self.epochs = _int(epochs, "epochs", 1, fn)
        self.learning_rate = _num(learning_rate, "learning_rate", fn=fn, strict=True)
        self.workers = _workers(workers, fn)
        self.seed = _int(seed, "seed", 0, fn)
        self.min_count = _int(min_count, "min_count", 1, fn)
        self.max_vocab_size = None if max_vocab_size is None else _int(max_vocab_size, "max_vocab_size", 1, fn)
        self.symmetric = bool(symmetric)
        if combine not in ("sum", "word"):
            raise ValueError(f"{fn}: combine must be 'sum' (W + W~) or 'word' (W), got {combine!r}")
        self.combine = combine
        self.progress = progress
        self.dense_entries = _int(dense_entries, "dense_entries", 0, fn)
        self.buffer_entries = _int(buffer_entries, "buffer_entries", 1, fn)
        self.vocab = None
        self.wv = None
        self.cooccurrences = None
        self.loss_history = []
        self.cooccur_seconds = 0.0
        self.train_seconds = 0.0
        self.epochs_trained = 0
        if corpus is not None:
            self.build_vocab(corpus)
            self.count(corpus)
            self.train()

    def build_vocab(self, corpus) -> "GloVe":
        """Count the words (streamed); keep those seen ``min_count`` times, most frequent first."""
        fn = "GloVe.build_vocab"
        vocab = word_vocab(corpus, self.min_count, self.max_vocab_size, fn)
        self.vocab = vocab
        v, d = len(vocab), self.vector_size
        rng = np.random.default_rng(self.seed)
        # as the reference C code: parameters uniform in [-0.5, 0.5) / dims, squared-gradient sums 1
        init = lambda *shape: ((rng.random(shape) - 0.5) / d).astype(np.float32)  # noqa: E731
        self.W, self.W_context = init(v, d), init(v, d)
        self.b, self.b_context = init(v), init(v)
        self.gradsq_W, self.gradsq_W_context = np.ones((v, d), np.float32), np.ones((v, d), np.float32)
        self.gradsq_b, self.gradsq_b_context = np.ones(v, np.float32), np.ones(v, np.float32)
        self.cooccurrences = None
        self._update_wv()
        return self

    def count(self, corpus) -> "GloVe":
        """Count co-occurrences of the vocabulary's words (within sentences; out-of-vocabulary words
        are removed first) and shuffle the entries once with ``seed``."""
        from .. import _C
        fn = "GloVe.count"
        if self.vocab is None:
            raise RuntimeError(f"{fn}: no vocabulary; call build_vocab(corpus) first")
        ids, offsets, _ = encode_corpus(corpus, self.vocab.stoi, 1 << 62, fn)
        t0 = time.perf_counter()
        rows, cols, x = _C.glove_cooccur(ids, offsets, len(self.vocab), self.window, self.symmetric,
                                         self.dense_entries, self.buffer_entries)
        del ids, offsets
        if len(x) == 0:
            raise ValueError(f"{fn}: no two vocabulary words occur within {self.window} words of each other")
        self.rows, self.cols, self.logx, self.fx = prepare_cooccurrences(rows, cols, x, self.x_max, self.alpha,
                                                                         self.seed)
        self.cooccurrences = len(self.rows)
        self.cooccur_seconds = time.perf_counter() - t0
        return self

    def train(self, epochs=None, progress=None) -> "GloVe":
        """``epochs`` (default: the constructor's) AdaGrad passes over the co-occurrences."""
        from .. import _C
        fn = "GloVe.train"
        if self.cooccurrences is None:
            raise RuntimeError(f"{fn}: no co-occurrences; call count(corpus) first (or pass corpus to the "
                               "constructor)")
        epochs = self.epochs if epochs is None else _int(epochs, "epochs", 1, fn)
        bar = progress_bar(epochs, "GloVe", self.progress if progress is None else progress)
        t0 = time.perf_counter()
        try:
            for _ in range(epochs):
                loss, bad = _C.glove_train(self.W, self.W_context, self.b, self.b_context, self.gradsq_W,
                                           self.gradsq_W_context, self.gradsq_b, self.gradsq_b_context, self.rows,
                                           self.cols, self.logx, self.fx, self.learning_rate, self.workers)
                self.epochs_trained += 1
                mean = loss / self.cooccurrences
                if bad or not np.isfinite(mean):
                    raise FloatingPointError(f"{fn}: the error became non-finite in epoch {self.epochs_trained} "
                                             f"({bad} entries); lower learning_rate (now {self.learning_rate})")
                self.loss_history.append(mean)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{mean:.4f}")
        finally:
            if bar is not None:
                bar.close()
            self.train_seconds += time.perf_counter() - t0
            self._update_wv()
        return self

    def _update_wv(self):
        vec = self.W + self.W_context if self.combine == "sum" else self.W.copy()
        self.wv = KeyedVectors(vec, self.vocab.itos, self.vocab.frequencies())

    def __repr__(self) -> str:
        words = "no vocabulary" if self.vocab is None else f"{len(self.vocab)} words"
        return f"GloVe({words}, vector_size={self.vector_size}, window={self.window})"
