"""Corpora for word vectors: a text file streamed line by line, or any re-iterable of token lists,
and Python's own documentation as a corpus every installation has."""
from __future__ import annotations

import os
from array import array

import numpy as np

from .vocab import Vocab, word_tokenize

__all__ = ["LineCorpus", "python_docs_corpus", "sentences_of", "encode_corpus", "word_vocab"]


class LineCorpus:
    """A text file as sentences: one line, tokenized (``word_tokenize`` lower-cased by default, or
    ``tokenizer``), is one sentence; blank lines are skipped.  Streamed: iterating reads the file
    again, never all of it at once.  A line that is not valid ``encoding`` raises ValueError naming
    the file and the line."""

    def __init__(self, path, tokenizer=None, lower: bool = True, encoding: str = "utf-8"):
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"LineCorpus: no such file: {self.path}")
        self.tokenizer = tokenizer
        self.lower, self.encoding = lower, encoding

    def __iter__(self):
        tok = self.tokenizer or (lambda line: word_tokenize(line, lower=self.lower))
        with open(self.path, "rb") as f:
            for n, raw in enumerate(f, 1):
                try:
                    line = raw.decode(self.encoding)
                except UnicodeDecodeError as exc:
                    raise ValueError(f"LineCorpus: {self.path} line {n} is not valid {self.encoding} "
                                     f"({exc.reason} at byte {exc.start})") from None
                words = tok(line)
                if words:
                    yield words

    def __repr__(self) -> str:
        return f"LineCorpus({self.path!r})"


def sentences_of(corpus, fn: str = "corpus"):
    """Yields the token lists of ``corpus``: a path (a LineCorpus) or an iterable of token lists.
    A bare string, or an item that is a string, is a TypeError (it would count characters)."""
    if isinstance(corpus, (str, os.PathLike)):
        corpus = LineCorpus(corpus)
    try:
        it = iter(corpus)
    except TypeError:
        raise TypeError(f"{fn}: corpus must be a file path or an iterable of token lists, got "
                        f"{type(corpus).__name__}") from None
    for n, sent in enumerate(it):
        if isinstance(sent, str):
            raise TypeError(f"{fn}: sentence {n} is a string, not a list of tokens; tokenize it "
                            "(text.word_tokenize) or pass a file path")
        yield sent


def word_vocab(corpus, min_count: int, max_vocab_size, fn: str) -> Vocab:
    """The word vectors' vocabulary of ``corpus`` (one streamed pass): the words seen ``min_count``
    times, at most ``max_vocab_size``, most frequent first, no specials.  An empty corpus, or one
    with no such word, is a ValueError saying which."""
    vocab = Vocab(sentences_of(corpus, fn), min_count=min_count, max_vocab_size=max_vocab_size, specials=(),
                  unk=None)
    if len(vocab) == 0:
        total = sum(vocab.counts.values())
        if total == 0:
            raise ValueError(f"{fn}: the corpus is empty (no tokens)")
        raise ValueError(f"{fn}: no word of the corpus occurs min_count={min_count} times "
                         f"({len(vocab.counts)} distinct words, {total} tokens); lower min_count")
    return vocab


def encode_corpus(corpus, stoi: dict, max_sentence_length: int = 10000, fn: str = "corpus"):
    """The corpus as word indices: (ids int32, offsets int64, raw word count).  Words outside
    ``stoi`` are dropped (as word2vec does); sentences longer than ``max_sentence_length`` are cut
    into pieces.  Memory: 4 bytes per kept word."""
    ids = array("i")
    offsets = array("q", [0])
    raw = 0
    get = stoi.get
    for sent in sentences_of(corpus, fn):
        raw += len(sent)
        enc = [i for i in map(get, sent) if i is not None]
        for a in range(0, len(enc), max_sentence_length):
            ids.extend(enc[a:a + max_sentence_length])
            offsets.append(len(ids))
    return (np.frombuffer(ids, dtype=np.int32).copy() if len(ids) else np.zeros(0, np.int32),
            np.frombuffer(offsets, dtype=np.int64).copy(), raw)


def python_docs_corpus(max_files=None) -> list:
    """English text that every Python installation has: the reference topics of ``pydoc`` (the
    language reference) and the docstrings of the standard library's modules, classes and
    functions, read from source with ``ast`` (nothing is imported or downloaded).  One sentence per
    paragraph, tokenized with ``word_tokenize`` (lower case, letters and digits only).  About 320k
    words on Python 3.11."""
    import ast
    import re
    import sysconfig
    texts = []
    try:
        from pydoc_data.topics import topics
        texts.extend(topics.values())
    except ImportError:  # some distributions split pydoc_data out
        pass
    root = sysconfig.get_paths()["stdlib"]
    skip = {"site-packages", "dist-packages", "test", "tests", "idlelib", "lib2to3", "__pycache__"}
    files = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in skip)
        for name in sorted(filenames):
            if not name.endswith(".py"):
                continue
            if max_files is not None and files >= max_files:
                break
            try:
                with open(os.path.join(dirpath, name), encoding="utf-8") as f:
                    tree = ast.parse(f.read())
            except (SyntaxError, UnicodeDecodeError, OSError, ValueError):
                continue
            files += 1
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node)
                    if doc:
                        texts.append(doc)
    alnum = re.compile(r"\w")
    out = []
    for text in texts:
        for para in re.split(r"\n\s*\n", text):
            words = [w for w in word_tokenize(para) if alnum.match(w)]
            if len(words) > 1:
                out.append(words)
    return out
