"""Multi-task learning: four yes/no questions about each digit, a third of the answers missing."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import models, optim
from ..rng import manual_seed
from ..train import predict
from .common import fit_quiet, mnist_flat

TASKS = ("even", ">= 5", "has a loop (0 6 8 9)", "is 1 or 7")


def labels(y):
    return np.stack([y % 2 == 0, y >= 5, np.isin(y, [0, 6, 8, 9]), np.isin(y, [1, 7])], axis=1).astype(np.float32)


class _MaskedBCE:
    """BCE with logits where each target row is [labels..., present-flags...]."""

    def __call__(self, out, target):
        t = target.data
        k = t.shape[1] // 2
        return F.binary_cross_entropy_with_logits(out, t[:, :k], mask=t[:, k:] > 0)


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    rng = np.random.default_rng(0)
    t_tr = labels(ytr)
    present = rng.random(t_tr.shape) > 1 / 3  # a third of the labels are missing
    target = np.concatenate([np.where(present, t_tr, 0.5), present.astype(np.float32)], axis=1)
    manual_seed(0)
    model = models.mlp(784, (256, 128), len(TASKS))  # one shared trunk, one logit per task
    epochs = 3 if quick else 10
    hist = fit_quiet(model, optim.Adam(model.parameters(), lr=1e-3), xtr, target, epochs, loss_fn=_MaskedBCE(),
                     metrics=())
    pred = predict(model, xte) > 0
    acc = (pred == labels(yte).astype(bool)).mean(axis=0)
    out(f"{len(TASKS)} binary labels per image, {present.size - present.sum()} of {present.size} missing in "
        f"training: masked entries add nothing to the loss or the gradient.")
    out(f"training loss per epoch: " + " ".join(f"{v:.4f}" for v in hist["loss"]))
    for name, a in zip(TASKS, acc):
        out(f"  test accuracy, {name:22s} {a:.3f}")
    return {"accuracy": dict(zip(TASKS, acc.tolist())), "missing": float(1 - present.mean())}
