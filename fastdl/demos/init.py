"""Vanishing and exploding activations: a 10-layer ReLU net under four initialisations."""
from __future__ import annotations

import numpy as np

from .. import init, nn, no_grad, tensor
from ..rng import manual_seed
from .common import save_figure


def _draw_histograms(acts, depth):
    """One row per initialisation, one panel per shown layer: where the activations lie."""
    layers = [1, depth // 2, depth]

    def draw(fig):
        axes = fig.subplots(len(acts), len(layers), squeeze=False)
        for r, (name, per_layer) in enumerate(acts.items()):
            for c, k in enumerate(layers):
                v = per_layer[k - 1]
                ax = axes[r][c]
                ax.hist(v[v > 0], bins=40, color=f"C{r}")
                ax.set_yticks([])
                if r == 0:
                    ax.set_title(f"layer {k}")
                if c == 0:
                    ax.set_ylabel(name, fontsize=8)
                ax.tick_params(labelsize=7)
        fig.suptitle("positive activations after Linear+ReLU (x-axis scales differ: read the ticks)", fontsize=9)
    return draw


def run(quick: bool = False, out=print, png="init_activations.png") -> dict:
    manual_seed(0)
    width, depth = 256, 10
    x = tensor(np.random.default_rng(0).standard_normal((256 if quick else 1000, width)).astype(np.float32))
    schemes = {
        "tiny N(0, 0.01^2)": lambda w: init.normal_(w, 0.0, 0.01),
        "large N(0, 1)": lambda w: init.normal_(w, 0.0, 1.0),
        "Xavier var 1/fan_in": init.lecun_normal_,
        "He var 2/fan_in": init.he_normal_,
    }
    stds, acts = {}, {}
    with no_grad():
        for name, fn in schemes.items():
            h, row, acts[name] = x, [], []
            for _ in range(depth):
                lin = nn.Linear(width, width)
                fn(lin.weight)
                init.zeros_(lin.bias)
                h = lin(h).relu()
                row.append(float(h.data.std()))
                acts[name].append(h.data.reshape(-1)[:20000].astype(np.float64))
            stds[name] = row
    out(f"std of the activations after each of {depth} Linear+ReLU layers (input std 1):")
    out(f"{'init':22s}" + "".join(f"{i + 1:>10d}" for i in range(depth)))
    for name, row in stds.items():
        out(f"{name:22s}" + "".join(f"{v:10.3g}" for v in row))
    out("He keeps the scale (ReLU halves the variance; 2/fan_in puts it back); Xavier's 1/fan_in shrinks it by "
        "~1/sqrt(2) per layer; tiny weights vanish and large ones explode.")
    save_figure(_draw_histograms(acts, depth), png, out, figsize=(9, 7))
    return {"std": stds}
