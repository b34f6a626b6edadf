"""Word vectors: the NumPy twins of ``word2vec_train``, ``glove_cooccur`` and ``glove_train``.

The same arguments, checks and results as the native trainers (``csrc/wordvec.h``), and the same
random stream: splitmix64 seeded per job from (seed, epoch, job), drawn in the same order
(subsampling coins of a sentence, then per position its reduced window and, per example, the noise
words).  With ``workers=1`` the native trainer and this one make the same updates, up to float32
rounding.  Slow (a Python loop over words): for checking on small corpora.
"""
from __future__ import annotations

import numpy as np

from ._checks import _inplace, _scalars, _want_alloc

__all__ = ["word2vec_train", "word2vec_examples", "glove_cooccur", "glove_train", "SplitMix", "job_state"]

_M = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M
    return z ^ (z >> 31)


class SplitMix:
    """splitmix64: ``next()`` adds the golden ratio to the state and mixes it."""

    def __init__(self, state: int):
        self.s = state & _M

    def next(self) -> int:
        self.s = (self.s + _GOLDEN) & _M
        return _mix(self.s)


def job_state(seed: int, epoch: int, job: int) -> int:
    """The first state of job ``job``'s stream in epoch ``epoch``."""
    return _mix((_mix((seed ^ 0xD1B54A32D192ED03) & _M) + epoch * _GOLDEN + job) & _M)


def _inplace_matrix(a, fn, name, shape=None):
    """A 2-D float32 matrix updated in place (the native matrix()): 2-D, then the in-place rules, then
    ``shape`` when given."""
    if not isinstance(a, np.ndarray):
        raise TypeError(f"{fn}: {name} must be a NumPy array")
    if a.ndim != 2:
        raise ValueError(f"{fn}: {name} must be 2-D (words, dims), got shape {a.shape}")
    _inplace(a, np.broadcast_to(np.float32(0), (a.size,)), fn, name)
    if shape is not None and a.shape != shape:
        raise ValueError(f"{fn}: {name} has shape {a.shape}, expected {shape}")
    return a


def _vector(a, fn, name, kind, n=-1):
    if a is None:
        raise TypeError(f"{fn}: {name} must be an array, got None")
    a = np.asarray(a)
    if kind == "i" and a.dtype.kind not in "iu":
        raise TypeError(f"{fn}: {name} must hold integers, got {a.dtype}")
    if kind == "f" and a.dtype.kind not in "fiub":
        raise TypeError(f"{fn}: {name} must hold numbers, got {a.dtype}")
    if a.ndim != 1:
        raise ValueError(f"{fn}: {name} must be 1-D, got shape {a.shape}")
    if n >= 0 and a.shape[0] != n:
        raise ValueError(f"{fn}: {name} has length {a.shape[0]}, expected {n}")
    return a.astype(np.int64) if kind == "i" else a.astype(np.float32)


def _want_range(a, b, e, v, fn, name):
    seg = a[b:e]
    bad = np.flatnonzero((seg < 0) | (seg >= v))
    if bad.size:
        i = b + int(bad[0])
        raise IndexError(f"{fn}: {name}[{i}] = {int(a[i])} is outside the vocabulary of {v} words")


def _nonneg(v, fn, name):
    if not np.isfinite(v) or v < 0:
        raise ValueError(f"{fn}: {name} must be finite and >= 0, got {v}")


def _example(l1, syn1, targets, alpha, loss_on):
    """One negative-sampling example (the native wv_example): scores from l1 and the rows before the
    update, rows updated in target order; returns (loss, gradient for l1)."""
    f = np.array([np.dot(l1, syn1[t]) for t in targets], dtype=np.float32)
    e = np.exp(-np.abs(f))
    s = np.where(f >= 0, 1 / (1 + e), e / (1 + e)).astype(np.float32)
    labels = np.zeros(len(targets), np.float32)
    labels[0] = 1
    z = np.where(labels == 1, -f, f)
    loss = float(np.sum(np.maximum(z, 0) + np.log1p(e))) if loss_on else 0.0
    g = ((labels - s) * np.float32(alpha)).astype(np.float32)
    neu1e = np.zeros_like(l1)
    for k, t in enumerate(targets):
        neu1e += g[k] * syn1[t]
        syn1[t] += g[k] * l1
    return loss, neu1e


