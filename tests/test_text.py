"""fastdl.text: BLEU against NLTK and sacrebleu, beam search against exhaustive search, Vocab."""
from __future__ import annotations

import itertools
import random
import warnings

import numpy as np
import pytest

from fastdl import text

WORDS = "the a cat dog sat on mat is was big small red".split()


def _corpus(rnd, n_refs=3):
    n = rnd.randint(1, 5)
    cands = [[rnd.choice(WORDS) for _ in range(rnd.randint(1, 12))] for _ in range(n)]
    refs = [[[rnd.choice(WORDS) for _ in range(rnd.randint(1, 12))] for _ in range(rnd.randint(1, n_refs))]
            for _ in range(n)]
    return cands, refs


def test_bleu_equals_nltk():
    nltk_bleu = pytest.importorskip("nltk.translate.bleu_score")
    sf = nltk_bleu.SmoothingFunction()
    # NLTK's own documented example
    hyp1 = "It is a guide to action which ensures that the military always obeys the commands of the party".split()
    refs1 = ["It is a guide to action that ensures that the military will forever heed Party commands".split(),
             "It is the guiding principle which guarantees the military forces always being under the command of "
             "the Party".split(),
             "It is the practical guide for the army always to heed the directions of the party".split()]
    hyp2 = "he read the book because he was interested in world history".split()
    refs2 = ["he was interested in world history because he read the book".split()]
    assert abs(text.bleu([hyp1, hyp2], [refs1, refs2]) - 0.5920778868801042) < 1e-12
    rnd = random.Random(0)
    for _ in range(300):
        cands, refs = _corpus(rnd)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # NLTK warns about zero counts
            for name, fn in ((None, None), ("method1", sf.method1), ("method2", sf.method2), ("method3", sf.method3)):
                want = nltk_bleu.corpus_bleu(refs, cands, smoothing_function=fn)
                assert abs(text.bleu(cands, refs, smoothing=name) - want) < 1e-9, (name, cands, refs)
            want = nltk_bleu.sentence_bleu(refs[0], cands[0], weights=(0.5, 0.5))
            assert abs(text.sentence_bleu(cands[0], refs[0], max_n=2) - want) < 1e-9


def test_bleu_equals_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    rnd = random.Random(1)
    join = " ".join
    for _ in range(300):
        cands, refs = _corpus(rnd, n_refs=1)
        for method in ("exp", "floor", "add-k", "none"):
            want = sacrebleu.corpus_bleu([join(c) for c in cands], [[join(r[0]) for r in refs]], tokenize="none",
                                         smooth_method=method, force=True).score / 100
            assert abs(text.bleu(cands, refs, smoothing=method) - want) < 1e-9, (method, cands, refs)
        want = sacrebleu.sentence_bleu(join(cands[0]), [join(refs[0][0])], tokenize="none").score / 100
        assert abs(text.sentence_bleu(cands[0], refs[0], smoothing="exp", effective_order=True) - want) < 1e-9
    # several references per sentence
    cands = [s.split() for s in ("the cat sat on the mat", "a dog is big")]
    refs = [[s.split() for s in ("the cat is on the mat", "there is a cat on the mat")],
            [s.split() for s in ("the dog is big", "a big dog")]]
    streams = [[" ".join(r[0]) for r in refs], [" ".join(r[1]) for r in refs]]
    want = sacrebleu.corpus_bleu([" ".join(c) for c in cands], streams, tokenize="none").score / 100
    assert abs(text.bleu(cands, refs, smoothing="exp") - want) < 1e-9


def test_bleu_basics_and_errors():
    s = "the cat sat on the mat".split()
    assert text.bleu([s], [[s]]) == pytest.approx(1.0)
    assert text.bleu([["x"]], [[s]]) == 0.0
    # brevity: the closest reference length, the shorter on a tie
    short = "the cat".split()
    assert text.bleu([short], [[s]], max_n=1) == pytest.approx(np.exp(1 - 6 / 2))
    for args, err, msg in [(([], []), ValueError, "candidates is empty"),
                           (([s], []), ValueError, "1 candidates but 0"),
                           (([s], [[]]), ValueError, "at least one reference"),
                           (("the cat", [[s]]), TypeError, "not strings"),
                           (([s], [["the cat"]]), TypeError, "got a string")]:
        with pytest.raises(err, match=msg):
            text.bleu(*args)
    with pytest.raises(ValueError, match="smoothing"):
        text.bleu([s], [[s]], smoothing="bogus")
    with pytest.raises(ValueError, match="weights has 2"):
        text.bleu([s], [[s]], weights=(0.5, 0.5))


