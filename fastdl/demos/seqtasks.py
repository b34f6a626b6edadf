"""Generated sequence tasks for the three RNN shapes (many-to-one, many-to-many, one-to-many)."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import nn, optim, tensor
from ..autograd import no_grad
from ..rng import manual_seed

VOCAB = 10


def count_task(n, rng):
    """Many-to-one: digit sequences of length 5-15; label 1 when 7s outnumber 3s, 0 otherwise (ties: 0)."""
    lengths = rng.integers(5, 16, n)
    x = rng.integers(0, VOCAB, (n, 15))
    y = np.array([(row[:k] == 7).sum() > (row[:k] == 3).sum() for row, k in zip(x, lengths)], np.int64)
    return x, lengths, y


def record_task(n, rng, t=12):
    """Many-to-many: tag each position 1 when its digit is larger than every digit before it."""
    x = rng.integers(0, VOCAB, (n, t))
    run_max = np.maximum.accumulate(x, axis=1)
    prev = np.concatenate([np.full((n, 1), -1), run_max[:, :-1]], axis=1)
    return x, (x > prev).astype(np.int64)


class SeqClassifier(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(VOCAB, 16), nn.GRU(16, hidden, batch_first=True), nn.Linear(hidden, 2)

    def forward(self, x, lengths=None):
        _, h = self.rnn(self.embed(x), lengths=lengths)
        return self.head(h[-1])  # the state after each sequence's own last step


class Tagger(nn.Module):
    def __init__(self, hidden=32):
        super().__init__()
        self.embed, self.rnn, self.head = nn.Embedding(VOCAB, 16), nn.LSTM(16, hidden, batch_first=True), nn.Linear(hidden, 2)

    def forward(self, x):
        out, _ = self.rnn(self.embed(x))
        return self.head(out)


class Generator(nn.Module):
    """One-to-many: a start digit sets the initial state; the GRU then emits the next digits one by one."""

    def __init__(self, hidden=32):
        super().__init__()
        self.init = nn.Linear(VOCAB, hidden)
        self.embed, self.rnn, self.head = nn.Embedding(VOCAB + 1, 16), nn.GRU(16, hidden, batch_first=True), nn.Linear(hidden, VOCAB)

    def h0(self, start):
        return self.init(np.eye(VOCAB, dtype=np.float32)[start]).tanh().unsqueeze(0)

    def forward(self, start, prev_tokens):
        out, _ = self.rnn(self.embed(prev_tokens), self.h0(start))
        return self.head(out)

    def generate(self, start, steps):
        with no_grad():
            h = self.h0(start)
            tok = np.full((len(start), 1), VOCAB)  # the "go" token
            outs = []
            for _ in range(steps):
                o, h = self.rnn(self.embed(tok), h)
                tok = self.head(o).data.argmax(-1)
                outs.append(tok[:, 0])
        return np.stack(outs, 1)


def train_steps(model, loss_fn, batches, epochs, lr=3e-3):
    opt = optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(epochs):
        total = 0.0
        for b in batches:
            opt.zero_grad()
            loss = loss_fn(*b)
            loss.backward()
            opt.step()
            total += loss.item()
        losses.append(total / len(batches))
    return losses


def many_to_one(quick=False, out=print):
    manual_seed(0)
    rng = np.random.default_rng(0)
    x, ln, y = count_task(3000, rng)
    xt, lt, yt = count_task(1000, rng)
    model = SeqClassifier()
    batches = [(x[i:i + 64], ln[i:i + 64], y[i:i + 64]) for i in range(0, len(x), 64)]
    losses = train_steps(model, lambda a, b, c: F.cross_entropy(model(a, b), c), batches, 3 if quick else 15)
    model.eval()
    acc = float((model(xt, lt).data.argmax(1) == yt).mean())
    out(f"many-to-one: does 7 occur more often than 3 in a digit sequence of length 5-15 (variable lengths)?")
    out(f"  GRU(16 -> 32) on the final state; loss {losses[0]:.3f} -> {losses[-1]:.3f}; test accuracy {acc:.3f} "
        f"(majority class {max(yt.mean(), 1 - yt.mean()):.3f})")
    return {"loss": losses, "accuracy": acc, "baseline": float(max(yt.mean(), 1 - yt.mean()))}


def many_to_many(quick=False, out=print):
    manual_seed(0)
    rng = np.random.default_rng(1)
    x, y = record_task(3000, rng)
    xt, yt = record_task(1000, rng)
    model = Tagger()
    batches = [(x[i:i + 64], y[i:i + 64]) for i in range(0, len(x), 64)]
    losses = train_steps(model, lambda a, b: F.cross_entropy(model(a).reshape(-1, 2), b.reshape(-1)), batches,
                         3 if quick else 12)
    acc = float((model(xt).data.argmax(-1) == yt).mean())
    out("many-to-many: tag each digit 1 if it beats every digit before it (a running record), length 12")
    out(f"  LSTM(16 -> 32) with a per-step head; loss {losses[0]:.3f} -> {losses[-1]:.3f}; per-step test accuracy "
        f"{acc:.3f} (always-0 baseline {1 - yt.mean():.3f})")
    return {"loss": losses, "accuracy": acc, "baseline": float(1 - yt.mean())}


def one_to_many(quick=False, out=print, steps=6):
    manual_seed(0)
    rng = np.random.default_rng(2)
    start = rng.integers(0, VOCAB, 3000)
    target = (start[:, None] + 3 * np.arange(1, steps + 1)) % VOCAB  # count up in threes from the start digit
    prev = np.concatenate([np.full((len(start), 1), VOCAB), target[:, :-1]], axis=1)  # teacher forcing
    model = Generator()
    batches = [(start[i:i + 64], prev[i:i + 64], target[i:i + 64]) for i in range(0, len(start), 64)]
    losses = train_steps(model, lambda s, p, t: F.cross_entropy(model(s, p).reshape(-1, VOCAB), t.reshape(-1)),
                         batches, 3 if quick else 10)
    test = np.arange(VOCAB)
    gen = model.generate(test, steps)
    want = (test[:, None] + 3 * np.arange(1, steps + 1)) % VOCAB
    exact = float((gen == want).all(axis=1).mean())
    out(f"one-to-many: from one start digit d, generate d+3, d+6, ... (mod 10), {steps} steps, decoding greedily")
    out(f"  GRU with the start digit in its initial state; loss {losses[0]:.3f} -> {losses[-1]:.3f}; "
        f"exact sequences {exact:.2f} of the 10 start digits; e.g. 4 -> {' '.join(map(str, gen[4]))}")
    return {"loss": losses, "exact": exact}
