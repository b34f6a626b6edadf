"""Word vectors: word2vec (skip-gram, negative sampling) and GloVe on a corpus that needs no
download (Python's own documentation: the pydoc reference topics and the standard library's
docstrings), or on a text file of your own (``--text``).  Prints nearest neighbours and solved
analogies, evaluates on an analogy / word-pair file when given one, shows that a network built from
two ``nn.Embedding`` tables and the masked BCE loss computes the native trainer's loss, and saves a
2-D PCA map of chosen words."""
from __future__ import annotations

import numpy as np

from .. import optim, text
from ..models.word2vec import SkipGramNegativeSampling, batch_examples
from ..reference.wordvec import word2vec_examples
from ..text.corpus import encode_corpus
from ..text.word2vec import job_starts

# For the default corpus: words to look around, and analogies its vectors solve
NEIGHBOURS = ["list", "thread", "socket", "error", "true"]
ANALOGIES = [("list", "lists", "tuple", "tuples"), ("key", "keys", "value", "values"),
             ("file", "files", "directory", "directories"), ("lower", "upper", "left", "right"),
             ("min", "max", "first", "last"), ("class", "classes", "function", "functions"),
             ("integer", "integers", "string", "strings"), ("open", "close", "start", "stop")]
MAP_WORDS = ["list", "lists", "tuple", "tuples", "dict", "set", "string", "strings", "integer", "float",
             "file", "files", "directory", "directories", "path", "thread", "threads", "lock", "process", "socket",
             "connection", "server", "client", "error", "exception", "warning", "true", "false", "none", "read",
             "write", "open", "close", "start", "stop", "left", "right", "first", "last"]


def pca_2d(x: np.ndarray) -> np.ndarray:
    x = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    return x @ vt[:2].T


def save_word_map(kv, words, path, title, out=print) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out(f"(install matplotlib, e.g. pip install 'fastdl[plot]', to also get {path})")
        return False
    words = [w for w in words if w in kv]
    xy = pca_2d(kv.get_normed_vectors()[[kv.get_index(w) for w in words]])
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.scatter(xy[:, 0], xy[:, 1], s=12, color="tab:blue")
    for (x, y), w in zip(xy, words):
        ax.annotate(w, (x, y), fontsize=8, xytext=(3, 2), textcoords="offset points")
    ax.set_title(title)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out(f"saved {path}")
    return True


def network_check(model, corpus, out=print) -> dict:
    """The same loss from the native trainer and from nn.Embedding + BCE, on the same samples."""
    ids, offsets, _ = encode_corpus(corpus[:200], model.vocab.stoi)
    jobs = job_starts(offsets)
    net = SkipGramNegativeSampling(len(model.vocab), model.vector_size)
    net.in_embed.weight.data[...] = model.wv.vectors
    net.out_embed.weight.data[...] = model.syn1neg
    args = (ids, offsets, jobs, 0, 1, model._keep, model._noise.prob, model._noise.alias)
    kw = dict(sg=True, window=model.window, negative=model.negative, seed=123)
    from .. import _C
    native, n, _ = _C.word2vec_train(model.wv.vectors.copy(), model.syn1neg.copy(), *args, alpha=0.0,
                                     min_alpha=0.0, **kw)
    batch = batch_examples(word2vec_examples(*args, **kw))
    first = float(net(*batch).data)
    out(f"same objective: on {n} skip-gram examples of the first job, the native trainer's loss is "
        f"{native / n:.5f} per example and the nn.Embedding network's {first / n:.5f}")
    opt = optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(20):
        opt.zero_grad()
        loss = net(*batch)
        loss.backward()
        opt.step()
    after = float(loss.data)
    out(f"  20 Adam steps on the network take it to {after / n:.5f}")
    return {"native": native / n, "network": first / n, "after": after / n}


def run(quick: bool = False, out=print, text_path=None, analogies=None, pairs=None, png="word_map.png",
        epochs=None, glove_epochs=None, progress=None) -> dict:
    """``quick``: part of the standard library, fewer epochs (for the tests)."""
    if text_path is not None:
        corpus = list(text.LineCorpus(text_path))
        what = text_path
    else:
        corpus = text.python_docs_corpus(max_files=150 if quick else None)
        what = "Python's documentation (pydoc topics and standard-library docstrings)"
    n = sum(map(len, corpus))
    out(f"corpus: {what}: {len(corpus)} sentences, {n} words")
    epochs = epochs or (3 if quick else 10)
    glove_epochs = glove_epochs or (5 if quick else 25)
    w2v = text.Word2Vec(corpus, vector_size=100, window=5, min_count=5, epochs=epochs, seed=0, progress=progress)
    out(f"word2vec skip-gram: {len(w2v.vocab)} words, {epochs} epochs in {w2v.train_seconds:.1f} s "
        f"({w2v.words_trained / w2v.train_seconds / 1e6:.2f} M words/s); loss per epoch "
        + " ".join(f"{x:.3f}" for x in w2v.loss_history))
    glove = text.GloVe(corpus, vector_size=100, window=10, x_max=10, min_count=5, epochs=glove_epochs, seed=0,
                       progress=progress)
    out(f"GloVe: {glove.cooccurrences} co-occurrences counted in {glove.cooccur_seconds:.2f} s, {glove_epochs} "
        f"epochs in {glove.train_seconds:.1f} s; loss {glove.loss_history[0]:.4f} -> {glove.loss_history[-1]:.4f}")
    res = {"word2vec": w2v, "glove": glove, "loss": w2v.loss_history, "glove_loss": glove.loss_history}
    if text_path is None:
        probe = [w for w in NEIGHBOURS if w in w2v.wv]
    else:  # a few frequent words past the most common ones
        probe = w2v.wv.index_to_key[30:35]
    for name, kv in (("word2vec", w2v.wv), ("GloVe", glove.wv)):
        out(f"nearest neighbours ({name}):")
        for w in probe:
            out(f"  {w:10s} " + ", ".join(x for x, _ in kv.most_similar(w, topn=6)))
    solved = []
    if text_path is None:
        out("analogies (word2vec, 3CosAdd): a is to b as c is to ?")
        for a, b, c, d in ANALOGIES:
            if all(w in w2v.wv for w in (a, b, c, d)):
                got = w2v.wv.analogy(a, b, c, topn=1)[0][0]
                solved.append(got == d)
                out(f"  {a} : {b} :: {c} : {got}" + ("" if got == d else f"   (expected {d})"))
        out(f"  solved {sum(solved)} of {len(solved)}")
    res["solved"] = solved
    for path, fn, name in ((analogies, "evaluate_word_analogies", "analogies"), (pairs, "evaluate_word_pairs", "pairs")):
        if path:
            for lib, kv in (("word2vec", w2v.wv), ("GloVe", glove.wv)):
                r = getattr(kv, fn)(path)
                if name == "analogies":
                    out(f"{lib}: analogy accuracy {r['accuracy']:.4f} ({r['correct']}/{r['total']}), "
                        f"{100 * r['oov_ratio']:.1f}% of the questions out of vocabulary")
                else:
                    out(f"{lib}: word pairs Spearman {r['spearman']:.4f}, Pearson {r['pearson']:.4f} over "
                        f"{r['pairs']} pairs, {100 * r['oov_ratio']:.1f}% out of vocabulary")
                res[f"{lib}_{name}"] = r
    res["network"] = network_check(w2v, corpus, out)
    words = MAP_WORDS if text_path is None else w2v.wv.index_to_key[20:60]
    res["map"] = png if png and save_word_map(w2v.wv, words, png, "word2vec vectors, PCA", out) else None
    return res
