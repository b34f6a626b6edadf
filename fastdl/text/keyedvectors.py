"""Trained word vectors: lookup, nearest neighbours, analogies, evaluation, and the word2vec / GloVe
file formats (readable and writable by gensim and the original C tools)."""
from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["KeyedVectors", "cosine_similarity"]


def cosine_similarity(a, b):
    """Cosine similarity of two vectors (a float), or of the rows of two matrices (a matrix).  Zero
    vectors have similarity 0 with everything."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.ndim not in (1, 2) or b.ndim not in (1, 2) or a.shape[-1] != b.shape[-1]:
        raise ValueError(f"cosine_similarity: expected vectors or matrices of the same width, got shapes "
                         f"{a.shape} and {b.shape}")
    na = np.linalg.norm(a, axis=-1, keepdims=True)
    nb = np.linalg.norm(b, axis=-1, keepdims=True)
    a = np.divide(a, na, out=np.zeros_like(a), where=na > 0)
    b = np.divide(b, nb, out=np.zeros_like(b), where=nb > 0)
    out = a @ b.T
    return float(out) if out.ndim == 0 else out


def _rankdata(x):
    """Ranks from 1 with ties averaged (as scipy.stats.rankdata's default)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    xs = x[order]
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def _pearson(x, y) -> float:
    x = np.asarray(x, np.float64) - np.mean(x)
    y = np.asarray(y, np.float64) - np.mean(y)
    d = np.sqrt(np.dot(x, x) * np.dot(y, y))
    return float(np.dot(x, y) / d) if d > 0 else float("nan")


class KeyedVectors:
    """Vectors (V, D) float32 with their words: ``kv["king"]``, ``kv.most_similar("king")``,
    ``kv.analogy("man", "king", "woman")``, ``kv.similarity(a, b)``, the evaluations, save / load.
    Words are indexed most frequent first when they come from a trainer."""

    def __init__(self, vectors, index_to_key, counts=None):
        vectors = np.asarray(vectors)
        if vectors.ndim != 2:
            raise ValueError(f"KeyedVectors: vectors must be 2-D (words, dims), got shape {vectors.shape}")
        if vectors.dtype != np.float32:
            vectors = vectors.astype(np.float32)
        keys = list(index_to_key)
        if len(keys) != vectors.shape[0]:
            raise ValueError(f"KeyedVectors: {len(keys)} keys for {vectors.shape[0]} vectors")
        self.vectors = vectors
        self.index_to_key = keys
        self.key_to_index = {k: i for i, k in enumerate(keys)}
        if len(self.key_to_index) != len(keys):
            raise ValueError("KeyedVectors: index_to_key has duplicate keys")
        self.counts = None if counts is None else np.asarray(counts, dtype=np.int64)
        self._normed = None

    # ---- lookup
    def __len__(self) -> int:
        return len(self.index_to_key)

    def __contains__(self, key) -> bool:
        return key in self.key_to_index

    @property
    def vector_size(self) -> int:
        return int(self.vectors.shape[1])

    def get_index(self, key) -> int:
        i = self.key_to_index.get(key)
        if i is None:
            raise KeyError(f"KeyedVectors: word {key!r} is not in the vocabulary")
        return i

    def __getitem__(self, key):
        if isinstance(key, (list, tuple)):
            return np.stack([self.vectors[self.get_index(k)] for k in key])
        return self.vectors[self.get_index(key)]

    get_vector = __getitem__

    def fill_norms(self, force: bool = False) -> None:
        """Compute (again, when ``force``) the unit-length vectors most_similar uses; the trainers
        call this after they change the vectors."""
        if self._normed is None or force:
            n = np.linalg.norm(self.vectors, axis=1, keepdims=True)
            self._normed = np.divide(self.vectors, n, out=np.zeros_like(self.vectors), where=n > 0)

    def get_normed_vectors(self) -> np.ndarray:
        self.fill_norms()
        return self._normed

    def _unit(self, key, lookup=None):
        if isinstance(key, np.ndarray):
            return key.astype(np.float32), None
        i = (lookup or self.key_to_index).get(key)
        if i is None:
            raise KeyError(f"KeyedVectors: word {key!r} is not in the vocabulary")
        return self.get_normed_vectors()[i], i

    @staticmethod
    def _list(words):
        if words is None:
            return []
        if isinstance(words, (str, np.ndarray)):
            return [words]
        return list(words)

    # ---- similarity
    def similarity(self, a, b) -> float:
        """Cosine similarity of two words."""
        return float(np.dot(self._unit(a)[0], self._unit(b)[0]))

    def most_similar(self, positive=None, negative=None, topn: int = 10, restrict_vocab=None, _lookup=None):
        """The ``topn`` words nearest (cosine) to the mean of the unit vectors of ``positive`` minus
        those of ``negative`` (words or vectors), without the query words: [(word, similarity)]."""
        positive, negative = self._list(positive), self._list(negative)
        if not positive and not negative:
            raise ValueError("most_similar: give at least one positive or negative word")
        if isinstance(topn, bool) or not isinstance(topn, int) or topn < 1:
            raise ValueError(f"most_similar: topn must be a positive integer, got {topn!r}")
        vecs, exclude = [], set()
        for w, sign in [(p, 1.0) for p in positive] + [(n, -1.0) for n in negative]:
            v, i = self._unit(w, _lookup)
            vecs.append(sign * v)
            if i is not None:
                exclude.add(i)
        mean = np.mean(vecs, axis=0)
        nrm = np.linalg.norm(mean)
        mean = (mean / nrm if nrm > 0 else mean).astype(np.float32)
        normed = self.get_normed_vectors()
        end = len(normed) if restrict_vocab is None else min(int(restrict_vocab), len(normed))
        dists = normed[:end] @ mean
        return self._best(dists, topn, exclude)

    def _best(self, dists, topn, exclude):
        k = min(len(dists), topn + len(exclude))
        if k <= 0:
            return []
        part = np.argpartition(-dists, k - 1)[:k]
        best = part[np.argsort(-dists[part], kind="stable")]
        return [(self.index_to_key[i], float(dists[i])) for i in best if i not in exclude][:topn]

    def most_similar_cosmul(self, positive=None, negative=None, topn: int = 10, restrict_vocab=None, _lookup=None):
        """3CosMul (Levy and Goldberg, 2014): the words maximising the product of the shifted cosines
        ((1 + cos) / 2) to ``positive`` divided by that to ``negative`` (+ 1e-6)."""
        positive, negative = self._list(positive), self._list(negative)
        if not positive and not negative:
            raise ValueError("most_similar_cosmul: give at least one positive or negative word")
        normed = self.get_normed_vectors()
        end = len(normed) if restrict_vocab is None else min(int(restrict_vocab), len(normed))
        exclude = set()
        pos, neg = [], []
        for words, out in ((positive, pos), (negative, neg)):
            for w in words:
                v, i = self._unit(w, _lookup)
                out.append((1 + normed[:end] @ v) / 2)
                if i is not None:
                    exclude.add(i)
        dists = np.prod(pos, axis=0) / (np.prod(neg, axis=0) + 1e-6) if neg else np.prod(pos, axis=0)
        return self._best(dists, topn, exclude)

    def analogy(self, a, b, c, topn: int = 1, method: str = "add"):
        """``a`` is to ``b`` as ``c`` is to ...?  [(word, score)] best first, the three words
        excluded: 3CosAdd (``method="add"``, nearest to b - a + c) or 3CosMul (``"mul"``)."""
        if method == "add":
            return self.most_similar(positive=[b, c], negative=[a], topn=topn)
        if method == "mul":
            return self.most_similar_cosmul(positive=[b, c], negative=[a], topn=topn)
        raise ValueError(f"analogy: method must be 'add' or 'mul', got {method!r}")

    # ---- evaluation
    def _ok_vocab(self, restrict_vocab, case_insensitive):
        keys = self.index_to_key[:restrict_vocab]
        if case_insensitive:  # the most frequent spelling of a word wins
            return {k.upper(): self.key_to_index[k] for k in reversed(keys)}
        return {k: self.key_to_index[k] for k in reversed(keys)}

    def evaluate_word_analogies(self, path, restrict_vocab: int = 300000, case_insensitive: bool = True,
                                method: str = "add") -> dict:
        """Accuracy on an analogy file in the questions-words format (``: section`` lines, then
        ``a b c expected`` lines), as gensim scores it: questions with a word outside the first
        ``restrict_vocab`` words are out of vocabulary (counted, not scored); the prediction is the
        best word that is not a, b or c.  Lines that do not have four words are skipped and
        counted.  Returns {"accuracy", "correct", "total", "oov_ratio" (a fraction of the questions),
        "skipped_lines", "sections": [{"section", "correct", "total", "accuracy"}]}."""
        if method not in ("add", "mul"):
            raise ValueError(f"evaluate_word_analogies: method must be 'add' or 'mul', got {method!r}")
        ok = self._ok_vocab(restrict_vocab, case_insensitive)
        sections, section = [], None
        oov = questions = skipped = 0
        for line_no, line in enumerate(_read_lines(path, "evaluate_word_analogies"), 1):
            if line.startswith(": "):
                if section:
                    sections.append(section)
                section = {"section": line[2:].strip(), "correct": 0, "total": 0}
                continue
            if not line.strip():
                continue
            if section is None:
                raise ValueError(f"evaluate_word_analogies: {path} line {line_no} comes before any ': section' line")
            words = line.split()
            if len(words) != 4:
                skipped += 1
                continue
            a, b, c, expected = [w.upper() for w in words] if case_insensitive else words
            questions += 1
            if a not in ok or b not in ok or c not in ok or expected not in ok:
                oov += 1
                continue
            ignore = {a, b, c}
            search = self.most_similar if method == "add" else self.most_similar_cosmul
            sims = search(positive=[b, c], negative=[a], topn=5, restrict_vocab=restrict_vocab, _lookup=ok)
            predicted = None
            for word, _ in sims:
                predicted = word.upper() if case_insensitive else word
                if predicted in ok and predicted not in ignore:
                    break
            section["total"] += 1
            section["correct"] += predicted == expected
        if section:
            sections.append(section)
        for s in sections:
            s["accuracy"] = s["correct"] / s["total"] if s["total"] else float("nan")
        correct = sum(s["correct"] for s in sections)
        total = sum(s["total"] for s in sections)
        return {"accuracy": correct / total if total else float("nan"), "correct": correct, "total": total,
                "oov_ratio": oov / questions if questions else 0.0, "skipped_lines": skipped,
                "sections": sections}

    def evaluate_word_pairs(self, path, delimiter: str = "\t", restrict_vocab: int = 300000,
                            case_insensitive: bool = True) -> dict:
        """Correlation of the model's cosine similarities with human judgements in a word-pair file
        (``word1<delimiter>word2<delimiter>score`` lines, ``#`` comments), as gensim computes it.
        Pairs with a word outside the first ``restrict_vocab`` words are out of vocabulary (counted);
        malformed lines are skipped and counted.  Returns {"pearson", "spearman", "pairs",
        "oov_ratio" (a fraction), "skipped_lines"}."""
        ok = self._ok_vocab(restrict_vocab, case_insensitive)
        normed = self.get_normed_vectors()
        gold, model = [], []
        oov = skipped = 0
        for line in _read_lines(path, "evaluate_word_pairs"):
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.rstrip("\r\n").split(delimiter)
            try:
                if len(parts) != 3:
                    raise ValueError
                a, b = (parts[0].upper(), parts[1].upper()) if case_insensitive else (parts[0], parts[1])
                sim = float(parts[2])
                if not np.isfinite(sim):
                    raise ValueError
            except ValueError:
                skipped += 1
                continue
            if a not in ok or b not in ok:
                oov += 1
                continue
            gold.append(sim)
            model.append(float(np.dot(normed[ok[a]], normed[ok[b]])))
        n = len(gold)
        return {"pearson": _pearson(gold, model) if n > 1 else float("nan"),
                "spearman": _pearson(_rankdata(gold), _rankdata(model)) if n > 1 else float("nan"),
                "pairs": n, "oov_ratio": oov / (n + oov) if n + oov else 0.0, "skipped_lines": skipped}

    # ---- files
    def save_word2vec_format(self, path, binary: bool = False) -> None:
        """The word2vec format: a ``count dims`` header, then per word ``word v1 ... vD`` (text, nine
        significant digits: float32 round-trips) or ``word `` followed by D little-endian float32
        (binary), one line each; gensim and word2vec's tools read both.  Written to a temporary file
        and renamed, so a failure never leaves a half-written file under ``path``."""
        for k in self.index_to_key:
            if not isinstance(k, str) or not k or any(ch.isspace() for ch in k):
                raise ValueError(f"save_word2vec_format: word {k!r} cannot be stored (empty, not a string or "
                                 "containing whitespace)")
        path = os.fspath(path)
        tmp = f"{path}.tmp-fastdl-{os.getpid()}"
        v, d = self.vectors.shape
        try:
            with open(tmp, "wb") as f:
                f.write(f"{v} {d}\n".encode())
                if binary:
                    data = self.vectors.astype("<f4")
                    for k, row in zip(self.index_to_key, data):
                        f.write(k.encode("utf-8") + b" " + row.tobytes() + b"\n")
                else:
                    for k, row in zip(self.index_to_key, self.vectors):
                        f.write((k + " " + " ".join(f"{x:.9g}" for x in row.tolist()) + "\n").encode("utf-8"))
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load_word2vec_format(cls, path, binary: bool = False, no_header: bool = False, limit=None,
                             encoding: str = "utf-8") -> "KeyedVectors":
        """Read the word2vec format (text or binary), or GloVe's text format (``no_header=True``: no
        count line).  ``limit`` reads the first words only.  A wrong header, a short or non-numeric
        row or bytes that are not ``encoding`` raise ValueError naming the line."""
        fn = "load_word2vec_format"
        path = os.fspath(path)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
            raise ValueError(f"{fn}: limit must be a non-negative integer or None, got {limit!r}")
        with open(path, "rb") as f:
            if no_header:
                if binary:
                    raise ValueError(f"{fn}: no_header applies to the text format only")
                return cls._read_text(f, path, None, None, limit, encoding, 1)
            header = f.readline()
            try:
                count, dims = (int(x) for x in header.decode("ascii").split())
                if count < 0 or dims < 1:
                    raise ValueError
            except ValueError:
                raise ValueError(f"{fn}: {path} line 1 is not a 'count dims' header: {header[:60]!r}") from None
            if limit is not None:
                count = min(count, limit)
            if binary:
                return cls._read_binary(f, path, count, dims, encoding)
            return cls._read_text(f, path, count, dims, limit, encoding, 2)

    @classmethod
    def load_glove_format(cls, path, limit=None, encoding: str = "utf-8") -> "KeyedVectors":
        """Read Stanford GloVe's text format (``word v1 ... vD`` lines, no header)."""
        return cls.load_word2vec_format(path, no_header=True, limit=limit, encoding=encoding)

    @classmethod
    def _read_text(cls, f, path, count, dims, limit, encoding, first_line):
        fn = "load_word2vec_format"
        keys, rows = [], []
        for n, raw in enumerate(f, first_line):
            if count is not None and len(keys) >= count:
                break
            if limit is not None and len(keys) >= limit:
                break
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError:
                raise ValueError(f"{fn}: {path} line {n} is not valid {encoding}") from None
            parts = line.rstrip("\r\n").rstrip(" ").split(" ")
            if len(parts) < 2 and not line.strip():
                continue
            if dims is None:
                dims = len(parts) - 1
                if dims < 1:
                    raise ValueError(f"{fn}: {path} line {n} has no vector")
            if len(parts) != dims + 1:
                raise ValueError(f"{fn}: {path} line {n} has {len(parts) - 1} numbers, expected {dims}")
            try:
                rows.append(np.array(parts[1:], dtype=np.float32))
            except ValueError:
                raise ValueError(f"{fn}: {path} line {n} has a value that is not a number") from None
            keys.append(parts[0])
        if count is not None and len(keys) < count:
            raise ValueError(f"{fn}: {path} has {len(keys)} vectors, its header says {count}")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{fn}: {path} has a word twice")
        vec = np.stack(rows) if rows else np.zeros((0, dims or 0), np.float32)
        if not np.all(np.isfinite(vec)):
            raise ValueError(f"{fn}: {path} has non-finite values")
        return cls(vec, keys)

    @classmethod
    def _read_binary(cls, f, path, count, dims, encoding):
        fn = "load_word2vec_format"
        keys = []
        vec = np.empty((count, dims), np.float32)
        nbytes = 4 * dims
        for n in range(count):
            word = bytearray()
            while True:
                ch = f.read(1)
                if not ch:
                    raise ValueError(f"{fn}: {path} ends inside word {n + 1} of {count}")
                if ch == b" ":
                    break
                if ch != b"\n" or word:
                    word += ch
                if len(word) > 10000:
                    raise ValueError(f"{fn}: {path} word {n + 1} is longer than 10000 bytes (not the binary format?)")
            data = f.read(nbytes)
            if len(data) != nbytes:
                raise ValueError(f"{fn}: {path} ends inside the vector of word {n + 1} of {count}")
            try:
                keys.append(word.decode(encoding))
            except UnicodeDecodeError:
                raise ValueError(f"{fn}: {path} word {n + 1} is not valid {encoding}") from None
            vec[n] = np.frombuffer(data, dtype="<f4")
        if len(set(keys)) != len(keys):
            raise ValueError(f"{fn}: {path} has a word twice")
        if not np.all(np.isfinite(vec)):
            raise ValueError(f"{fn}: {path} has non-finite values")
        return cls(vec, keys)

    def save(self, path) -> None:
        """Vectors, words and counts in one ``.npz`` (no pickles)."""
        path = os.fspath(path)
        arrays = {"vectors": self.vectors, "keys": np.array(json.dumps(self.index_to_key, ensure_ascii=False))}
        if self.counts is not None:
            arrays["counts"] = self.counts
        tmp = f"{path}.tmp-fastdl-{os.getpid()}.npz"
        try:
            np.savez(tmp, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    @classmethod
    def load(cls, path) -> "KeyedVectors":
        """Read what :meth:`save` wrote; ValueError for any other file."""
        try:
            with np.load(os.fspath(path), allow_pickle=False) as z:
                vectors = z["vectors"]
                keys = json.loads(str(z["keys"]))
                counts = z["counts"] if "counts" in z.files else None
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"KeyedVectors.load: {path} is not saved word vectors ({exc})") from None
        if not isinstance(keys, list) or vectors.ndim != 2 or len(keys) != len(vectors):
            raise ValueError(f"KeyedVectors.load: {path} is inconsistent")
        return cls(vectors, keys, counts)

    def __repr__(self) -> str:
        return f"KeyedVectors({len(self)} words, {self.vector_size} dims)"


def _read_lines(path, fn):
    path = os.fspath(path)
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ValueError(f"{fn}: {path} line {n} is not valid UTF-8") from None