def _markov(V, seed):
    """A step function whose next-token distribution depends on the last token and on a running
    state (the sum of the tokens so far), so a wrong reordering of the state changes the result."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((V, V, 3)) * 2

    def logp(last, total):
        z = logits[last, :, total % 3]
        return z - np.log(np.exp(z).sum())

    def step(tokens, state):
        assert state.shape[0] == len(tokens)
        return np.stack([logp(t, s) for t, s in zip(tokens, state)]), state + tokens
    return step, logp


def _exhaustive(logp, bos, eos, V, max_len, lp):
    out = []
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1]:
                continue
            last, total, score = bos, 0, 0.0
            for tok in seq:
                score += logp(last, total)[tok]
                total += last
                last = tok
            if seq[-1] == eos:
                out.append((list(seq[:-1]), score / n ** lp))
            elif n == max_len:
                out.append((list(seq), score / n ** lp))
    return sorted(out, key=lambda x: -x[1])


@pytest.mark.parametrize("lp", [0.0, 0.7, 1.0])
def test_wide_beam_equals_exhaustive_search(lp):
    V, eos, bos, max_len = 4, 3, 0, 4
    step, logp = _markov(V, seed=int(lp * 10))
    got = text.beam_search(step, np.zeros(1, np.int64), bos, eos, beam_width=64, max_len=max_len, length_penalty=lp,
                           n_best=5)
    want = _exhaustive(logp, bos, eos, V, max_len, lp)[:5]
    assert [g[0] for g in got] == [w[0] for w in want]
    np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-12)


def test_beam_search_behaviour():
    V, eos = 5, 4
    step, logp = _markov(V, seed=3)
    res = text.beam_search(step, np.zeros(1, np.int64), 0, eos, beam_width=3, max_len=6, n_best=3)
    assert len(res) == 3 and all(res[i][1] >= res[i + 1][1] for i in range(2))
    assert all(eos not in toks for toks, _ in res)
    greedy = text.beam_search(step, np.zeros(1, np.int64), 0, eos, beam_width=1, max_len=6)
    assert res[0][1] >= greedy[0][1] - 1e-12  # a wider beam is never worse on the model's own score
    # the state may be a dict of arrays, and EOS at the first step ends at once

    def eos_first(tokens, state):
        lp = np.full((len(tokens), 3), -5.0)
        lp[:, 2] = -0.01
        return lp, {"h": state["h"], "n": state["n"] + 1}
    out = text.beam_search(eos_first, {"h": np.zeros((1, 2)), "n": np.zeros(1)}, 0, 2, 2, 5)
    assert out[0] == ([], pytest.approx(-0.01))


@pytest.mark.parametrize("kw, msg", [(dict(beam_width=0), "beam_width"), (dict(max_len=0), "max_len"),
                                     (dict(n_best=3, beam_width=2), "n_best"), (dict(eos=9), "eos 9")])
def test_beam_search_bad_arguments(kw, msg):
    step, _ = _markov(4, 0)
    args = dict(step_fn=step, init_state=np.zeros(1, np.int64), bos=0, eos=3, beam_width=2, max_len=3)
    args.update(kw)
    with pytest.raises(ValueError, match=msg):
        text.beam_search(**args)
    with pytest.raises(ValueError, match="step_fn returned"):
        text.beam_search(lambda t, s: (np.zeros((2, 4)), s), None, 0, 3, 2, 3)


def test_vocab_and_tokenizers(tmp_path):
    assert text.word_tokenize("Hello, World! It's 3pm.") == ["hello", ",", "world", "!", "it", "'", "s", "3pm", "."]
    assert text.char_tokenize("ab c") == ["a", "b", " ", "c"]
    v = text.Vocab([list("hello"), list("help")], min_freq=2)
    assert v.itos[:4] == ["<pad>", "<unk>", "<bos>", "<eos>"] and v.itos[4:] == ["l", "e", "h"]  # by count, ties sorted
    ids = v.encode("hex", add_bos=True, add_eos=True)
    assert ids == [v.bos_id, v["h"], v["e"], v.unk_id, v.eos_id]
    assert v.decode(ids) == ["h", "e"] and v.decode(ids, strip_specials=False)[0] == "<bos>"
    v.save(tmp_path / "v.json")
    w = text.Vocab.load(tmp_path / "v.json")
    assert w.itos == v.itos and w.counts == v.counts
    (tmp_path / "bad.json").write_text('{"format": "fastdl.Vocab", "itos": ["a", "a"], "specials": []}')
    with pytest.raises(ValueError, match="inconsistent"):
        text.Vocab.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_bytes(b"\xff\x00")
    with pytest.raises(ValueError, match="not a saved vocabulary"):
        text.Vocab.load(tmp_path / "junk.json")
    with pytest.raises(ValueError, match="min_freq"):
        text.Vocab([], min_freq=0)
    with pytest.raises(IndexError, match="outside"):
        v.decode([99])
    assert len(text.Vocab([list("abc")], max_size=5)) == 5
