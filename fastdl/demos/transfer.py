"""Transfer learning: pretrain LeNet-5 on digits 0-4, then learn 5-9 from a handful of examples."""
from __future__ import annotations

import numpy as np

from .. import models, nn, optim
from ..nn.utils import freeze, trainable_parameters, unfreeze
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_images


def _lenet():
    return models.lenet5(5, activation="relu", pooling="max", padding=2)


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_images()
    lo_tr, hi_te = ytr < 5, yte >= 5
    xt, yt = xte[hi_te], yte[hi_te] - 5
    shots, draws = ((2,), 2) if quick else ((2, 5, 10), 4)
    pre_epochs, ft_epochs = (3, 40) if quick else (5, 60)

    manual_seed(0)
    pre = _lenet()
    fit_quiet(pre, optim.Adam(pre.parameters(), lr=2e-3), xtr[lo_tr], ytr[lo_tr], pre_epochs)
    pre_acc = accuracy_of(pre, xte[yte < 5], yte[yte < 5])
    weights = pre.state_dict()
    out(f"LeNet-5 pretrained on {int(lo_tr.sum())} images of digits 0-4: test accuracy {pre_acc:.3f} on 0-4")
    out(f"then digits 5-9 from k examples each (mean over {draws} random draws), tested on {len(yt)} images:")
    out(f"{'k':>4s} {'from scratch':>13s} {'transfer':>9s} {'difference':>11s}")
    res = {"pretrain": pre_acc, "shots": {}}
    for k in shots:
        acc = {"scratch": [], "transfer": []}
        for d in range(draws):
            rng = np.random.default_rng(d)
            few = np.concatenate([rng.choice(np.flatnonzero(ytr == c), k, replace=False) for c in range(5, 10)])
            for mode in acc:
                manual_seed(100 + d)
                m = _lenet()
                if mode == "transfer":
                    m.load_state_dict(weights)  # the pretrained network with a new head for the new classes;
                    m[-1] = nn.Linear(84, 5)
                    freeze(m)                   # its convolutional features stay, the classifier is retrained
                    for layer in m[7:]:
                        unfreeze(layer)
                fit_quiet(m, optim.Adam(trainable_parameters(m), lr=2e-3), xtr[few], ytr[few] - 5, ft_epochs)
                acc[mode].append(accuracy_of(m, xt, yt))
        s, t = float(np.mean(acc["scratch"])), float(np.mean(acc["transfer"]))
        res["shots"][k] = {"scratch": s, "transfer": t, "draws": acc}
        out(f"{k:4d} {s:13.3f} {t:9.3f} {t - s:+11.3f}")
    wins = sum(v["transfer"] > v["scratch"] for v in res["shots"].values())
    out(f"Measured: transfer beats training from scratch at {wins} of {len(shots)} sizes; the fewer the examples, "
        "the more the edge and stroke detectors learned on 0-4 are worth.")
    return res
