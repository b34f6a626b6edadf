"""SGD, momentum, RMSprop and Adam on the same model, data and initial weights."""
from __future__ import annotations

import numpy as np

from .. import models, optim, tensor
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_flat, save_figure


def _bowl(p):
    """An elongated bowl, steep across and shallow along: where plain SGD zig-zags."""
    return 0.05 * p[0] ** 2 + 2.0 * p[1] ** 2


def optimizer_paths(makers, steps: int = 60, start=(-4.0, 1.5)) -> dict:
    """The path of each optimizer from ``start`` on the bowl (name -> (steps + 1, 2) array)."""
    paths = {}
    for name, make in makers.items():
        p = tensor(np.array(start), requires_grad=True)
        opt, pts = make([p]), [np.array(start)]
        for _ in range(steps):
            opt.zero_grad()
            _bowl(p).backward()
            opt.step()
            pts.append(p.data.copy())
        paths[name] = np.array(pts)
    return paths


def _draw(curves, paths):
    def draw(fig):
        a, b = fig.subplots(1, 2)
        for name, ys in curves.items():
            a.plot(np.arange(1, len(ys) + 1), ys, label=name)
        a.set_yscale("log")
        a.set_xlabel("epoch")
        a.set_title("training loss (MLP on MNIST-5k)")
        a.legend(fontsize=8)
        xs, ys = np.meshgrid(np.linspace(-4.5, 1.5, 200), np.linspace(-2, 2, 200))
        b.contour(xs, ys, 0.05 * xs ** 2 + 2.0 * ys ** 2, levels=np.geomspace(0.01, 8, 14), cmap="Greys")
        for name, pts in paths.items():
            b.plot(pts[:, 0], pts[:, 1], marker=".", ms=3, lw=1, label=name)
        b.plot([0], [0], "k*", ms=10)
        b.set_title("paths on 0.05 x^2 + 2 y^2 (60 steps)")
        b.legend(fontsize=8)
    return draw


def run(quick: bool = False, out=print, plot: str = "optimizers.png") -> dict:
    """Train the same MLP with each optimizer; save the loss curves and the optimizers' paths on a
    contour plot of an elongated bowl."""
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
    out("training loss per epoch (MLP 784-128-64-10, batch 64, same initial weights):")
    out(f"{'optimizer':14s}" + "".join(f"{e + 1:>8d}" for e in range(epochs)) + f"{'test acc':>10s}")
    for name, ys in curves.items():
        out(f"{name:14s}" + "".join(f"{v:8.4f}" for v in ys) + f"{acc[name]:10.3f}")
    out("Momentum smooths and speeds up plain SGD; RMSprop and Adam adapt the step per parameter and fall "
        "fastest at their default learning rates.")
    paths = optimizer_paths({"SGD lr 0.4": lambda ps: optim.SGD(ps, lr=0.4),
                             "momentum 0.9": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9),
                             "RMSprop": lambda ps: optim.RMSprop(ps, lr=0.05),
                             "Adam": lambda ps: optim.Adam(ps, lr=0.2)})
    out("on the bowl 0.05 x^2 + 2 y^2 from (-4, 1.5), distance to the minimum after 60 steps: " +
        ", ".join(f"{k} {np.linalg.norm(v[-1]):.3f}" for k, v in paths.items()))
    save_figure(_draw(curves, paths), plot, out, figsize=(10, 4))
    return {"loss": curves, "test_accuracy": acc, "paths": paths}
