"""Hyperparameter search on the right scale: learning rate and momentum beta, coarse to fine."""
from __future__ import annotations

from .. import models, optim, tune
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_flat, save_figure

_DATA = {}


def objective(cfg: dict) -> dict:
    """Validation error of a small MLP trained briefly with SGD(lr, momentum=beta)."""
    if not _DATA:
        xtr, ytr, _, _ = mnist_flat()
        _DATA.update(x=xtr[:1500], y=ytr[:1500], xv=xtr[3000:4000], yv=ytr[3000:4000])
    manual_seed(0)
    model = models.mlp(784, (64,), 10)
    opt = optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["beta"])
    try:
        fit_quiet(model, opt, _DATA["x"], _DATA["y"], cfg.get("epochs", 2))
        err = 1.0 - accuracy_of(model, _DATA["xv"], _DATA["yv"])
    except FloatingPointError:  # a learning rate so large that training diverged
        err = 1.0
    return {"score": err}


def _draw_cloud(res, rounds):
    def draw(fig):
        ax = fig.subplots()
        for r in range(rounds):
            ts = [t for t in res.trials if t.round == r]
            sc = ax.scatter([t.config["lr"] for t in ts], [1 - t.config["beta"] for t in ts],
                            c=[t.score for t in ts], cmap="viridis_r", vmin=0, vmax=1, marker="os^"[r % 3],
                            edgecolors="k", label=f"round {r + 1}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("1 - beta (log scale)")
        ax.set_title("trials: coarse, then fine around the best")
        ax.legend()
        fig.colorbar(sc, ax=ax, label="validation error")
    return draw


def run(quick: bool = False, out=print, png="tune_search.png") -> dict:
    space = {"lr": tune.LogUniform(1e-4, 1.0), "beta": tune.OneMinusLogUniform(0.9, 0.999)}
    n, rounds = (6, 2) if quick else (16, 2)
    res = tune.coarse_to_fine(objective, space, n_trials=n, rounds=rounds, top_k=4, seed=0)
    out("lr ~ LogUniform(1e-4, 1) (uniform in the exponent), beta ~ OneMinusLogUniform(0.9, 0.999) "
        "(1 - beta uniform in the exponent); round 1 is coarse, round 2 samples around the best 4.")
    out(res.table(top=8))
    b = res.best
    out(f"best: lr={b.config['lr']:.3g}, beta={b.config['beta']:.4f}, validation error {b.score:.3f} "
        f"(round {b.round + 1})")
    save_figure(_draw_cloud(res, rounds), png, out)
    fs = res.final_space
    out(f"narrowed space: lr in [{fs['lr'].low:.3g}, {fs['lr'].high:.3g}], beta in [{fs['beta'].low:.4f}, "
        f"{fs['beta'].high:.4f}]")
    return {"best": b.config, "score": b.score, "trials": len(res.trials),
            "round_best": [min(t.score for t in res.trials if t.round == r) for r in range(rounds)]}
