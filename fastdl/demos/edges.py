"""Kernels as feature detectors: a fixed vertical-edge filter slid over an image."""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .. import datasets, tensor
from .common import save_figure


def _draw(digit, kernels, maps):
    def draw(fig):
        axes = fig.subplots(2, 3)
        axes[0][0].imshow(digit, cmap="gray")
        axes[0][0].set_title("digit")
        axes[1][0].axis("off")
        for c, (name, k, m) in enumerate(zip(("vertical", "horizontal"), kernels, maps), start=1):
            axes[0][c].imshow(k, cmap="RdBu", vmin=-1, vmax=1)
            axes[0][c].set_title(f"{name} filter")
            axes[1][c].imshow(m, cmap="RdBu", vmin=-np.abs(maps).max(), vmax=np.abs(maps).max())
            axes[1][c].set_title(f"{name} edges")
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
    return draw


def run(quick: bool = False, out=print, png="edges.png") -> dict:
    img = np.zeros((6, 6), np.float32)
    img[:, :3] = 10.0  # the curriculum's example: bright left half, dark right half
    k = np.array([[1, 0, -1], [1, 0, -1], [1, 0, -1]], np.float32)
    y = F.conv2d(tensor(img[None, None]), k[None, None]).data[0, 0]
    out("6x6 image (10 | 0)  *  3x3 vertical-edge filter [[1,0,-1]]*3  ->  4x4:")
    for row in y:
        out("   " + " ".join(f"{v:4.0f}" for v in row))
    out("The bright band in the middle columns is the edge: the filter responds where left and right differ.")
    (x, _), _ = datasets.mnist_5k()
    digit = x[0].astype(np.float32) / 255.0
    kv, kh = k, k.T.copy()
    both = F.conv2d(tensor(digit[None, None]), np.stack([kv, kh])[:, None], padding="same").data[0]
    out(f"On a digit (28x28, 'same' padding): mean |vertical| response {np.abs(both[0]).mean():.3f}, "
        f"mean |horizontal| response {np.abs(both[1]).mean():.3f}")
    save_figure(_draw(digit, (kv, kh), both), png, out, figsize=(7, 4.6))
    return {"edge_map": y, "digit_responses": both}
