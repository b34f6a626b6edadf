"""Tokenizers and a vocabulary: specials first, then tokens by frequency; encode, decode, save, load."""
from __future__ import annotations

import json
import re
from collections import Counter

__all__ = ["Vocab", "char_tokenize", "word_tokenize"]

_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def char_tokenize(text: str) -> list:
    """The characters of ``text``."""
    if not isinstance(text, str):
        raise TypeError(f"char_tokenize: text must be a string, got {type(text).__name__}")
    return list(text)


def word_tokenize(text: str, lower: bool = True) -> list:
    """Words (runs of letters, digits and underscores) and single punctuation marks."""
    if not isinstance(text, str):
        raise TypeError(f"word_tokenize: text must be a string, got {type(text).__name__}")
    return _WORD.findall(text.lower() if lower else text)


class Vocab:
    """Token <-> index.  Indices: the ``specials`` in order, then the tokens seen at least
    ``min_freq`` times, most frequent first (ties in sorted order), at most ``max_size`` in all.
    Unknown tokens map to ``unk`` (which must be one of the specials) or raise KeyError without one.
    """

    def __init__(self, sequences=(), min_freq: int = 1, specials=("<pad>", "<unk>", "<bos>", "<eos>"),
                 max_size=None, unk: str | None = "<unk>", *, min_count=None, max_vocab_size=None):
        # min_count / max_vocab_size: the word-vector spellings (gensim's) of min_freq / max_size
        if min_count is not None:
            min_freq = min_count
        if max_vocab_size is not None:
            max_size = max_vocab_size
        if isinstance(min_freq, bool) or not isinstance(min_freq, int) or min_freq < 1:
            raise ValueError(f"Vocab: min_freq must be a positive integer, got {min_freq!r}")
        if max_size is not None and (isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 0):
            raise ValueError(f"Vocab: max_size must be a non-negative integer or None, got {max_size!r}")
        specials = list(specials)
        if len(set(specials)) != len(specials):
            raise ValueError(f"Vocab: specials has duplicates: {specials}")
        if unk is not None and unk not in specials:
            raise ValueError(f"Vocab: unk {unk!r} must be one of the specials {specials}")
        if isinstance(sequences, str):
            raise TypeError("Vocab: sequences must be an iterable of token lists (a string would count characters "
                            "of one text; wrap it in a list)")
        counts = Counter()
        for seq in sequences:
            counts.update(seq)
        self.counts = counts
        self.min_freq, self.max_size = min_freq, max_size
        kept = sorted((t for t, c in counts.items() if c >= min_freq and t not in specials),
                      key=lambda t: (-counts[t], t))
        if max_size is not None:
            kept = kept[:max(0, max_size - len(specials))]
        self.itos = specials + kept
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        self.specials, self.unk = specials, unk

    def update(self, sequences) -> list:
        """Count more sequences; tokens that now reach ``min_freq`` (and fit ``max_size``) are appended
        after the existing ones, whose indices never change.  Returns the new tokens."""
        more = Counter()
        for seq in sequences:
            more.update(seq)
        self.counts.update(more)
        room = None if self.max_size is None else max(0, self.max_size - len(self.itos))
        new = sorted((t for t in more if t not in self.stoi and self.counts[t] >= self.min_freq
                      and t not in self.specials), key=lambda t: (-self.counts[t], t))
        if room is not None:
            new = new[:room]
        for t in new:
            self.stoi[t] = len(self.itos)
            self.itos.append(t)
        return new

    def frequencies(self):
        """The count of every token in index order, as an int64 array (specials count 0 unless seen)."""
        import numpy as np
        return np.array([self.counts.get(t, 0) for t in self.itos], dtype=np.int64)

    def keep_probabilities(self, sample: float = 1e-3):
        """Per token, the probability that frequency subsampling keeps one occurrence: Mikolov's
        word2vec.c rule ``(sqrt(f / (sample * T)) + 1) * sample * T / f`` (f the token's count, T the
        total count of the vocabulary), capped at 1; all ones for ``sample == 0``."""
        import numpy as np
        if isinstance(sample, bool) or not isinstance(sample, (int, float)) or not 0 <= sample < float("inf"):
            raise ValueError(f"Vocab.keep_probabilities: sample must be a finite number >= 0, got {sample!r}")
        f = self.frequencies().astype(np.float64)
        if sample == 0 or f.sum() == 0:
            return np.ones(len(f), np.float32)
        th = sample * f.sum()
        with np.errstate(divide="ignore"):
            p = np.where(f > 0, (np.sqrt(f / th) + 1) * th / np.maximum(f, 1), 1.0)
        return np.minimum(p, 1.0).astype(np.float32)

    def noise_distribution(self, power: float = 0.75):
        """The unigram distribution raised to ``power`` (0.75 for negative sampling), normalised."""
        import numpy as np
        f = self.frequencies().astype(np.float64) ** float(power)
        if not f.sum() > 0:
            raise ValueError("Vocab.noise_distribution: the vocabulary has no counted token")
        return f / f.sum()

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token) -> bool:
        return token in self.stoi

    def __getitem__(self, token) -> int:
        i = self.stoi.get(token)
        if i is None:
            if self.unk is None:
                raise KeyError(f"Vocab: token {token!r} is not in the vocabulary (and it has no unk token)")
            return self.stoi[self.unk]
        return i

    def _special(self, name):
        return self.stoi.get(name)

    pad_id = property(lambda self: self._special("<pad>"))
    unk_id = property(lambda self: None if self.unk is None else self.stoi[self.unk])
    bos_id = property(lambda self: self._special("<bos>"))
    eos_id = property(lambda self: self._special("<eos>"))

    def encode(self, tokens, add_bos: bool = False, add_eos: bool = False) -> list:
        """Indices of ``tokens`` (with BOS / EOS around them if asked)."""
        if isinstance(tokens, str) and len(tokens) != 1:
            tokens = list(tokens)  # a string encodes as its characters
        ids = [self[t] for t in tokens]
        if add_bos:
            ids = [self._need("<bos>")] + ids
        if add_eos:
            ids = ids + [self._need("<eos>")]
        return ids

    def _need(self, name):
        i = self._special(name)
        if i is None:
            raise ValueError(f"Vocab: {name} is not among the specials {self.specials}")
        return i

    def decode(self, ids, strip_specials: bool = True, stop_at_eos: bool = True) -> list:
        """Tokens of ``ids``; stops at the first EOS and drops specials unless told otherwise."""
        out = []
        eos = self._special("<eos>")
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.itos):
                raise IndexError(f"Vocab.decode: index {i} is outside the vocabulary of {len(self.itos)} tokens")
            if stop_at_eos and i == eos:
                break
            if strip_specials and self.itos[i] in self.specials:
                continue
            out.append(self.itos[i])
        return out

    def save(self, path) -> None:
        """Write the vocabulary as JSON (tokens in index order, specials, unk, counts)."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"format": "fastdl.Vocab", "version": 1, "itos": self.itos, "specials": self.specials,
                       "unk": self.unk, "counts": dict(self.counts), "min_freq": self.min_freq,
                       "max_size": self.max_size}, f, ensure_ascii=False)

    @classmethod
    def load(cls, path) -> "Vocab":
        """Read a vocabulary written by :meth:`save`; ValueError naming the problem for a bad file."""
        try:
            with open(path, encoding="utf-8") as f:
                d = json.load(f)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"Vocab.load: {path} is not a saved vocabulary ({exc})") from None
        if not isinstance(d, dict) or d.get("format") != "fastdl.Vocab":
            raise ValueError(f"Vocab.load: {path} is not a saved vocabulary")
        itos, specials, unk = d.get("itos"), d.get("specials"), d.get("unk")
        if not (isinstance(itos, list) and isinstance(specials, list) and itos[:len(specials)] == specials
                and len(set(map(str, itos))) == len(itos) and (unk is None or unk in specials)):
            raise ValueError(f"Vocab.load: {path} has an inconsistent token list")
        v = cls.__new__(cls)
        v.itos, v.specials, v.unk = list(itos), list(specials), unk
        v.stoi = {t: i for i, t in enumerate(v.itos)}
        counts = d.get("counts") or {}
        if not (isinstance(counts, dict) and all(isinstance(c, int) and c >= 0 for c in counts.values())):
            raise ValueError(f"Vocab.load: {path} has invalid counts")
        v.counts = Counter(counts)
        v.min_freq, v.max_size = d.get("min_freq", 1), d.get("max_size")
        return v

    def __repr__(self) -> str:
        return f"Vocab({len(self)} tokens, specials={self.specials})"
