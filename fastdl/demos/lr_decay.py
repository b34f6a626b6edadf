"""Learning-rate decay: the schedules' formulas, and their effect on training."""
from __future__ import annotations

import numpy as np

from .. import models, optim
from ..optim import lr_scheduler as L
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_flat, save_plot


def run(quick: bool = False, out=print, png="lr_schedules.png") -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    if quick:
        xtr, ytr = xtr[:800], ytr[:800]
    epochs = 4 if quick else 12
    lr0 = 0.1
    scheds = {
        "constant": lambda o: None,
        "StepLR(4, 0.5)": lambda o: L.StepLR(o, 4, 0.5),
        "ExponentialLR(0.8)": lambda o: L.ExponentialLR(o, 0.8),
        "InverseTimeDecay(1.0)": lambda o: L.InverseTimeDecay(o, 1.0),
        "LambdaLR(1/sqrt(e+1))": lambda o: L.LambdaLR(o, lambda e: 1 / np.sqrt(e + 1)),
        "CosineAnnealingLR": lambda o: L.CosineAnnealingLR(o, epochs),
    }
    res = {}
    out(f"SGD lr0={lr0}, momentum 0.9, MLP 784-128-10, {epochs} epochs:")
    out(f"{'schedule':24s} {'lr per epoch':<48s} {'last loss':>10s} {'test acc':>9s}")
    for name, make in scheds.items():
        manual_seed(0)
        model = models.mlp(784, (128,), 10)
        opt = optim.SGD(model.parameters(), lr=lr0, momentum=0.9)
        hist = fit_quiet(model, opt, xtr, ytr, epochs, scheduler=make(opt))
        lrs = hist["lr"]
        res[name] = {"lr": lrs, "loss": hist["loss"], "test": accuracy_of(model, xte, yte)}
        shown = " ".join(f"{v:.3g}" for v in lrs[:6]) + (" ..." if len(lrs) > 6 else "")
        out(f"{name:24s} {shown:<48s} {hist['loss'][-1]:10.4f} {res[name]['test']:9.3f}")
    if png:
        save_plot({k: v["lr"] for k, v in res.items()}, "learning rate per epoch", "lr", png, out, logy=True)
    out("A large constant step keeps bouncing around the minimum; decaying it lets the last epochs settle "
        "(InverseTimeDecay is the curriculum's lr0 / (1 + decay_rate * epoch)).")
    return res
