"""Word vectors: words/s of fastdl's word2vec (skip-gram, CBOW) against gensim's, GloVe's
co-occurrence and epoch times, the quality of each model, and the memory of a large corpus.

Corpus: the Wikipedia excerpt in gensim's test data (markup stripped with gensim's filter_wiki,
one line a sentence) plus gensim's Lee background corpus: about 540k tokens, read from the
installed gensim package (nothing is downloaded).  Without gensim, Python's own documentation
(``text.python_docs_corpus``) and no comparison.  Quality: analogy accuracy on questions-words.txt
and Spearman on wordsim353.tsv (gensim's test data), same evaluation code for both libraries.

Both libraries run in this one process, alternating per seed (so both see the same machine load),
with the same tokens and settings: vector_size 100, window 5, negative 5, sample 1e-3,
min_count 5, 5 epochs.  Words/s = corpus words x epochs / training time (vocabulary building
excluded for both).  fastdl computes the loss while it trains (its default); gensim does not (its
default).

    python bench/bench_word2vec.py [--seeds 3] [--threads 1 2] [--glove-epochs 25] [--memory]
"""
from __future__ import annotations

import argparse
import bz2
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def load_corpus():
    from fastdl import text
    try:
        from gensim.corpora.wikicorpus import extract_pages, filter_wiki
        from gensim.test.utils import datapath
    except ImportError:
        return text.python_docs_corpus(), "Python's documentation (gensim not installed)", None
    sents = []
    wiki = datapath("enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2")
    for _, page, _ in extract_pages(bz2.BZ2File(wiki)):
        if not page or page.lower().startswith("#redirect"):
            continue
        for line in filter_wiki(page).split("\n"):
            words = [w for w in text.word_tokenize(line) if w[0].isalnum()]
            if len(words) > 1:
                sents.append(words)
    with open(datapath("lee_background.cor"), encoding="utf-8") as f:
        for line in f:
            words = [w for w in text.word_tokenize(line) if w[0].isalnum()]
            if len(words) > 1:
                sents.append(words)
    return sents, "gensim's Wikipedia excerpt (filter_wiki) + Lee background corpus", datapath


def quality(kv, datapath):
    if datapath is None:
        return {}
    a = kv.evaluate_word_analogies(datapath("questions-words.txt"))
    p = kv.evaluate_word_pairs(datapath("wordsim353.tsv"))
    return {"analogy": a["accuracy"], "analogy_oov": a["oov_ratio"], "spearman": p["spearman"],
            "pairs_oov": p["oov_ratio"]}


def gensim_kv(model):
    from fastdl import text
    return text.KeyedVectors(model.wv.vectors.copy(), list(model.wv.index_to_key))


def bench_word2vec(corpus, datapath, threads, seeds, out):
    from fastdl import text
    n = sum(map(len, corpus))
    try:
        import gensim.models
    except ImportError:
        gensim = None
    else:
        gensim = gensim.models
    settings = dict(vector_size=100, window=5, min_count=5, negative=5, sample=1e-3, epochs=5)
    for sg in (1, 0):
        for t in threads:
            rows = {"fastdl": [], "gensim": []}
            for seed in range(seeds):
                m = text.Word2Vec(sg=sg, workers=t, seed=seed, progress=False, **settings)
                m.build_vocab(corpus)
                t0 = time.perf_counter()
                m.train(corpus)
                dt = time.perf_counter() - t0
                rows["fastdl"].append({"seconds": dt, "words_s": settings["epochs"] * n / dt, **quality(m.wv, datapath)})
                if gensim is not None:
                    g = gensim.Word2Vec(sg=sg, workers=t, seed=seed, **settings)
                    g.build_vocab(corpus)
                    t0 = time.perf_counter()
                    g.train(corpus, total_examples=g.corpus_count, epochs=settings["epochs"])
                    dt = time.perf_counter() - t0
                    rows["gensim"].append({"seconds": dt, "words_s": settings["epochs"] * n / dt,
                                           **quality(gensim_kv(g), datapath)})
            name = f"{'skip-gram' if sg else 'CBOW'} {t} thread{'s' if t > 1 else ''}"
            res = {"vocab": len(m.vocab)}
            for lib, rs in rows.items():
                if rs:
                    res[lib] = {k: [r[k] for r in rs] for k in rs[0]}
            out[name] = res
            f = res["fastdl"]
            line = (f"{name:22s} fastdl {np.median(f['words_s']) / 1e6:6.3f} M words/s")
            if "gensim" in res:
                g = res["gensim"]
                line += (f"   gensim {np.median(g['words_s']) / 1e6:6.3f} M words/s   "
                         f"ratio {np.median(f['words_s']) / np.median(g['words_s']):5.2f}x")
            print(line, flush=True)
            if datapath is not None:
                for lib in ("fastdl", "gensim"):
                    if lib in res:
                        r = res[lib]
                        print(f"{'':22s}   {lib:6s} analogy {fmt(r['analogy'])}  wordsim353 spearman "
                              f"{fmt(r['spearman'])}", flush=True)


def fmt(xs):
    return f"{np.mean(xs):.4f} (seeds {', '.join(f'{x:.4f}' for x in xs)})"


