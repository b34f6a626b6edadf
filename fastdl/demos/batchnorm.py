"""Batch normalization: the same deep MLP with and without BatchNorm1d."""
from __future__ import annotations

from .. import nn, optim
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_flat


def _net(bn: bool, depth: int = 6, width: int = 128) -> nn.Sequential:
    layers, prev = [], 784
    for _ in range(depth):
        layers.append(nn.Linear(prev, width))
        if bn:
            layers.append(nn.BatchNorm1d(width))
        layers.append(nn.Tanh())
        prev = width
    return nn.Sequential(*layers, nn.Linear(prev, 10))


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    if quick:
        xtr, ytr = xtr[:1000], ytr[:1000]
    epochs = 3 if quick else 8
    res = {}
    out(f"6 hidden tanh layers of 128, SGD lr 0.05 (no momentum), {epochs} epochs:")
    for bn in (False, True):
        manual_seed(0)
        model = _net(bn)
        hist = fit_quiet(model, optim.SGD(model.parameters(), lr=0.05), xtr, ytr, epochs)
        name = "with BatchNorm1d" if bn else "without"
        res[name] = {"loss": hist["loss"], "test": accuracy_of(model, xte, yte)}
        out(f"  {name:18s} loss per epoch " + " ".join(f"{v:.3f}" for v in hist["loss"]) +
            f"   test accuracy {res[name]['test']:.3f}")
    a, b = res["without"], res["with BatchNorm1d"]
    out(f"Measured: after epoch 1 the loss is {b['loss'][0]:.3f} with batch norm against {a['loss'][0]:.3f} without; "
        "normalizing each layer's inputs (then scaling by gamma, shifting by beta) lets the same step size work "
        "at every depth.  In eval mode the layers use their running averages.")
    return res
