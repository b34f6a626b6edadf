"""End-to-end learning versus a pipeline of hand-designed stages, on the same digits.

Pipeline: fixed, hand-chosen features (horizontal/vertical/diagonal edge filters, rectified and
pooled to a 7x7 grid: 4 x 49 numbers per image) feed a learned linear classifier.
End-to-end: one network (LeNet-5) learns every stage from the raw pixels.  The demo measures
both at growing training-set sizes.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import models, nn, optim, tensor
from ..autograd import no_grad
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_images

_FILTERS = np.array([[[1, 0, -1]] * 3, [[1, 1, 1], [0, 0, 0], [-1, -1, -1]],
                     [[0, 1, 1], [-1, 0, 1], [-1, -1, 0]], [[1, 1, 0], [1, 0, -1], [0, -1, -1]]], np.float32)[:, None]


def hand_features(x: np.ndarray) -> np.ndarray:
    """(N, 1, 28, 28) -> (N, 196): |edge responses| of 4 fixed filters, average-pooled 4x4."""
    with no_grad():
        e = F.conv2d(tensor(x), _FILTERS, padding=1).abs()
        return F.avg_pool2d(e, 4).data.reshape(len(x), -1)


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_images()
    sizes = (100, 1000) if quick else (50, 200, 1000, 4000)
    epochs = 10 if quick else 20
    fte = hand_features(xte)
    res = {}
    out(f"{'train images':>12s} {'pipeline (fixed features + linear)':>36s} {'end-to-end (LeNet-5)':>22s}")
    for n in sizes:
        ep = max(epochs, int(epochs * 1000 / n)) if n < 1000 else epochs  # about as many updates for small sets
        manual_seed(0)
        ftr = hand_features(xtr[:n])
        lin = nn.Linear(ftr.shape[1], 10)
        fit_quiet(lin, optim.Adam(lin.parameters(), lr=1e-2), ftr, ytr[:n], ep)
        pipe = accuracy_of(lin, fte, yte)
        manual_seed(0)
        net = models.lenet5(10, activation="relu", pooling="max", padding=2)
        fit_quiet(net, optim.Adam(net.parameters(), lr=2e-3), xtr[:n], ytr[:n], ep)
        e2e = accuracy_of(net, xte, yte)
        res[n] = {"pipeline": pipe, "end_to_end": e2e}
        out(f"{n:12d} {pipe:36.3f} {e2e:22.3f}")
    ahead = [n for n in sizes if res[n]["end_to_end"] > res[n]["pipeline"]]
    out("Measured: end-to-end is ahead at " + (", ".join(map(str, ahead)) if ahead else "no size") +
        f" training images; the pipeline at {', '.join(str(n) for n in sizes if n not in ahead) or 'none'}.  "
        "Hand-designed stages carry knowledge that matters when data is scarce; learning every stage needs "
        "more data but is not capped by the designer's choices.")
    return res
