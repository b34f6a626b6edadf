"""Output sizes: valid, same and strided convolutions, floor((n + 2p - f) / s) + 1."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import tensor


def run(quick: bool = False, out=print) -> dict:
    cases = [(6, 3, "valid", 1), (6, 3, "same", 1), (6, 4, "same", 1), (7, 3, 0, 2), (7, 3, 1, 2),
             (32, 5, 0, 1), (28, 5, 2, 1), (224, 7, 3, 2), (56, 3, 1, 2)]
    rows = []
    out(f"{'n':>5s} {'f':>3s} {'padding':>9s} {'s':>3s} {'formula':>8s} {'measured':>9s}")
    for n, f, p, s in cases:
        pt, pl, pb, pr = F.pad_amounts(p, (f, f), (1, 1), (s, s))
        formula = (n + pt + pb - f) // s + 1
        y = F.conv2d(tensor(np.zeros((1, 1, n, n), np.float32)), np.zeros((1, 1, f, f), np.float32), stride=s,
                     padding=p)
        rows.append((n, f, p, s, formula, y.shape[-1]))
        out(f"{n:5d} {f:3d} {str(p):>9s} {s:3d} {formula:8d} {y.shape[-1]:9d}")
    out("'valid' = no padding (n - f + 1); 'same' pads (f - 1) / 2 per side at stride 1 (an even f puts the extra "
        "pixel bottom/right, as PyTorch); stride s divides the range: floor((n + 2p - f) / s) + 1.")
    return {"rows": rows}
