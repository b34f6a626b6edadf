"""SGD, momentum, RMSprop and Adam on the same model, data and initial weights."""
from __future__ import annotations

from .. import models, optim
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_flat, save_plot


def run(quick: bool = False, out=print, plot: str = "optimizers.png") -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    if quick:
        xtr, ytr = xtr[:800], ytr[:800]
    epochs = 3 if quick else 10
    makers = {
        "SGD lr 0.01": lambda ps: optim.SGD(ps, lr=0.01),
        "momentum 0.9": lambda ps: optim.SGD(ps, lr=0.01, momentum=0.9),
        "RMSprop": lambda ps: optim.RMSprop(ps, lr=1e-3),
        "Adam": lambda ps: optim.Adam(ps, lr=1e-3),
    }
    curves, acc = {}, {}
    for name, make in makers.items():
        manual_seed(0)
        model = models.mlp(784, (128, 64), 10)
        hist = fit_quiet(model, make(model.parameters()), xtr, ytr, epochs)
        curves[name] = hist["loss"]
        acc[name] = accuracy_of(model, xte, yte)
    out(f"training loss per epoch (MLP 784-128-64-10, batch 64, same initial weights):")
    out(f"{'optimizer':14s}" + "".join(f"{e + 1:>8d}" for e in range(epochs)) + f"{'test acc':>10s}")
    for name, ys in curves.items():
        out(f"{name:14s}" + "".join(f"{v:8.4f}" for v in ys) + f"{acc[name]:10.3f}")
    out("Momentum smooths and speeds up plain SGD; RMSprop and Adam adapt the step per parameter and fall "
        "fastest at their default learning rates.")
    if not quick:
        save_plot(curves, "training loss", "cross-entropy", plot, out, logy=True)
    return {"loss": curves, "test_accuracy": acc}
