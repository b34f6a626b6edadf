"""Transfer learning: pretrain on digits 0-4, then learn 5-9 from a handful of examples."""
from __future__ import annotations

import numpy as np

from .. import models, nn, optim
from ..nn.utils import freeze, trainable_parameters
from ..rng import manual_seed
from .common import accuracy_of, fit_quiet, mnist_flat


def run(quick: bool = False, out=print) -> dict:
    xtr, ytr, xte, yte = mnist_flat()
    lo_tr, hi_tr, hi_te = ytr < 5, ytr >= 5, yte >= 5
    per_class = 10
    rng = np.random.default_rng(0)
    few = np.concatenate([rng.choice(np.flatnonzero(ytr == c), per_class, replace=False) for c in range(5, 10)])
    xs, ys = xtr[few], ytr[few] - 5
    xt, yt = xte[hi_te], yte[hi_te] - 5
    pre_epochs, ft_epochs = (2, 30) if quick else (8, 60)

    manual_seed(0)
    base = models.mlp(784, (256, 128), 5)
    fit_quiet(base, optim.Adam(base.parameters(), lr=1e-3), xtr[lo_tr], ytr[lo_tr], pre_epochs)
    pre_acc = accuracy_of(base, xte[yte < 5], yte[yte < 5])

    # transfer: keep the trunk (frozen), put a new head on it, train only the head
    freeze(base)
    base[-1] = nn.Linear(128, 5)
    fit_quiet(base, optim.Adam(trainable_parameters(base), lr=1e-2), xs, ys, ft_epochs)
    transfer_acc = accuracy_of(base, xt, yt)

    manual_seed(0)
    scratch = models.mlp(784, (256, 128), 5)
    fit_quiet(scratch, optim.Adam(scratch.parameters(), lr=1e-3), xs, ys, ft_epochs)
    scratch_acc = accuracy_of(scratch, xt, yt)

    out(f"pretrained on {int(lo_tr.sum())} images of digits 0-4: test accuracy {pre_acc:.3f} on 0-4")
    out(f"digits 5-9 from only {per_class} examples each ({len(ys)} images), tested on {len(yt)}:")
    out(f"  from scratch:                    {scratch_acc:.3f}")
    out(f"  frozen pretrained trunk + head:  {transfer_acc:.3f}")
    verdict = "beats" if transfer_acc > scratch_acc else "does not beat"
    out(f"Measured: transfer {verdict} training from scratch here ({transfer_acc - scratch_acc:+.3f}).")
    return {"pretrain": pre_acc, "transfer": transfer_acc, "scratch": scratch_acc}
