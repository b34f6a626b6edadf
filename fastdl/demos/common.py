"""Shared helpers of the demos: MNIST-5k prepared as flat standardized vectors, a small trainer."""
from __future__ import annotations

import numpy as np

from .. import data, datasets, nn, train


def mnist_flat():
    """(x_train, y_train, x_test, y_test): float32 (N, 784), standardized with the training statistics."""
    (xtr, ytr), (xte, yte) = datasets.mnist_5k()
    std = data.Standardizer(axis=None).fit(xtr / 255.0)
    f = lambda x: std.transform(x.reshape(len(x), -1) / 255.0)  # noqa: E731
    return f(xtr), ytr, f(xte), yte


def mnist_images():
    """(x_train, y_train, x_test, y_test) with images as (N, 1, 28, 28) float32, standardized."""
    (xtr, ytr), (xte, yte) = datasets.mnist_5k()
    std = data.Standardizer(axis=None).fit(xtr / 255.0)
    f = lambda x: std.transform(x[:, None] / 255.0)  # noqa: E731
    return f(xtr), ytr, f(xte), yte


def loader(x, y, batch_size=64, shuffle=True, seed=0):
    return data.DataLoader(data.TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle, seed=seed)


def accuracy_of(model, x, y) -> float:
    return train.accuracy(train.predict(model, x), y)


def fit_quiet(model, opt, x, y, epochs, val=None, loss_fn=None, **kw):
    return train.fit(model, loss_fn or nn.CrossEntropyLoss(), opt, loader(x, y), val_loader=val, epochs=epochs,
                     progress=False, **kw)


def save_plot(curves: dict, title: str, ylabel: str, path: str, out=print, logy=False) -> None:
    """Save curves (name -> list of values per epoch) as a PNG when matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out("(install matplotlib to also get the curves as an image)")
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, ys in curves.items():
        ax.plot(np.arange(1, len(ys) + 1), ys, label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out(f"saved {path}")


def save_figure(draw, path, out=print, figsize=(6, 4)) -> bool:
    """``draw(fig)`` a picture and save it as ``path`` when matplotlib is installed (and ``path`` is given)."""
    if not path:
        return False
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out(f"(install matplotlib, e.g. pip install 'fastdl[plot]', to also get {path})")
        return False
    fig = plt.figure(figsize=figsize)
    draw(fig)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out(f"saved {path}")
    return True


def save_heatmap(weights, rows: list, cols: list, title: str, path: str, out=print) -> bool:
    """Save a (rows, cols) matrix of attention weights as a PNG when matplotlib is installed."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        out(f"(install matplotlib, e.g. pip install 'fastdl[plot]', to also get {path})")
        return False
    w = np.asarray(weights)
    fig, ax = plt.subplots(figsize=(max(4, 0.32 * len(cols) + 1.5), max(3, 0.32 * len(rows) + 1.2)))
    im = ax.imshow(w, cmap="viridis", aspect="auto", vmin=0.0, vmax=max(float(w.max()), 1e-9))
    ax.set_xticks(range(len(cols)), [repr(c)[1:-1] for c in cols])
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out(f"saved {path}")
    return True
