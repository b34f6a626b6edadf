"""Neural machine translation of dates: human-readable dates ("saturday april 28 1990",
"10.11.19", "3rd of march 2001") to ISO (1990-04-28), with an attention seq2seq trained on
generated pairs; greedy against beam search, exact match and BLEU, and an attention heat map."""
from __future__ import annotations

import numpy as np

from .. import datasets, optim, text
from ..models import Seq2Seq
from ..nn.utils import clip_grad_norm_
from ..rng import generator, manual_seed
from ..progress import progress_bar
from .common import save_heatmap

SRC_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789 ,./-"
MAX_OUT = 10  # YYYY-MM-DD


class DateTranslator:
    """The trained model with its vocabularies: ``translate("3rd of march 2001")`` -> "2001-03-03"."""

    def __init__(self, model: Seq2Seq, src: text.Vocab, tgt: text.Vocab):
        self.model, self.src, self.tgt = model, src, tgt

    def encode(self, dates):
        ids = [self.src.encode(d.lower().strip()) or [self.src.unk_id] for d in dates]
        lengths = np.array([len(i) for i in ids], np.int64)
        src = np.full((len(ids), lengths.max()), self.src.pad_id, np.int64)
        for r, i in enumerate(ids):
            src[r, :len(i)] = i
        return src, lengths

    def greedy(self, dates):
        src, lengths = self.encode(dates)
        toks, w = self.model.greedy(src, lengths, self.tgt.bos_id, self.tgt.eos_id, MAX_OUT + 1)
        return ["".join(self.tgt.decode(t)) for t in toks], w

    def beam(self, date, width=5):
        src, _ = self.encode([date])
        (toks, score), = self.model.beam(src[0], self.tgt.bos_id, self.tgt.eos_id, beam_width=width,
                                         max_len=MAX_OUT + 1)
        return "".join(self.tgt.decode(toks))

    translate = beam


def _batches(pairs, src, tgt, batch_size, rng):
    order = rng.permutation(len(pairs))
    for i in range(0, len(order), batch_size):
        chunk = [pairs[j] for j in order[i:i + batch_size]]
        s = [src.encode(h) for h, _ in chunk]
        lengths = np.array([len(x) for x in s], np.int64)
        S = np.full((len(s), lengths.max()), src.pad_id, np.int64)
        for r, x in enumerate(s):
            S[r, :len(x)] = x
        t = np.array([tgt.encode(iso, add_bos=True, add_eos=True) for _, iso in chunk], np.int64)
        yield S, lengths, t[:, :-1], t[:, 1:]


def run(quick: bool = False, out=print, dates=(), epochs=None, n_train=None, heatmap="date_attention.png",
        progress=None) -> dict:
    """Train on ``n_train`` generated pairs, evaluate on 1,000 held-out ones (200 with ``quick``)."""
    manual_seed(0)
    n_train = n_train or (3000 if quick else 10000)
    epochs = epochs or (4 if quick else 6)
    n_test = 200 if quick else 1000
    train_pairs = datasets.date_pairs(n_train, seed=0)
    seen = {h for h, _ in train_pairs}
    test_pairs = [p for p in datasets.date_pairs(3 * n_test, seed=1) if p[0] not in seen][:n_test]
    src = text.Vocab([list(SRC_CHARS)] + [list(h) for h, _ in train_pairs], specials=("<pad>", "<unk>"))
    tgt = text.Vocab([list("0123456789-")])
    model = Seq2Seq(len(src), len(tgt), embed_dim=32, enc_hidden=64, dec_hidden=128, attn_dim=64,
                    pad_id=src.pad_id)
    tr = DateTranslator(model, src, tgt)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    sched = optim.lr_scheduler.StepLR(opt, step_size=max(epochs // 3, 1), gamma=0.5) if not quick else None
    out(f"{n_train} training pairs, {len(test_pairs)} held-out; BiLSTM(32 -> 2x64) encoder, additive attention, "
        f"LSTM(128) decoder, Adam 3e-3, batch 64, {epochs} epochs")
    rng, history = generator(), []
    for epoch in range(1, epochs + 1):
        model.train()
        bar = progress_bar((n_train + 63) // 64, f"epoch {epoch}", progress)
        total, n = 0.0, 0
        for S, lengths, tin, tout in _batches(train_pairs, src, tgt, 64, rng):
            opt.zero_grad()
            loss = model.loss(S, lengths, tin, tout)
            loss.backward()
            clip_grad_norm_(model.parameters(), 5.0)
            opt.step()
            total, n = total + loss.item() * len(S), n + len(S)
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        if bar is not None:
            bar.close()
        if sched is not None:
            sched.step()
        model.eval()
        preds, _ = tr.greedy([h for h, _ in test_pairs])
        acc = float(np.mean([p == iso for p, (_, iso) in zip(preds, test_pairs)]))
        history.append({"loss": total / n, "exact": acc})
        out(f"epoch {epoch:2d}  loss {total / n:.4f}  held-out exact match (greedy) {acc:.3f}")
    model.eval()
    refs = [[list(iso)] for _, iso in test_pairs]
    greedy_preds, _ = tr.greedy([h for h, _ in test_pairs])
    results = {"greedy": (float(np.mean([p == r for p, (_, r) in zip(greedy_preds, test_pairs)])),
                          text.bleu([list(p) for p in greedy_preds], refs))}
    for width in (3, 5):
        preds = [tr.beam(h, width) for h, _ in test_pairs]
        results[f"beam{width}"] = (float(np.mean([p == r for p, (_, r) in zip(preds, test_pairs)])),
                                   text.bleu([list(p) for p in preds], refs))
    for name, (acc, b) in results.items():
        out(f"{name:8s} exact match {acc:.3f}   corpus BLEU (characters) {b:.4f}")
    examples = list(dates) or ["3rd of march 2001", "saturday april 28 1990", "10.11.19", "5/30/86",
                               "tuesday, december 8, 1987"]
    for d in examples:
        out(f"  {d!r:32s} -> {tr.translate(d)}")
    shown = examples[0].lower().strip()
    pred, w = tr.greedy([shown])
    steps = len(pred[0]) + 1  # the characters and the EOS
    saved = bool(heatmap) and save_heatmap(w[0][:steps, :len(shown)], list(pred[0]) + ["<eos>"], list(shown),
                                           f"attention: {shown!r} -> {pred[0]}", heatmap, out=out)
    return {"history": history, "results": results, "translator": tr, "heatmap": heatmap if saved else None}
