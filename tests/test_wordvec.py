"""Word vectors: the native trainers against their NumPy twins, the Python layer (vocabulary,
alias table, Word2Vec, GloVe, KeyedVectors, formats, evaluation) and gensim as a second oracle."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastdl import _C, nn, optim, reference, text
from fastdl.models.word2vec import SkipGramNegativeSampling, batch_examples
from fastdl.reference.wordvec import word2vec_examples
from fastdl.text.corpus import encode_corpus
from fastdl.text.word2vec import job_starts

R = reference

SENTS = ["the quick brown fox jumps over the lazy dog", "the dog barks at the fox",
         "a quick brown dog runs", "the lazy cat sleeps on the mat", "a cat and a dog and a fox"]
TINY = [s.split() for s in SENTS] * 6


def random_corpus(seed=0, V=30, n=400, cuts=(50, 51, 120, 300)):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, n).astype(np.int32)
    offsets = np.array([0, *cuts, n], np.int64)
    return rng, V, ids, offsets


def tables(rng, V):
    keep = rng.uniform(0.3, 1.5, V).astype(np.float32)
    alias = text.AliasTable(rng.uniform(0.1, 1.0, V))
    return keep, alias.prob, alias.alias


@pytest.mark.parametrize("sg,cbow_mean,subsample", [(True, True, True), (True, True, False), (False, True, True),
                                                     (False, False, True)])
def test_word2vec_train_matches_reference(sg, cbow_mean, subsample):
    rng, V, ids, offsets = random_corpus()
    keep, ap, ai = tables(rng, V)
    jobs = np.array([0, 2, 4, 5], np.int64)
    s0 = (rng.standard_normal((V, 8)) * 0.1).astype(np.float32)
    s1 = (rng.standard_normal((V, 8)) * 0.1).astype(np.float32)
    a0, a1, b0, b1 = s0.copy(), s1.copy(), s0.copy(), s1.copy()
    kw = dict(sg=sg, window=3, negative=4, cbow_mean=cbow_mean, alpha=0.05, min_alpha=0.001,
              progress_total=800.0, progress_base=100.0, seed=7, epoch=2)
    k = keep if subsample else None
    native = _C.word2vec_train(a0, a1, ids, offsets, jobs, 0, 3, k, ap, ai, **kw)
    ref = R.word2vec_train(b0, b1, ids, offsets, jobs, 0, 3, k, ap, ai, **kw)
    assert native[1:] == ref[1:]
    assert native[0] == pytest.approx(ref[0], rel=1e-5)
    np.testing.assert_allclose(a0, b0, atol=2e-6)
    np.testing.assert_allclose(a1, b1, atol=2e-6)
    assert np.abs(a0 - s0).max() > 0.05 and np.abs(a1 - s1).max() > 0.05  # it trained


def test_word2vec_train_job_ranges_compose_and_seed_decides():
    rng, V, ids, offsets = random_corpus(1)
    keep, ap, ai = tables(rng, V)
    jobs = np.array([0, 1, 2, 3, 4, 5], np.int64)
    s0 = (rng.standard_normal((V, 6)) * 0.1).astype(np.float32)
    s1 = np.zeros((V, 6), np.float32)
    whole = [s0.copy(), s1.copy()]
    parts = [s0.copy(), s1.copy()]
    _C.word2vec_train(*whole, ids, offsets, jobs, 0, 5, keep, ap, ai, seed=3)
    for j in range(5):
        _C.word2vec_train(*parts, ids, offsets, jobs, j, j + 1, keep, ap, ai, seed=3)
    np.testing.assert_array_equal(whole[0], parts[0])
    other = [s0.copy(), s1.copy()]
    _C.word2vec_train(*other, ids, offsets, jobs, 0, 5, keep, ap, ai, seed=4)
    assert not np.array_equal(other[0], whole[0])


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_word2vec_train_threads_train_the_same_model(workers):
    """Hogwild threads change the order of updates, not what is learnt: the loss after training is
    the same to a few percent for 1, 2 and 3 workers (3 > cores)."""
    rng = np.random.default_rng(0)
    V, D = 50, 16
    ids = rng.integers(0, V, 60000).astype(np.int32)
    ids[1::2] = (ids[::2] + 1) % V  # a learnable pattern: each even word is followed by its successor
    offsets = np.arange(0, 60001, 20, dtype=np.int64)
    jobs = job_starts(offsets, 2000)
    alias = text.AliasTable(np.ones(V))
    losses = []
    for w in (1, workers):
        s0 = ((rng.random((V, D)) - 0.5) / D).astype(np.float32)
        s1 = np.zeros((V, D), np.float32)
        for epoch in range(3):
            loss, ex, words = _C.word2vec_train(s0, s1, ids, offsets, jobs, 0, len(jobs) - 1, None, alias.prob,
                                                alias.alias, window=2, alpha=0.05, progress_total=3 * 60000.0,
                                                progress_base=epoch * 60000.0, epoch=epoch, workers=w)
            assert words == 60000
        losses.append(loss / ex)
    assert losses[1] == pytest.approx(losses[0], rel=0.05)


@pytest.mark.parametrize("dense,buffer", [(1 << 24, 1 << 22), (0, 1), (50, 7), (200, 3)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_glove_cooccur_matches_reference(dense, buffer, symmetric):
    rng, V, ids, offsets = random_corpus(2)
    native = _C.glove_cooccur(ids, offsets, V, 4, symmetric, dense, buffer)
    ref = R.glove_cooccur(ids, offsets, V, 4, symmetric)
    np.testing.assert_array_equal(native[0], ref[0])
    np.testing.assert_array_equal(native[1], ref[1])
    np.testing.assert_allclose(native[2], ref[2], rtol=1e-6)
    assert native[0].dtype == np.int32 and native[2].dtype == np.float32


def test_glove_cooccur_counts_by_hand():
    ids = np.array([0, 1, 2, 0], np.int32)
    rows, cols, x = _C.glove_cooccur(ids, np.array([0, 3, 4]), 3, 2)  # sentences [0 1 2] and [0]
    got = {(int(r), int(c)): float(v) for r, c, v in zip(rows, cols, x)}
    assert got == {(0, 1): 1.0, (1, 0): 1.0, (1, 2): 1.0, (2, 1): 1.0, (0, 2): 0.5, (2, 0): 0.5}


def glove_state(rng, V, D):
    return [((rng.random((V, D)) - 0.5) / D).astype(np.float32), ((rng.random((V, D)) - 0.5) / D).astype(np.float32),
            ((rng.random(V) - 0.5) / D).astype(np.float32), ((rng.random(V) - 0.5) / D).astype(np.float32),
            np.ones((V, D), np.float32), np.ones((V, D), np.float32), np.ones(V, np.float32), np.ones(V, np.float32)]


def test_glove_train_matches_reference_and_loss_falls():
    rng, V, ids, offsets = random_corpus(3)
    rows, cols, x = R.glove_cooccur(ids, offsets, V, 4)
    logx = np.log(x)
    fx = np.minimum(1, (x / 3.0) ** 0.75).astype(np.float32)
    a = glove_state(rng, V, 8)
    b = [t.copy() for t in a]
    losses = []
    for _ in range(4):
        ln, badn = _C.glove_train(*a, rows, cols, logx, fx, 0.05)
        lr, badr = R.glove_train(*b, rows, cols, logx, fx, 0.05)
        assert badn == badr == 0
        assert ln == pytest.approx(lr, rel=1e-5)
        losses.append(ln)
    for p, q in zip(a, b):
        np.testing.assert_allclose(p, q, atol=1e-6)
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("workers", [2, 3])
def test_glove_train_threads(workers):
    rng, V, ids, offsets = random_corpus(4, n=3000, cuts=(1000, 2000))
    rows, cols, x = R.glove_cooccur(ids, offsets, V, 5)
    logx, fx = np.log(x), np.minimum(1, (x / 3.0) ** 0.75).astype(np.float32)
    one = glove_state(np.random.default_rng(0), V, 8)
    many = [t.copy() for t in one]
    for _ in range(5):
        l1 = _C.glove_train(*one, rows, cols, logx, fx, 0.05, 1)[0]
        lm = _C.glove_train(*many, rows, cols, logx, fx, 0.05, workers)[0]
    assert lm == pytest.approx(l1, rel=0.05)


def test_glove_train_skips_and_counts_non_finite_entries():
    rng = np.random.default_rng(0)
    st = glove_state(rng, 4, 3)
    rows, cols = np.array([0, 1, 2], np.int32), np.array([1, 2, 3], np.int32)
    logx = np.array([0.5, np.nan, 0.1], np.float32)
    fx = np.ones(3, np.float32)
    for fn in (_C.glove_train, R.glove_train):
        s = [t.copy() for t in st]
        loss, bad = fn(*s, rows, cols, logx, fx, 0.05)
        assert bad == 1 and np.isfinite(loss)
        assert all(np.all(np.isfinite(t)) for t in s)


def f32(*shape):
    return np.zeros(shape, np.float32)


def w2v_args(**over):
    rng, V, ids, offsets = random_corpus()
    keep, ap, ai = tables(rng, V)
    a = dict(syn0=f32(V, 4), syn1neg=f32(V, 4), ids=ids, offsets=offsets, job_starts=np.array([0, 5]), job_begin=0,
             job_end=1, keep=keep, alias_prob=ap, alias_idx=ai)
    a.update(over)
    return a


W2V_BAD = [
    (dict(syn0=np.zeros((30, 4))), TypeError, "syn0 has dtype float64"),
    (dict(syn0=f32(30, 4)[:, ::2]), ValueError, "syn0 must be C-contiguous"),
    (dict(syn1neg=f32(29, 4)), ValueError, "syn1neg has shape"),
    (dict(ids=np.array([0, 1, 99] + [0] * 397, np.int32)), IndexError, "ids[2] = 99 is outside the vocabulary"),
    (dict(ids=np.array(["a"] * 400)), TypeError, "ids must hold integers"),
    (dict(offsets=np.array([0, 10, 5, 400]), job_starts=np.array([0, 3])), ValueError, "offsets must be non-decreasing"),
    (dict(offsets=np.array([0, 10])), ValueError, "offsets must start at 0 and end at len(ids)"),
    (dict(job_end=2), ValueError, "job_begin <= job_end"),
    (dict(window=0), ValueError, "window must be >= 1"),
    (dict(negative=-1), ValueError, "negative must be in [0, 64]"),
    (dict(negative=65), ValueError, "negative must be in [0, 64]"),
    (dict(alpha=float("nan")), ValueError, "alpha must be finite"),
    (dict(progress_total=0.0), ValueError, "progress_total must be finite and > 0"),
    (dict(workers=0), ValueError, "workers must be >= 1"),
    (dict(keep=np.full(30, np.nan, np.float32)), ValueError, "keep[0] must be >= 0"),
    (dict(alias_prob=np.full(30, 2.0, np.float32)), ValueError, "alias_prob[0] must be in [0, 1]"),
    (dict(alias_idx=np.full(30, -1, np.int32)), IndexError, "alias_idx[0] = -1"),
    (dict(window="5"), TypeError, "window must be an integer"),
]


@pytest.mark.parametrize("case", W2V_BAD, ids=[str(i) for i in range(len(W2V_BAD))])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_word2vec_train_bad_arguments(case, backend):
    over, exc, msg = case
    fn = _C.word2vec_train if backend == "native" else R.word2vec_train
    with pytest.raises(exc) as info:
        fn(**w2v_args(**over))
    assert type(info.value) is exc and msg in str(info.value) and str(info.value).startswith("word2vec_train:")


def test_word2vec_train_read_only_matrix():
    a = w2v_args()
    a["syn0"].flags.writeable = False
    for fn in (_C.word2vec_train, R.word2vec_train):
        with pytest.raises(ValueError, match="syn0 is read-only"):
            fn(**a)


GLOVE_BAD = [
    ("glove_cooccur", (np.array([0, 5], np.int32), np.array([0, 2]), 3, 2), IndexError, "ids[1] = 5"),
    ("glove_cooccur", (np.array([0, 1], np.int32), np.array([0, 2]), 3, 0), ValueError, "window must be >= 1"),
    ("glove_cooccur", (np.array([0, 1], np.int32), np.array([0, 2]), 0, 2), ValueError, "num_words must be in"),
    ("glove_cooccur", (np.array([0, 1], np.int32), np.array([0, 3]), 3, 2), ValueError, "offsets must start at 0"),
    ("glove_train", (*glove_state(np.random.default_rng(0), 3, 2)[:7], f32(4), np.array([0], np.int32),
                     np.array([1], np.int32), f32(1), f32(1)), ValueError, "gradsq_b_context has 4 elements"),
    ("glove_train", (*glove_state(np.random.default_rng(0), 3, 2), np.array([0], np.int32), np.array([3], np.int32),
                     f32(1), f32(1)), IndexError, "cols[0] = 3"),
    ("glove_train", (*glove_state(np.random.default_rng(0), 3, 2), np.array([0], np.int32), np.array([1], np.int32),
                     f32(2), f32(1)), ValueError, "logx has length 2"),
]


@pytest.mark.parametrize("case", GLOVE_BAD, ids=[str(i) for i in range(len(GLOVE_BAD))])
@pytest.mark.parametrize("backend", ["native", "reference"])
def test_glove_bad_arguments(case, backend):
    op, args, exc, msg = case
    fn = getattr(_C if backend == "native" else R, op)
    with pytest.raises(exc) as info:
        fn(*args)
    assert type(info.value) is exc and msg in str(info.value) and str(info.value).startswith(op + ":")


def test_glove_train_rejects_aliased_arrays():
    st = glove_state(np.random.default_rng(0), 3, 2)
    st[1] = st[0]
    for fn in (_C.glove_train, R.glove_train):
        with pytest.raises(ValueError, match="must all be different arrays"):
            fn(*st, np.array([0], np.int32), np.array([1], np.int32), f32(1), f32(1))


# ---- vocabulary and sampling
def test_alias_table_is_exact_and_draws_its_distribution():
    p = np.array([0.5, 0.1, 0.0, 0.3, 0.1])
    t = text.AliasTable(p)
    np.testing.assert_allclose(t.distribution(), p, atol=1e-7)
    draws = t.sample(200000, rng=0)
    np.testing.assert_allclose(np.bincount(draws, minlength=5) / 200000, p, atol=0.005)
    with pytest.raises(ValueError, match="probs must be finite"):
        text.AliasTable([0.5, np.nan])
    with pytest.raises(ValueError, match="not all 0"):
        text.AliasTable([0.0, 0.0])


def test_vocab_counts_subsampling_noise_and_update(tmp_path):
    v = text.Vocab(TINY, min_count=6, specials=(), unk=None)
    assert v.itos[0] == "the" and all(v.counts[w] >= 6 for w in v.itos)
    f = v.frequencies().astype(float)
    th = 1e-2 * f.sum()
    np.testing.assert_allclose(v.keep_probabilities(1e-2), np.minimum(1, (np.sqrt(f / th) + 1) * th / f), rtol=1e-6)
    np.testing.assert_array_equal(v.keep_probabilities(0), 1)
    noise = v.noise_distribution()
    np.testing.assert_allclose(noise, f ** 0.75 / (f ** 0.75).sum())
    old = list(v.itos)
    new = v.update([["zebra"] * 7, ["the"]])
    assert new == ["zebra"] and v.itos[:len(old)] == old and v["zebra"] == len(old)
    v.save(tmp_path / "v.json")
    w = text.Vocab.load(tmp_path / "v.json")
    assert w.itos == v.itos and w.counts == v.counts and w.min_freq == 6
    with pytest.raises(ValueError, match="sample must be"):
        v.keep_probabilities(-1)


def test_line_corpus_streams_and_names_bad_lines(tmp_path):
    p = tmp_path / "c.txt"
    p.write_bytes(b"Hello world, again.\n\nsecond LINE here\n\xff\xfe broken\n")
    it = iter(text.LineCorpus(p))
    assert next(it) == ["hello", "world", ",", "again", "."]
    assert next(it) == ["second", "line", "here"]
    with pytest.raises(ValueError, match="line 4 is not valid utf-8"):
        next(it)


# ---- Word2Vec
def test_word2vec_is_reproducible_with_one_worker_and_learns():
    kw = dict(vector_size=16, window=3, min_count=1, sample=0, epochs=15, workers=1, seed=5, progress=False)
    a = text.Word2Vec(TINY, **kw)
    b = text.Word2Vec(TINY, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    assert a.loss_history == b.loss_history and len(a.loss_history) == 15
    assert a.loss_history[-1] < 0.85 * a.loss_history[0]
    c = text.Word2Vec(TINY, **{**kw, "seed": 6})
    assert not np.array_equal(a.wv.vectors, c.wv.vectors)


@pytest.mark.parametrize("sg", [1, 0])
def test_word2vec_equals_the_reference_trainer(sg):
    """The Word2Vec class drives the native kernel exactly as replaying the reference does."""
    m = text.Word2Vec(vector_size=8, window=2, min_count=1, sg=sg, epochs=2, workers=1, seed=1, sample=1e-2,
                      progress=False)
    m.build_vocab(TINY)
    s0, s1 = m.wv.vectors.copy(), m.syn1neg.copy()
    m.train(TINY)
    ids, offsets, _ = encode_corpus(TINY, m.vocab.stoi)
    jobs = job_starts(offsets)
    n = float(offsets[-1])
    for e in range(2):
        R.word2vec_train(s0, s1, ids, offsets, jobs, 0, len(jobs) - 1, m._keep, m._noise.prob, m._noise.alias,
                         sg=bool(sg), window=2, negative=5, alpha=0.025, min_alpha=1e-4, progress_base=e * n,
                         progress_total=2 * n, seed=1, epoch=e)
    np.testing.assert_allclose(m.wv.vectors, s0, atol=1e-6)
    np.testing.assert_allclose(m.syn1neg, s1, atol=1e-6)


@pytest.mark.parametrize("sg", [True, False])
def test_the_network_optimises_the_same_loss(sg):
    """Skip-gram / CBOW with negative sampling built from nn.Embedding and the masked BCE: the same
    loss as the native trainer for the same parameters and samples (learning rate 0), and an
    optimizer lowers it."""
    m = text.Word2Vec(vector_size=8, window=2, min_count=1, sample=0, workers=1, progress=False)
    m.build_vocab(TINY)
    ids, offsets, _ = encode_corpus(TINY, m.vocab.stoi)
    jobs = job_starts(offsets)
    net = SkipGramNegativeSampling(len(m.vocab), 8, seed=0)
    net.out_embed.weight.data[...] = np.random.default_rng(1).standard_normal((len(m.vocab), 8)) * 0.1
    s0, s1 = net.in_embed.weight.data.copy(), net.out_embed.weight.data.copy()
    args = (ids, offsets, jobs, 0, len(jobs) - 1, None, m._noise.prob, m._noise.alias)
    loss, examples, _ = _C.word2vec_train(s0, s1, *args, sg=sg, window=2, negative=3, alpha=0.0, min_alpha=0.0,
                                          seed=9)
    samples = word2vec_examples(*args, sg=sg, window=2, negative=3, seed=9)
    assert len(samples) == examples
    batch = batch_examples(samples)
    first = net(*batch)
    assert float(first.data) == pytest.approx(loss, rel=1e-5)
    opt = optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        out = net(*batch)
        out.backward()
        opt.step()
    assert float(out.data) < 0.6 * float(first.data)  # measured: 0.48 (skip-gram), 0.19 (CBOW)


def test_word2vec_resume_more_epochs_and_more_text(tmp_path):
    m = text.Word2Vec(TINY, vector_size=8, min_count=1, sample=0, epochs=2, workers=1, progress=False)
    m.train(epochs=1)
    assert m.epochs_trained == 3 and len(m.loss_history) == 3
    before = m.wv["fox"].copy()
    n = len(m.vocab)
    more = [["zebra", "eats", "the", "grass"]] * 3
    m.build_vocab(more, update=True)
    assert len(m.vocab) == n + 3 and m.wv.vectors.shape == (n + 3, 8) and m.syn1neg.shape == (n + 3, 8)
    np.testing.assert_array_equal(m.wv["fox"], before)
    m.train(more, epochs=1)
    assert "zebra" in m.wv
    m.save(tmp_path / "m.npz")
    k = text.Word2Vec.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(k.wv.vectors, m.wv.vectors)
    assert k.vocab.itos == m.vocab.itos and k.epochs_trained == m.epochs_trained
    k.train(TINY, epochs=1)
    (tmp_path / "bad.npz").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="is not a saved Word2Vec model"):
        text.Word2Vec.load(tmp_path / "bad.npz")


def test_word2vec_bad_input(tmp_path):
    with pytest.raises(ValueError, match="the corpus is empty"):
        text.Word2Vec([])
    with pytest.raises(ValueError, match="no word of the corpus occurs min_count=5"):
        text.Word2Vec([["a", "b"]])
    with pytest.raises(ValueError, match="vector_size must be >= 1"):
        text.Word2Vec(vector_size=0)
    with pytest.raises(ValueError, match="window must be >= 1"):
        text.Word2Vec(window=0)
    with pytest.raises(ValueError, match="negative must be >= 0"):
        text.Word2Vec(negative=-1)
    with pytest.raises(ValueError, match="no hierarchical softmax"):
        text.Word2Vec(negative=0)
    with pytest.raises(TypeError, match="sentence 0 is a string"):
        text.Word2Vec(["a sentence as a string"])
    with pytest.raises(ValueError, match="min_alpha"):
        text.Word2Vec(alpha=0.01, min_alpha=0.1)
    p = tmp_path / "latin1.txt"
    p.write_bytes("caf\xe9 ol\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="line 1 is not valid utf-8"):
        text.Word2Vec(p, min_count=1)
    with pytest.raises(RuntimeError, match="call build_vocab"):
        text.Word2Vec().train(TINY)
    with pytest.raises(FloatingPointError, match="lower alpha"):
        text.Word2Vec(TINY, min_count=1, alpha=1e30, min_alpha=0, sample=0, workers=1, progress=False)


def test_word2vec_from_a_file_and_progress(tmp_path, capsys):
    p = tmp_path / "corpus.txt"
    p.write_text("\n".join(SENTS * 6), encoding="utf-8")
    m = text.Word2Vec(str(p), vector_size=8, min_count=1, epochs=1, workers=2, progress=True)
    assert len(m.vocab) == len({w for s in SENTS for w in s.split()})
    assert m.words_trained == sum(len(s.split()) for s in SENTS) * 6
    err = capsys.readouterr().err
    assert "word2vec skip-gram" in err and "loss=" in err  # the tqdm bar, with its loss


# ---- GloVe
def test_glove_trains_and_is_reproducible():
    kw = dict(vector_size=8, window=3, x_max=10, min_count=1, epochs=10, workers=1, seed=2, progress=False)
    a = text.GloVe(TINY, **kw)
    b = text.GloVe(TINY, **kw)
    np.testing.assert_array_equal(a.wv.vectors, b.wv.vectors)
    assert a.loss_history[-1] < 0.5 * a.loss_history[0]
    assert all(x > y for x, y in zip(a.loss_history, a.loss_history[1:]))
    np.testing.assert_allclose(a.wv.vectors, a.W + a.W_context)
    assert text.GloVe(TINY, **kw, combine="word").wv["fox"] == pytest.approx(a.W[a.vocab["fox"]])


def test_glove_bad_input():
    with pytest.raises(ValueError, match="the corpus is empty"):
        text.GloVe([[]])
    with pytest.raises(ValueError, match="x_max must be finite and > 0"):
        text.GloVe(x_max=0)
    with pytest.raises(ValueError, match="combine must be"):
        text.GloVe(combine="mean")
    with pytest.raises(ValueError, match="no two vocabulary words occur"):
        text.GloVe([["a"], ["b"]], min_count=1)
    with pytest.raises(RuntimeError, match="call count"):
        text.GloVe().train()


# ---- KeyedVectors
def small_kv():
    rng = np.random.default_rng(0)
    words = ["king", "queen", "man", "woman", "apple", "Paris", "paris", "France"]
    vec = rng.standard_normal((8, 6)).astype(np.float32)
    vec[1] = vec[0] - vec[2] + vec[3] + 0.01  # queen = king - man + woman
    return text.KeyedVectors(vec, words)


def test_keyed_vectors_lookup_similarity_analogy():
    kv = small_kv()
    assert kv["queen"].shape == (6,) and kv[["king", "man"]].shape == (2, 6) and len(kv) == 8
    assert kv.similarity("king", "king") == pytest.approx(1.0)
    assert kv.similarity("king", "man") == pytest.approx(text.cosine_similarity(kv["king"], kv["man"]))
    assert kv.analogy("man", "king", "woman")[0][0] == "queen"
    assert kv.analogy("man", "king", "woman", method="mul")[0][0] == "queen"
    sims = kv.most_similar("king", topn=3)
    assert len(sims) == 3 and all(w != "king" for w, _ in sims)
    assert sims == sorted(sims, key=lambda t: -t[1])
    with pytest.raises(KeyError, match="'banana' is not in the vocabulary"):
        kv.most_similar("banana")
    with pytest.raises(KeyError, match="banana"):
        kv["banana"]


@pytest.mark.parametrize("binary", [False, True])
def test_word2vec_format_round_trip(tmp_path, binary):
    kv = small_kv()
    p = tmp_path / "v.bin"
    kv.save_word2vec_format(p, binary=binary)
    back = text.KeyedVectors.load_word2vec_format(p, binary=binary)
    assert back.index_to_key == kv.index_to_key
    np.testing.assert_array_equal(back.vectors, kv.vectors)
    assert text.KeyedVectors.load_word2vec_format(p, binary=binary, limit=3).index_to_key == kv.index_to_key[:3]


BAD_VECTOR_FILES = [
    (b"3 2\na 1 2\nb 3\nc 5 6\n", False, "line 3 has 1 numbers, expected 2"),
    (b"3 2\na 1 2\n", False, "has 1 vectors, its header says 3"),
    (b"three two\na 1 2\n", False, "line 1 is not a 'count dims' header"),
    (b"1 2\na 1 x\n", False, "line 2 has a value that is not a number"),
    (b"1 2\na 1 inf\n", False, "non-finite values"),
    (b"2 2\na 1 2\na 3 4\n", False, "has a word twice"),
    (b"1 2\n\xff 1 2\n", False, "line 2 is not valid utf-8"),
    (b"2 2\na " + np.ones(2, "<f4").tobytes() + b"\nb " + b"\x00\x00", True, "ends inside the vector of word 2"),
    (b"2 2\na " + np.ones(2, "<f4").tobytes() + b"\nb", True, "ends inside word 2"),
]


@pytest.mark.parametrize("content,binary,msg", BAD_VECTOR_FILES, ids=[str(i) for i in range(len(BAD_VECTOR_FILES))])
def test_malformed_vector_files(tmp_path, content, binary, msg):
    p = tmp_path / "v.txt"
    p.write_bytes(content)
    with pytest.raises(ValueError, match=msg):
        text.KeyedVectors.load_word2vec_format(p, binary=binary)


def test_glove_format_and_saving_bad_words(tmp_path):
    p = tmp_path / "v.txt"
    p.write_text("a 1 2\nb 3 4\n")
    g = text.KeyedVectors.load_glove_format(p)
    assert g.index_to_key == ["a", "b"] and g["b"].tolist() == [3, 4]
    with pytest.raises(ValueError, match="cannot be stored"):
        text.KeyedVectors(np.zeros((1, 2)), ["two words"]).save_word2vec_format(tmp_path / "x.txt")
    kv = small_kv()
    kv.save(tmp_path / "kv.npz")
    assert text.KeyedVectors.load(tmp_path / "kv.npz").index_to_key == kv.index_to_key
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="is not saved word vectors"):
        text.KeyedVectors.load(tmp_path / "junk.npz")


def test_evaluations_count_oov_and_malformed_lines(tmp_path):
    kv = small_kv()
    q = tmp_path / "q.txt"
    q.write_text(": royal\nman king woman queen\nking man queen woman\nman king woman banana\nbad line\n"
                 ": capitals\nFrance Paris king queen\n")
    r = kv.evaluate_word_analogies(q)
    assert r["sections"][0]["section"] == "royal" and r["sections"][0]["total"] == 2
    assert r["sections"][0]["correct"] >= 1 and r["skipped_lines"] == 1
    assert r["oov_ratio"] == pytest.approx(1 / 4) and r["total"] == 3
    pairs = tmp_path / "p.tsv"
    pairs.write_text("# comment\nking\tqueen\t9\nman\twoman\t8\napple\tking\t1\nking\tbanana\t5\nbroken line\n"
                     "paris\tfrance\tnan\n")
    e = kv.evaluate_word_pairs(pairs)
    assert e["pairs"] == 3 and e["oov_ratio"] == pytest.approx(1 / 4) and e["skipped_lines"] == 2
    assert -1 <= e["spearman"] <= 1 and -1 <= e["pearson"] <= 1


def test_embedding_from_pretrained():
    kv = small_kv()
    emb = nn.Embedding.from_pretrained(kv)
    assert emb.weight.shape == (8, 6) and not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(np.array([1])).data[0], kv["queen"])
    t = nn.Embedding.from_pretrained(kv.vectors, freeze=False, padding_idx=0)
    assert t.weight.requires_grad and t.padding_idx == 0
    out = t(np.array([0, 1])).sum()
    out.backward()
    assert np.all(t.weight.grad[0] == 0) and np.all(t.weight.grad[1] == 1)
    with pytest.raises(ValueError, match="must be 2-D"):
        nn.Embedding.from_pretrained(np.zeros(3))


# ---- gensim: the second oracle
def gensim_data(name):
    gensim = pytest.importorskip("gensim")
    from gensim.test.utils import datapath
    return gensim, datapath(name)


def test_gensim_reads_our_files_and_we_read_its(tmp_path):
    gensim, _ = gensim_data("questions-words.txt")
    from gensim.models import KeyedVectors as GKV
    kv = small_kv()
    for binary in (False, True):
        p = tmp_path / f"ours{int(binary)}"
        kv.save_word2vec_format(p, binary=binary)
        g = GKV.load_word2vec_format(str(p), binary=binary)
        assert list(g.index_to_key) == kv.index_to_key
        np.testing.assert_array_equal(g.vectors, kv.vectors)
        q = tmp_path / f"theirs{int(binary)}"
        g.save_word2vec_format(str(q), binary=binary)
        back = text.KeyedVectors.load_word2vec_format(q, binary=binary)
        assert back.index_to_key == kv.index_to_key
        np.testing.assert_allclose(back.vectors, kv.vectors, rtol=1e-6)


def test_neighbours_and_evaluations_equal_gensims():
    gensim, questions = gensim_data("questions-words.txt")
    from gensim.models import KeyedVectors as GKV
    from gensim.test.utils import datapath
    # vectors gensim ships (trained on its Lee corpus), loaded by both libraries
    theirs = GKV.load_word2vec_format(datapath("lee_fasttext.vec"))
    ours = text.KeyedVectors.load_word2vec_format(datapath("lee_fasttext.vec"))
    for w in ("government", "Australia", "police"):
        a = ours.most_similar(w, topn=5)
        b = theirs.most_similar(w, topn=5)
        assert [x for x, _ in a] == [x for x, _ in b]
        np.testing.assert_allclose([s for _, s in a], [s for _, s in b], rtol=1e-5)
    a = ours.most_similar_cosmul(positive=["government", "police"], negative=["Australia"], topn=5)
    with warnings.catch_warnings():  # gensim 4's cosmul calls its own deprecated init_sims
        warnings.simplefilter("ignore", DeprecationWarning)
        b = theirs.most_similar_cosmul(positive=["government", "police"], negative=["Australia"], topn=5)
    assert [x for x, _ in a] == [x for x, _ in b]
    score, sections = theirs.evaluate_word_analogies(questions)
    r = ours.evaluate_word_analogies(questions)
    assert r["accuracy"] == pytest.approx(score)
    assert r["correct"] == len(sections[-1]["correct"])
    pearson, spearman, oov = theirs.evaluate_word_pairs(datapath("wordsim353.tsv"))
    e = ours.evaluate_word_pairs(datapath("wordsim353.tsv"))
    assert e["pearson"] == pytest.approx(pearson[0], rel=1e-6)
    assert e["spearman"] == pytest.approx(spearman[0], rel=1e-6)
    assert e["oov_ratio"] * 100 == pytest.approx(oov)


def test_word2vec_learns_python_words():
    """On the library's built-in corpus (Python's documentation), the vectors put related
    programming words together: a quality check by epochs, not by time."""
    corpus = text.python_docs_corpus(max_files=150)
    m = text.Word2Vec(corpus, vector_size=50, epochs=5, workers=2, seed=0, progress=False)
    near = [w for w, _ in m.wv.most_similar("true", topn=10)]
    assert "false" in near, near
    assert m.loss_history[-1] < m.loss_history[0]