def bench_glove(corpus, datapath, threads, epochs, out):
    from fastdl import text
    for t, x_max in [(t, 100) for t in threads] + [(max(threads), 10)]:
        g = text.GloVe(vector_size=100, window=10, x_max=x_max, epochs=epochs, workers=t, progress=False)
        g.build_vocab(corpus)
        g.count(corpus)
        times = []
        for _ in range(epochs):
            t0 = time.perf_counter()
            g.train(epochs=1)
            times.append(time.perf_counter() - t0)
        q = quality(g.wv, datapath)
        name = f"GloVe {t} thread{'s' if t > 1 else ''} x_max {x_max}"
        out[name] = {"cooccur_seconds": g.cooccur_seconds, "entries": g.cooccurrences, "epoch_seconds": times,
                     "loss": g.loss_history, **q}
        print(f"{name:27s} co-occurrences {g.cooccurrences} in {g.cooccur_seconds:.2f} s, epoch median "
              f"{np.median(times):.3f} s; loss {g.loss_history[0]:.4f} -> {g.loss_history[-1]:.4f}", flush=True)
        if q:
            print(f"{'':27s}   analogy {q['analogy']:.4f}  wordsim353 spearman {q['spearman']:.4f}", flush=True)


MEMORY_CHILD = r"""
import resource, sys, time, numpy as np
from fastdl import _C, text
from fastdl.text.corpus import encode_corpus
V, N = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
ranks = np.arange(1, V + 1, dtype=np.float64)
p = 1 / ranks
p /= p.sum()
ids = rng.choice(V, size=N, p=p).astype(np.int32)      # Zipf(1) tokens over V words
offsets = np.arange(0, N + 1, 20, dtype=np.int64)
if offsets[-1] != N:
    offsets = np.append(offsets, N)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
rows, cols, x = _C.glove_cooccur(ids, offsets, V, 10)
t1 = time.perf_counter()
n = len(x)
del ids, offsets
from fastdl.text.glove import prepare_cooccurrences
rows, cols, logx, fx = prepare_cooccurrences(rows, cols, x, 100.0, 0.75, 0)
del x
D = 100
st = [((rng.random((V, D)) - 0.5) / D).astype(np.float32) for _ in range(2)]
st += [np.zeros(V, np.float32), np.zeros(V, np.float32), np.ones((V, D), np.float32), np.ones((V, D), np.float32),
       np.ones(V, np.float32), np.ones(V, np.float32)]
t2 = time.perf_counter()
_C.glove_train(*st, rows, cols, logx, fx, 0.05, 2)
t3 = time.perf_counter()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, t1 - t0, t3 - t2, base * 1024, peak * 1024)
"""


def bench_memory(out):
    """GloVe's co-occurrence counting on a synthetic corpus (Zipf tokens) of 10M tokens over 100k
    words, window 10: entries, seconds and peak memory, in a child process."""
    V, N = 100_000, 10_000_000
    r = subprocess.run([sys.executable, "-c", MEMORY_CHILD, str(V), str(N)], capture_output=True, text=True)
    if r.returncode:
        print(r.stderr)
        return
    entries, secs, epoch, base, peak = r.stdout.split()
    out["memory"] = {"V": V, "tokens": N, "entries": int(entries), "seconds": float(secs),
                     "epoch_seconds_2_threads": float(epoch), "rss_before": int(base), "peak_rss": int(peak)}
    print(f"memory: {N / 1e6:.0f}M tokens over {V} words, window 10: {int(entries) / 1e6:.1f}M co-occurrences in "
          f"{float(secs):.1f} s, shuffled and one GloVe epoch (2 threads, {float(epoch):.1f} s): peak RSS "
          f"{int(peak) / 2**30:.2f} GiB ({int(base) / 2**30:.2f} GiB before counting: the corpus and its "
          f"sampling)", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--glove-epochs", type=int, default=25)
    ap.add_argument("--skip", nargs="*", default=[], choices=["word2vec", "glove"])
    ap.add_argument("--memory", action="store_true", help="also measure the 10M-token memory case")
    args = ap.parse_args()
    import fastdl
    corpus, what, datapath = load_corpus()
    n = sum(map(len, corpus))
    print(f"corpus: {what}: {len(corpus)} sentences, {n} tokens; fastdl {fastdl.__version__}, "
          f"{os.cpu_count()} cores, one process", flush=True)
    out = {"corpus": what, "tokens": n, "machine": platform.processor() or platform.machine(), "cases": {}}
    if "word2vec" not in args.skip:
        bench_word2vec(corpus, datapath, args.threads, args.seeds, out["cases"])
    if "glove" not in args.skip:
        bench_glove(corpus, datapath, args.threads, args.glove_epochs, out["cases"])
    if args.memory:
        bench_memory(out["cases"])
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    path = os.path.join(HERE, "results", "word2vec.json")
    try:  # a partial run (--skip) updates its cases and keeps the others
        with open(path) as f:
            old = json.load(f)
        if old.get("corpus") == out["corpus"]:
            out["cases"] = {**old.get("cases", {}), **out["cases"]}
    except (OSError, ValueError):
        pass
    with open(path, "w") as f:
        json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
