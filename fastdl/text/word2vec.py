"""word2vec: skip-gram and CBOW with negative sampling (Mikolov et al., 2013), trained natively.

``Word2Vec(corpus)`` counts the vocabulary, encodes the corpus as word indices (4 bytes a word, kept
for resuming), and trains on the native kernel (``_C.word2vec_train``): lock-free updates from
``workers`` threads, frequency subsampling, a reduced window drawn per word, noise words from the
unigram^0.75 distribution through an alias table, and a learning rate falling linearly from
``alpha`` to ``min_alpha`` over the words of one ``train`` call.  ``wv`` holds the vectors.
"""
from __future__ import annotations

import json
import os
import time

import numpy as np

from ..progress import progress_bar
from .corpus import encode_corpus, sentences_of, word_vocab
from .keyedvectors import KeyedVectors
from .sampling import AliasTable
from .vocab import Vocab

__all__ = ["Word2Vec"]

JOB_WORDS = 10000  # words per job (gensim's batch size): the unit of threading, seeding and decay


def _int(v, name, lo=None, fn="Word2Vec"):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an integer, got {v!r}")
    if lo is not None and v < lo:
        raise ValueError(f"{fn}: {name} must be >= {lo}, got {v}")
    return int(v)


def _num(v, name, lo=0.0, fn="Word2Vec", strict=False):
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: {name} must be a number, got {v!r}")
    v = float(v)
    if not np.isfinite(v) or v < lo or (strict and v == lo):
        raise ValueError(f"{fn}: {name} must be finite and {'>' if strict else '>='} {lo}, got {v}")
    return v


def _workers(workers, fn):
    if workers is None:
        from ..backend import get_num_threads
        return get_num_threads()
    return _int(workers, "workers", 1, fn)


def job_starts(offsets, job_words: int = JOB_WORDS) -> np.ndarray:
    """Sentence indices where jobs start: each job is whole sentences, about ``job_words`` words."""
    s = len(offsets) - 1
    if s <= 0:
        return np.zeros(1, np.int64)
    marks = np.arange(0, int(offsets[-1]), job_words)
    starts = np.unique(np.searchsorted(offsets[:-1], marks, side="left"))
    starts = starts[starts < s]
    if starts.size == 0 or starts[0] != 0:
        starts = np.concatenate([[0], starts])
    return np.concatenate([starts, [s]]).astype(np.int64)