def _job_examples(ids, offsets, js, j, keep, aprob, aidx, sg, window, negative, seed, epoch, v):
    """The examples of job j in training order, as (input words, [word, noise words...]): for
    skip-gram one context word predicting the word, for CBOW the context words predicting it."""
    rng = SplitMix(job_state(seed, epoch, j))

    def noise(word):
        out = []
        for _ in range(negative):
            u = rng.next()
            m = ((u >> 32) * v) >> 32
            coin = np.float32(u & 0xFFFFFF) * np.float32(1 / 16777216)
            w = m if coin < aprob[m] else int(aidx[m])
            if w != word:
                out.append(w)
        return out

    for s in range(js[j], js[j + 1]):
        sen = []
        for p in range(offsets[s], offsets[s + 1]):
            w = int(ids[p])
            if keep is not None:
                r = np.float32(rng.next() >> 40) * np.float32(1 / 16777216)
                if not r < keep[w]:
                    continue
            sen.append(w)
        n = len(sen)
        for i in range(n):
            word = sen[i]
            rw = window - rng.next() % window
            j0, j1 = max(0, i - rw), min(n, i + rw + 1)
            if sg:
                for c in range(j0, j1):
                    if c != i:
                        yield [sen[c]], [word] + noise(word)
            else:
                ctx = [sen[c] for c in range(j0, j1) if c != i]
                if ctx:
                    yield ctx, [word] + noise(word)


def word2vec_examples(ids, offsets, job_starts, job_begin, job_end, keep, alias_prob, alias_idx, sg=True,
                      window=5, negative=5, seed=0, epoch=0):
    """The (input words, targets) examples that ``word2vec_train`` with the same arguments trains on,
    in order (targets[0] is the word, the rest its noise words): what a network built from
    embeddings needs to compute the same loss (``fastdl.models.SkipGramNegativeSampling``)."""
    ids = np.asarray(ids, np.int64)
    offsets = np.asarray(offsets, np.int64)
    js = np.asarray(job_starts, np.int64)
    keep = None if keep is None else np.asarray(keep, np.float32)
    aprob = np.asarray(alias_prob, np.float32)
    aidx = np.asarray(alias_idx, np.int64)
    out = []
    for j in range(job_begin, job_end):
        out.extend(_job_examples(ids, offsets, js, j, keep, aprob, aidx, sg, window, negative, seed, epoch,
                                 len(aprob)))
    return out


@_scalars(job_begin="int", job_end="int", sg="bool", window="int", negative="int",
          cbow_mean="bool", alpha="float", min_alpha="float", progress_base="float", progress_total="float",
          seed="int", epoch="int", workers="int", compute_loss="bool")
