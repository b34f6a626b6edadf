"""A character-level language model of first names: train, watch the loss fall, sample new names."""
from __future__ import annotations

import time

import numpy as np

from .. import datasets, optim
from ..models import CharLM, CharVocab
from ..nn.utils import clip_grad_norm_
from ..rng import generator, manual_seed
from .common import save_figure


def run(quick: bool = False, out=print, epochs: int | None = None, text=None, png="char_lm_loss.png") -> dict:
    """Train on the shipped names list (or on ``text``'s lines) for ``epochs`` epochs (3 with
    ``quick``, else 30): a fixed amount of work, so the result does not depend on the machine's load."""
    manual_seed(0)
    words = [w for w in (text.split() if text is not None else datasets.names()) if w]
    vocab = CharVocab.from_texts(words)
    model = CharLM(len(vocab), embed_dim=32, hidden_size=128)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    epochs = epochs or (3 if quick else 30)
    out(f"{len(words)} names, {len(vocab) - 1} characters + a boundary token; LSTM(32 -> 128), Adam 3e-3, "
        f"batch 64, {epochs} epochs")
    rng, losses, t0, epoch = generator(), [], time.perf_counter(), 0
    while epoch < epochs:
        order = rng.permutation(len(words))
        total, n = 0.0, 0
        for i in range(0, len(order), 64):
            x, y = vocab.batch([words[j] for j in order[i:i + 64]])
            opt.zero_grad()
            loss = model.loss(x, y)
            loss.backward()
            clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total, n = total + loss.item() * len(x), n + len(x)
        losses.append(total / n)
        epoch += 1
        out(f"epoch {epoch:3d}  loss per character {losses[-1]:.4f}  ({time.perf_counter() - t0:.0f}s)")
    uniform = float(np.log(len(vocab)))
    out(f"loss fell from {losses[0]:.3f} to {losses[-1]:.3f} (a uniform guess scores {uniform:.3f})")
    samples = {}
    for temp in (0.5, 1.0):
        samples[temp] = model.sample(vocab, n=10, temperature=temp, top_k=None if temp == 1.0 else 10)
        out(f"samples at temperature {temp}: " + ", ".join(samples[temp]))
    known = set(words)
    novel = [s for s in samples[1.0] if s and s not in known]
    out(f"{len(novel)} of 10 samples at temperature 1.0 are new names, not in the training list")
    save_figure(_draw(losses, uniform, samples), png, out, figsize=(9, 4))
    return {"loss": losses, "uniform": uniform, "samples": samples, "vocab": vocab, "model": model}


def _draw(losses, uniform, samples):
    """The loss per epoch beside the names the model made up."""
    def draw(fig):
        a, b = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        a.plot(np.arange(1, len(losses) + 1), losses, marker="o", ms=3, label="training")
        a.axhline(uniform, color="grey", ls="--", label="uniform guess")
        a.set_xlabel("epoch")
        a.set_ylabel("cross-entropy per character (nats)")
        a.legend()
        b.axis("off")
        for col, (temp, names) in enumerate(samples.items()):
            b.text(0.05 + 0.5 * col, 0.95, f"temperature {temp}", fontweight="bold", va="top", transform=b.transAxes)
            for i, name in enumerate(names):
                b.text(0.05 + 0.5 * col, 0.85 - 0.08 * i, name, va="top", family="monospace", transform=b.transAxes)
        b.set_title("sampled names")
    return draw