class Word2Vec:
    """Skip-gram (``sg=1``) or CBOW (``sg=0``) with negative sampling.

    ``corpus``: a file path (one sentence a line, see :class:`LineCorpus`) or a re-iterable of token
    lists; given, the model builds its vocabulary and trains at once.  ``workers``: threads (default
    the library's thread count); ``workers=1`` with a ``seed`` is bit-reproducible.
    ``compute_loss``: track the negative-sampling loss (mean per example, per epoch in
    ``loss_history``); ``progress``: a tqdm bar (words/s, loss; default: when stderr is a terminal).

    Resuming: ``train(epochs=n)`` trains more epochs on the last corpus; ``train(more_text)`` on new
    text; ``build_vocab(more_text, update=True)`` first adds its new words (rows appended, the old
    words keep their indices and vectors).  Each ``train`` call decays the learning rate from
    ``alpha`` to ``min_alpha`` over its own words, as gensim's does.
    """

    def __init__(self, corpus=None, vector_size: int = 100, window: int = 5, min_count: int = 5, sg: int = 1,
                 negative: int = 5, sample: float = 1e-3, alpha: float = 0.025, min_alpha: float = 1e-4,
                 epochs: int = 5, workers=None, seed: int = 0, max_vocab_size=None, cbow_mean: bool = True,
                 ns_exponent: float = 0.75, compute_loss: bool = True, progress=None,
                 max_sentence_length: int = 10000):
        fn = "Word2Vec"
        self.vector_size = _int(vector_size, "vector_size", 1)
        self.window = _int(window, "window", 1)
        self.min_count = _int(min_count, "min_count", 1)
        if sg not in (0, 1, True, False):
            raise ValueError(f"{fn}: sg must be 1 (skip-gram) or 0 (CBOW), got {sg!r}")
        self.sg = int(sg)
        self.negative = _int(negative, "negative", 0)
        if not 1 <= self.negative <= 64:
            raise ValueError(f"{fn}: negative must be in [1, 64] (this trainer learns by negative sampling only; "
                             f"there is no hierarchical softmax), got {self.negative}")
        self.sample = _num(sample, "sample")
        self.alpha = _num(alpha, "alpha", strict=True)
        self.min_alpha = _num(min_alpha, "min_alpha")
        if self.min_alpha > self.alpha:
            raise ValueError(f"{fn}: min_alpha ({self.min_alpha}) must not exceed alpha ({self.alpha})")
        self.epochs = _int(epochs, "epochs", 1)
        self.workers = _workers(workers, fn)
        self.seed = _int(seed, "seed", 0)
        self.max_vocab_size = None if max_vocab_size is None else _int(max_vocab_size, "max_vocab_size", 1)
        self.cbow_mean = bool(cbow_mean)
        self.ns_exponent = _num(ns_exponent, "ns_exponent", lo=-1e9)
        self.compute_loss = bool(compute_loss)
        self.progress = progress
        self.max_sentence_length = _int(max_sentence_length, "max_sentence_length", 1)
        self.vocab = None
        self.wv = None
        self.syn1neg = None
        self.loss_history = []
        self.epochs_trained = 0
        self.words_trained = 0
        self.train_seconds = 0.0
        self._corpus = None
        if corpus is not None:
            self.build_vocab(corpus)
            self.train(corpus)

    # ---- vocabulary
    def build_vocab(self, corpus, update: bool = False) -> "Word2Vec":
        """Count the words of ``corpus`` (one pass, streamed) and keep those seen ``min_count``
        times (at most ``max_vocab_size``, most frequent first).  ``update=True`` adds the new words
        of more text to a trained model."""
        fn = "Word2Vec.build_vocab"
        if update:
            if self.vocab is None:
                raise RuntimeError(f"{fn}: update=True needs a vocabulary; call build_vocab(corpus) first")
            new = self.vocab.update(sentences_of(corpus, fn))
            if new:
                rng = np.random.default_rng([self.seed, len(self.vocab)])
                rows = ((rng.random((len(new), self.vector_size)) - 0.5) / self.vector_size).astype(np.float32)
                vectors = np.concatenate([self.wv.vectors, rows])
                self.syn1neg = np.concatenate([self.syn1neg, np.zeros_like(rows)])
                self.wv = KeyedVectors(vectors, self.vocab.itos, self.vocab.frequencies())
            self._tables()
            return self
        vocab = word_vocab(corpus, self.min_count, self.max_vocab_size, fn)
        self.vocab = vocab
        rng = np.random.default_rng(self.seed)
        v = len(vocab)
        # as word2vec.c and gensim: input vectors uniform in [-0.5, 0.5) / dims, output vectors zero
        vectors = ((rng.random((v, self.vector_size)) - 0.5) / self.vector_size).astype(np.float32)
        self.syn1neg = np.zeros((v, self.vector_size), np.float32)
        self.wv = KeyedVectors(vectors, vocab.itos, vocab.frequencies())
        self._tables()
        return self

    def _tables(self):
        self._keep = self.vocab.keep_probabilities(self.sample) if self.sample > 0 else None
        self._noise = AliasTable(self.vocab.noise_distribution(self.ns_exponent))

    # ---- training
    def train(self, corpus=None, epochs=None, progress=None) -> "Word2Vec":
        """Train ``epochs`` (default: the constructor's) passes over ``corpus`` (default: the last
        corpus trained on).  Returns self."""
        from .. import _C
        fn = "Word2Vec.train"
        if self.vocab is None:
            raise RuntimeError(f"{fn}: no vocabulary; call build_vocab(corpus) first (or pass corpus to "
                               "the constructor)")
        epochs = self.epochs if epochs is None else _int(epochs, "epochs", 1, fn)
        if corpus is not None:
            self._corpus = encode_corpus(corpus, self.vocab.stoi, self.max_sentence_length, fn)
        if self._corpus is None:
            raise ValueError(f"{fn}: no corpus to train on")
        ids, offsets, raw = self._corpus
        if len(ids) == 0:
            raise ValueError(f"{fn}: no word of the corpus is in the vocabulary")
        jobs = job_starts(offsets)
        njobs = len(jobs) - 1
        n = int(offsets[-1])
        progress = self.progress if progress is None else progress
        bar = progress_bar(epochs * n, "word2vec " + ("skip-gram" if self.sg else "CBOW"), progress)
        step = max(1, njobs // 50) if bar is not None else njobs  # calls per epoch: 50 with a bar, else 1
        kw = dict(sg=bool(self.sg), window=self.window, negative=self.negative, cbow_mean=self.cbow_mean,
                  alpha=self.alpha, min_alpha=self.min_alpha, progress_total=float(epochs * n),
                  seed=self.seed, workers=self.workers, compute_loss=self.compute_loss)
        t0 = time.perf_counter()
        try:
            for e in range(epochs):
                loss, examples = 0.0, 0
                for j0 in range(0, njobs, step):
                    j1 = min(njobs, j0 + step)
                    lo, ex, words = _C.word2vec_train(
                        self.wv.vectors, self.syn1neg, ids, offsets, jobs, j0, j1, self._keep, self._noise.prob,
                        self._noise.alias, progress_base=float(e * n), epoch=self.epochs_trained, **kw)
                    loss += lo
                    examples += ex
                    if bar is not None:
                        bar.update(words)
                        el = time.perf_counter() - t0
                        bar.set_postfix(loss=f"{loss / max(examples, 1):.4f}",
                                        words_s=f"{bar.n / max(el, 1e-9):.3g}")
                self.epochs_trained += 1
                self.words_trained += n
                mean = loss / examples if examples else float("nan")  # nan: subsampling left no example
                if self.compute_loss and examples and not np.isfinite(mean):
                    raise FloatingPointError(f"{fn}: the loss became {mean} in epoch {self.epochs_trained}; "
                                             f"lower alpha (now {self.alpha})")
                self.loss_history.append(mean if self.compute_loss else None)
        finally:
            if bar is not None:
                bar.close()
            self.train_seconds += time.perf_counter() - t0
            self.wv.fill_norms(force=True)
        return self

    # ---- save / load
    def save(self, path) -> None:
        """The model (vectors, output weights, vocabulary with counts, settings) in one ``.npz``;
        :meth:`load` restores it for more training."""
        path = os.fspath(path)
        meta = {k: getattr(self, k) for k in ("vector_size", "window", "min_count", "sg", "negative", "sample",
                                               "alpha", "min_alpha", "epochs", "seed", "max_vocab_size",
                                               "cbow_mean", "ns_exponent", "compute_loss", "max_sentence_length",
                                               "epochs_trained", "words_trained", "loss_history")}
        meta["format"], meta["version"] = "fastdl.Word2Vec", 1
        meta["words"] = self.vocab.itos
        meta["counts"] = [int(self.vocab.counts[w]) for w in self.vocab.itos]
        tmp = f"{path}.tmp-fastdl-{os.getpid()}.npz"
        try:
            np.savez(tmp, vectors=self.wv.vectors, syn1neg=self.syn1neg,
                     meta=np.array(json.dumps(meta, ensure_ascii=False)))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path, workers=None) -> "Word2Vec":
        """A model written by :meth:`save`; ValueError for any other file."""
        fn = "Word2Vec.load"
        try:
            with np.load(os.fspath(path), allow_pickle=False) as z:
                vectors, syn1, meta = z["vectors"], z["syn1neg"], json.loads(str(z["meta"]))
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"{fn}: {path} is not a saved Word2Vec model ({exc})") from None
        if not isinstance(meta, dict) or meta.get("format") != "fastdl.Word2Vec":
            raise ValueError(f"{fn}: {path} is not a saved Word2Vec model")
        words, counts = meta.pop("words"), meta.pop("counts")
        v = len(words)
        if (vectors.dtype != np.float32 or vectors.shape != (v, meta["vector_size"]) or syn1.shape != vectors.shape
                or syn1.dtype != np.float32 or len(counts) != v):
            raise ValueError(f"{fn}: {path} is inconsistent (shapes or word count)")
        state = {k: meta.pop(k) for k in ("epochs_trained", "words_trained", "loss_history")}
        meta.pop("format"), meta.pop("version")
        m = cls(workers=workers, **meta)
        from collections import Counter
        m.vocab = Vocab((), min_count=m.min_count, max_vocab_size=m.max_vocab_size, specials=(), unk=None)
        m.vocab.itos = list(words)
        m.vocab.stoi = {w: i for i, w in enumerate(words)}
        m.vocab.counts = Counter(dict(zip(words, counts)))
        m.wv = KeyedVectors(np.ascontiguousarray(vectors), words, m.vocab.frequencies())
        m.syn1neg = np.ascontiguousarray(syn1)
        for k, val in state.items():
            setattr(m, k, val)
        m._tables()
        return m

    def __repr__(self) -> str:
        kind = "skip-gram" if self.sg else "CBOW"
        words = "no vocabulary" if self.vocab is None else f"{len(self.vocab)} words"
        return f"Word2Vec({kind}, {words}, vector_size={self.vector_size}, window={self.window})"