def word2vec_train(syn0, syn1neg, ids, offsets, job_starts, job_begin, job_end, keep, alias_prob, alias_idx,
                   sg=True, window=5, negative=5, cbow_mean=True, alpha=0.025, min_alpha=1e-4, progress_base=0.0,
                   progress_total=1.0, seed=0, epoch=0, workers=1, compute_loss=True):
    """Skip-gram (``sg``) or CBOW with negative sampling over jobs [job_begin, job_end), in place on
    syn0 (V, D) and syn1neg (V, D).  Job j covers sentences [job_starts[j], job_starts[j+1]); its
    learning rate is ``max(min_alpha, alpha - (alpha - min_alpha) * (progress_base + words before
    the job) / progress_total)``.  Returns (loss sum, examples, words)."""
    fn = "word2vec_train"
    _inplace_matrix(syn0, fn, "syn0")
    v, d = syn0.shape
    if v < 1 or d < 1:
        raise ValueError(f"{fn}: syn0 must have at least one word and one dimension")
    _inplace_matrix(syn1neg, fn, "syn1neg", (v, d))
    if syn0 is syn1neg:
        raise ValueError(f"{fn}: syn0 and syn1neg must be different arrays")
    if window < 1:
        raise ValueError(f"{fn}: window must be >= 1, got {window}")
    if not 0 <= negative <= 64:
        raise ValueError(f"{fn}: negative must be in [0, 64], got {negative}")
    _nonneg(alpha, fn, "alpha")
    _nonneg(min_alpha, fn, "min_alpha")
    _nonneg(progress_base, fn, "progress_base")
    if not np.isfinite(progress_total) or progress_total <= 0:
        raise ValueError(f"{fn}: progress_total must be finite and > 0")
    if seed < 0:
        raise ValueError(f"{fn}: seed must be >= 0")
    if epoch < 0:
        raise ValueError(f"{fn}: epoch must be >= 0")
    if workers < 1:
        raise ValueError(f"{fn}: workers must be >= 1, got {workers}")
    ids = _vector(ids, fn, "ids", "i")
    offsets = _vector(offsets, fn, "offsets", "i")
    js = _vector(job_starts, fn, "job_starts", "i")
    n, s_count, j_count = len(ids), len(offsets) - 1, len(js) - 1
    if s_count < 0 or offsets[0] != 0 or offsets[-1] != n:
        raise ValueError(f"{fn}: offsets must start at 0 and end at len(ids) = {n}")
    if j_count < 0:
        raise ValueError(f"{fn}: job_starts must have at least one entry")
    if not 0 <= job_begin <= job_end <= j_count:
        raise ValueError(f"{fn}: need 0 <= job_begin <= job_end <= {j_count}, got {job_begin} and {job_end}")
    for j in range(job_begin, job_end + 1):
        if js[j] < 0 or js[j] > s_count or (j > job_begin and js[j] < js[j - 1]):
            raise ValueError(f"{fn}: job_starts must be non-decreasing sentence indices in [0, {s_count}], bad at {j}")
    for s in range(js[job_begin], js[job_end]):
        if offsets[s + 1] < offsets[s]:
            raise ValueError(f"{fn}: offsets must be non-decreasing, bad at {s + 1}")
    _want_range(ids, offsets[js[job_begin]], offsets[js[job_end]], v, fn, "ids")
    if keep is not None:
        keep = _vector(keep, fn, "keep", "f", v)
        bad = np.flatnonzero(~(keep >= 0))
        if bad.size:
            raise ValueError(f"{fn}: keep[{int(bad[0])}] must be >= 0 (not NaN)")
    aprob = _vector(alias_prob, fn, "alias_prob", "f", v)
    aidx = _vector(alias_idx, fn, "alias_idx", "i", v)
    bad = np.flatnonzero(~((aprob >= 0) & (aprob <= 1)))
    if bad.size:
        raise ValueError(f"{fn}: alias_prob[{int(bad[0])}] must be in [0, 1]")
    _want_range(aidx, 0, v, v, fn, "alias_idx")

    loss, examples, words = 0.0, 0, 0
    for j in range(job_begin, job_end):
        done = progress_base + float(offsets[js[j]])
        a = np.float32(max(min_alpha, alpha - (alpha - min_alpha) * done / progress_total))
        words += int(offsets[js[j + 1]] - offsets[js[j]])
        for inputs, targets in _job_examples(ids, offsets, js, j, keep, aprob, aidx, sg, window, negative, seed,
                                             epoch, v):
            if sg:
                lo, g = _example(syn0[inputs[0]].copy(), syn1neg, targets, a, compute_loss)
                syn0[inputs[0]] += g
            else:
                neu1 = np.sum(syn0[inputs], axis=0, dtype=np.float32)
                if cbow_mean:
                    neu1 *= np.float32(1 / len(inputs))
                lo, g = _example(neu1, syn1neg, targets, a, compute_loss)
                for c in inputs:
                    syn0[c] += g
            loss += lo
            examples += 1
    return loss, examples, words


@_scalars(num_words="int", window="int", symmetric="bool", dense_entries="int",
          buffer_entries="int")
def glove_cooccur(ids, offsets, num_words, window, symmetric=True, dense_entries=1 << 24, buffer_entries=1 << 22):
    """Co-occurrences within each sentence: word j at distance d <= window after word i adds 1/d to
    X[i, j] (and to X[j, i] when ``symmetric``).  Returns the non-zero entries as (rows int32,
    cols int32, values float32) sorted by (row, col).  ``dense_entries`` and ``buffer_entries`` size
    the native counter's memory and change nothing in the result."""
    fn = "glove_cooccur"
    v = num_words
    if not 1 <= v <= 2**31 - 1:
        raise ValueError(f"{fn}: num_words must be in [1, 2^31 - 1], got {v}")
    if window < 1:
        raise ValueError(f"{fn}: window must be >= 1, got {window}")
    if dense_entries < 0:
        raise ValueError(f"{fn}: dense_entries must be >= 0")
    if buffer_entries < 1:
        raise ValueError(f"{fn}: buffer_entries must be >= 1")
    _want_alloc((min(dense_entries, v * v),), fn, "the dense table")
    ids = _vector(ids, fn, "ids", "i")
    offsets = _vector(offsets, fn, "offsets", "i")
    n, s_count = len(ids), len(offsets) - 1
    if s_count < 0 or offsets[0] != 0 or offsets[-1] != n:
        raise ValueError(f"{fn}: offsets must start at 0 and end at len(ids) = {n}")
    bad = np.flatnonzero(np.diff(offsets) < 0)
    if bad.size:
        raise ValueError(f"{fn}: offsets must be non-decreasing, bad at {int(bad[0]) + 1}")
    _want_range(ids, 0, n, v, fn, "ids")
    counts: dict = {}
    for s in range(s_count):
        sen = ids[offsets[s]:offsets[s + 1]]
        for p in range(len(sen)):
            for q in range(max(0, p - window), p):
                w = 1.0 / (p - q)
                key = (int(sen[q]), int(sen[p]))
                counts[key] = counts.get(key, 0.0) + w
                if symmetric:
                    key = (int(sen[p]), int(sen[q]))
                    counts[key] = counts.get(key, 0.0) + w
    keys = sorted(counts)
    rows = np.array([k[0] for k in keys], dtype=np.int32)
    cols = np.array([k[1] for k in keys], dtype=np.int32)
    vals = np.array([counts[k] for k in keys], dtype=np.float32)
    return rows, cols, vals


