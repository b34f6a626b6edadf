"""Regularisation: an over-sized MLP on 1,000 digits, with and without dropout and L2 weight decay."""
from __future__ import annotations

from .. import functional as F
from .. import models, optim, tensor
from ..rng import manual_seed
from ..train import predict
from .common import fit_quiet, mnist_flat


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    n = 300 if quick else 1000
    xtr, ytr = xtr[:n], ytr[:n]
    epochs = 8 if quick else 40
    settings = {"plain": (0.0, 0.0), "dropout 0.5": (0.5, 0.0), "L2 1e-2": (0.0, 1e-2),
                "dropout 0.5 + L2 1e-2": (0.5, 1e-2)}
    res = {}
    out(f"MLP 784-512-512-10, SGD momentum 0.9, {epochs} epochs on {n} digits, tested on {len(xte)}:")
    out(f"{'setting':24s} {'train acc':>10s} {'test acc':>9s} {'acc gap':>8s} {'train loss':>11s} {'test loss':>10s}")
    for name, (p, wd) in settings.items():
        manual_seed(0)
        model = models.mlp(784, (512, 512), 10, dropout=p)
        fit_quiet(model, optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=wd), xtr, ytr, epochs)
        r = {}
        for split, x, y in (("train", xtr, ytr), ("test", xte, yte)):
            logits = predict(model, x)
            r[split] = float((logits.argmax(1) == y).mean())
            r[split + "_loss"] = F.cross_entropy(tensor(logits), y).item()
        r["gap"] = r["train"] - r["test"]
        res[name] = r
        out(f"{name:24s} {r['train']:10.3f} {r['test']:9.3f} {r['gap']:8.3f} {r['train_loss']:11.4f} "
            f"{r['test_loss']:10.4f}")
    best = min(res, key=lambda k: res[k]["test_loss"])
    out(f"Measured: the plain net fits its {n} examples (train accuracy {res['plain']['train']:.3f}); "
        f"the lowest test loss is '{best}' ({res[best]['test_loss']:.4f} against {res['plain']['test_loss']:.4f} "
        f"plain), a test accuracy change of {res[best]['test'] - res['plain']['test']:+.3f}.")
    return res
