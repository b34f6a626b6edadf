"""A character-level language model (Embedding -> LSTM/GRU -> Linear) and its vocabulary,
with temperature and top-k sampling of new sequences."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn
from ..autograd import no_grad
from ..rng import generator
from ..tensor import Tensor


class CharVocab:
    """Characters of a corpus plus one boundary token (index 0) that starts and ends every sequence."""

    BOUNDARY = "<s>"

    def __init__(self, chars):
        self.chars = [self.BOUNDARY] + sorted(set(chars) - {self.BOUNDARY})
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts) -> "CharVocab":
        return cls({c for t in texts for c in t})

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str, boundaries: bool = True) -> np.ndarray:
        try:
            ids = [self.index[c] for c in text]
        except KeyError as exc:
            raise ValueError(f"CharVocab.encode: character {exc.args[0]!r} is not in the vocabulary") from None
        return np.array(([0] + ids + [0]) if boundaries else ids, dtype=np.int64)

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in ids if i != 0)

    def batch(self, texts, ignore_index: int = -100):
        """Inputs (B, T) = <s> + text, targets (B, T) = text + <s>, padded (targets with ignore_index)."""
        enc = [self.encode(t) for t in texts]
        t_max = max(len(e) for e in enc) - 1
        x = np.zeros((len(enc), t_max), np.int64)
        y = np.full((len(enc), t_max), ignore_index, np.int64)
        for i, e in enumerate(enc):
            x[i, :len(e) - 1] = e[:-1]
            y[i, :len(e) - 1] = e[1:]
        return x, y


class CharLM(nn.Module):
    """tokens (B, T) -> logits (B, T, V): embedding, a recurrent stack (batch-first), a linear read-out."""

    def __init__(self, vocab_size: int, embed_dim: int = 32, hidden_size: int = 128, num_layers: int = 1,
                 cell: str = "lstm", dropout: float = 0.0):
        super().__init__()
        cells = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
        if cell not in cells:
            raise ValueError(f"CharLM: cell must be one of {sorted(cells)}, got {cell!r}")
        self.vocab_size, self.cell = vocab_size, cell
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.rnn = cells[cell](embed_dim, hidden_size, num_layers=num_layers, batch_first=True,
                               dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(self, tokens, state=None):
        out, state = self.rnn(self.embed(tokens), state)
        return self.head(out), state

    def loss(self, tokens, targets, ignore_index: int = -100) -> Tensor:
        """Mean per-token cross-entropy over the targets that are not ``ignore_index`` (padding)."""
        logits, _ = self(tokens)
        return F.cross_entropy(logits.reshape(-1, self.vocab_size), np.asarray(targets).reshape(-1),
                               ignore_index=ignore_index)

    def sample(self, vocab: CharVocab, n: int = 10, temperature: float = 1.0, top_k: int | None = None,
               max_len: int = 30, prefix: str = "") -> list:
        """Draw ``n`` sequences one character at a time from softmax(logits / temperature), optionally
        restricted to the ``top_k`` most likely characters; a sequence ends at the boundary token."""
        if temperature <= 0:
            raise ValueError(f"sample: temperature must be > 0, got {temperature}")
        was = self.training
        self.eval()
        rng = generator()
        out = []
        try:
            with no_grad():
                for _ in range(n):
                    ids = list(vocab.encode(prefix, boundaries=False))
                    logits, state = self(np.array([[0] + ids], np.int64))
                    for _ in range(max_len):
                        z = logits.data[0, -1].astype(np.float64) / temperature
                        if top_k is not None and top_k < len(z):
                            z[z < np.sort(z)[-top_k]] = -np.inf
                        p = np.exp(z - z.max())
                        p /= p.sum()
                        nxt = int(rng.choice(len(p), p=p))
                        if nxt == 0:
                            break
                        ids.append(nxt)
                        logits, state = self(np.array([[nxt]], np.int64), state)
                    out.append(vocab.decode(ids))
        finally:
            self.train(was)
        return out
