"""Vanishing and exploding activations: a 10-layer ReLU net under four initialisations."""
from __future__ import annotations

import numpy as np

from .. import init, nn, no_grad, tensor
from ..rng import manual_seed


def run(quick: bool = False, out=print) -> dict:
    manual_seed(0)
    width, depth = 256, 10
    x = tensor(np.random.default_rng(0).standard_normal((256 if quick else 1000, width)).astype(np.float32))
    schemes = {
        "tiny N(0, 0.01^2)": lambda w: init.normal_(w, 0.0, 0.01),
        "large N(0, 1)": lambda w: init.normal_(w, 0.0, 1.0),
        "Xavier var 1/fan_in": init.lecun_normal_,
        "He var 2/fan_in": init.he_normal_,
    }
    stds = {}
    with no_grad():
        for name, fn in schemes.items():
            h, row = x, []
            for _ in range(depth):
                lin = nn.Linear(width, width)
                fn(lin.weight)
                init.zeros_(lin.bias)
                h = lin(h).relu()
                row.append(float(h.data.std()))
            stds[name] = row
    out(f"std of the activations after each of {depth} Linear+ReLU layers (input std 1):")
    out(f"{'init':22s}" + "".join(f"{i + 1:>10d}" for i in range(depth)))
    for name, row in stds.items():
        out(f"{name:22s}" + "".join(f"{v:10.3g}" for v in row))
    out("He keeps the scale (ReLU halves the variance; 2/fan_in puts it back); Xavier's 1/fan_in shrinks it by "
        "~1/sqrt(2) per layer; tiny weights vanish and large ones explode.")
    return {"std": stds}