@_scalars(eta="float", workers="int")
def glove_train(W, W_context, b, b_context, gradsq_W, gradsq_W_context, gradsq_b, gradsq_b_context, rows, cols,
                logx, fx, eta=0.05, workers=1):
    """One epoch of GloVe's AdaGrad (as the reference C code: the step uses the squared-gradient sum
    before this entry's gradient is added, and sums start at 1) over the entries in order; error
    e = w_i . w~_j + b_i + b~_j - log X_ij, loss sum fx * e^2 / 2.  Entries whose weighted error is
    not finite are skipped and counted.  Returns (loss sum, skipped)."""
    fn = "glove_train"
    _inplace_matrix(W, fn, "W")
    v, d = W.shape
    if v < 1 or d < 1:
        raise ValueError(f"{fn}: W must have at least one word and one dimension")
    _inplace_matrix(W_context, fn, "W_context", (v, d))
    _inplace_matrix(gradsq_W, fn, "gradsq_W", (v, d))
    _inplace_matrix(gradsq_W_context, fn, "gradsq_W_context", (v, d))
    per_word = np.broadcast_to(np.float32(0), (v,))
    for a, name in ((b, "b"), (b_context, "b_context"), (gradsq_b, "gradsq_b"),
                    (gradsq_b_context, "gradsq_b_context")):
        _inplace(a, per_word, fn, name)
    arrays = [W, W_context, gradsq_W, gradsq_W_context, b, b_context, gradsq_b, gradsq_b_context]
    if len({id(a) for a in arrays}) != len(arrays):
        raise ValueError(f"{fn}: the parameter and gradient arrays must all be different arrays")
    if not np.isfinite(eta) or eta <= 0:
        raise ValueError(f"{fn}: eta must be finite and > 0")
    if workers < 1:
        raise ValueError(f"{fn}: workers must be >= 1, got {workers}")
    rows = _vector(rows, fn, "rows", "i")
    n = len(rows)
    cols = _vector(cols, fn, "cols", "i", n)
    logx = _vector(logx, fn, "logx", "f", n)
    fx = _vector(fx, fn, "fx", "f", n)
    _want_range(rows, 0, n, v, fn, "rows")
    _want_range(cols, 0, n, v, fn, "cols")
    eta = np.float32(eta)
    loss, bad = 0.0, 0
    for e in range(n):
        i, j = rows[e], cols[e]
        diff = np.float32(np.dot(W[i], W_context[j]) + b[i] + b_context[j] - logx[e])
        fdiff = np.float32(fx[e] * diff)
        if not np.isfinite(fdiff):
            bad += 1
            continue
        loss += 0.5 * float(fdiff) * float(diff)
        fdiff = np.float32(fdiff * eta)
        t1, t2 = fdiff * W_context[j], fdiff * W[i]
        W[i] -= t1 / np.sqrt(gradsq_W[i])
        W_context[j] -= t2 / np.sqrt(gradsq_W_context[j])
        gradsq_W[i] += t1 * t1
        gradsq_W_context[j] += t2 * t2
        b[i] -= fdiff / np.sqrt(gradsq_b[i])
        b_context[j] -= fdiff / np.sqrt(gradsq_b_context[j])
        gradsq_b[i] += fdiff * fdiff
        gradsq_b_context[j] += fdiff * fdiff
    return loss, bad
