"""The CNN case studies: layer tables, parameter counts, and one training step each on small inputs."""
from __future__ import annotations

import time

import numpy as np

from .. import models, nn, optim, tensor
from ..rng import manual_seed
from .common import fit_quiet, mnist_images, save_figure

FULL = {"LeNet-5": (models.lenet5, 61_706), "AlexNet": (models.alexnet, 61_100_840),
        "VGG-16": (models.vgg16, 138_357_544), "ResNet-18": (models.resnet18, 11_689_512),
        "ResNet-34": (models.resnet34, 21_797_672), "ResNet-50": (models.resnet50, 25_557_032),
        "GoogLeNet": (models.googlenet, 6_624_904)}

SMALL = {"LeNet-5": lambda: models.lenet5(10), "AlexNet": lambda: models.alexnet(10, small_input=True, hidden=256),
         "VGG-16": lambda: models.vgg16(10, hidden=256, avgpool_size=1),
         "ResNet-18": lambda: models.resnet18(10, small_input=True), "ResNet-34": lambda: models.resnet34(10, small_input=True, width=16),
         "ResNet-50": lambda: models.resnet50(10, small_input=True, width=16),
         "GoogLeNet": lambda: models.googlenet(10, small_input=True)}


def layer_table(model, out, depth: int = 1) -> None:
    """Modules down to ``depth`` levels, each with the parameters it holds (its children included)."""
    for name, m in model.named_modules():
        if name and name.count(".") < depth and (name.count(".") == depth - 1 or not m._modules):
            out(f"    {name:28s} {type(m).__name__:18s} {m.num_parameters():>12,d}")


def _draw_feature_maps(digit, filters, maps):
    def draw(fig):
        axes = fig.subplots(3, len(filters) + 1, squeeze=False)
        axes[0][0].imshow(digit, cmap="gray")
        axes[0][0].set_title("input", fontsize=8)
        for r in (1, 2):
            axes[r][0].axis("off")
        for c, (f, m) in enumerate(zip(filters, maps), start=1):
            axes[0][c].axis("off")
            axes[1][c].imshow(f, cmap="RdBu")
            axes[2][c].imshow(m, cmap="viridis")
        axes[1][1].set_title("conv1 filters (LeNet-5, 3 epochs on MNIST-5k)", fontsize=8, loc="left")
        axes[2][1].set_title("their feature maps", fontsize=8, loc="left")
        for ax in axes.flat:
            ax.set_xticks([])
            ax.set_yticks([])
    return draw


def _lenet_feature_maps(quick, png, out):
    """Train LeNet-5 briefly and show what its first convolution learned and sees."""
    xtr, ytr, xte, _ = mnist_images()
    manual_seed(0)
    m = models.lenet5(10, activation="relu", pooling="max", padding=2)
    n = 1000 if quick else len(xtr)
    fit_quiet(m, optim.Adam(m.parameters(), lr=2e-3), xtr[:n], ytr[:n], 1 if quick else 3)
    conv1 = next(mod for mod in m.modules() if isinstance(mod, nn.Conv2d))
    maps = conv1(tensor(xte[:1])).data[0]
    save_figure(_draw_feature_maps(xte[0, 0], conv1.weight.data[:, 0], maps), png, out, figsize=(9, 3.6))


def run(quick: bool = False, out=print, png="cnn_feature_maps.png") -> dict:
    res = {}
    out(f"{'model':10s} {'parameters (1000 classes, 224x224)':>36s} {'published':>13s}   small-input step")
    names = ["LeNet-5", "ResNet-18", "GoogLeNet"] if quick else list(FULL)
    for name in names:
        build, published = FULL[name]
        n = build().num_parameters()
        manual_seed(0)
        small = SMALL[name]()
        cin = 1 if name == "LeNet-5" else 3
        x = tensor(np.random.default_rng(0).standard_normal((8, cin, 32, 32)).astype(np.float32))
        y = np.arange(8) % 10
        opt = optim.Adam(small.parameters(), lr=1e-3)
        times = []
        for _ in range(2 if quick else 4):  # the first step warms up (allocations, packing); time the rest
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(small(x), y)
            loss.backward()
            opt.step()
            times.append(time.perf_counter() - t0)
        dt = float(np.median(times[1:]))
        res[name] = {"parameters": n, "published": published, "loss": loss.item(), "step_s": dt}
        out(f"{name:10s} {n:36,d} {published:13,d}   loss {loss.item():.3f}, {dt * 1e3:.0f} ms a step after warm-up "
            f"(batch 8, 32x32)")
    if png:
        _lenet_feature_maps(quick, png, out)
    if not quick:
        for name in names:
            out(f"\n{name} (as built by default), top-level layers:")
            layer_table(FULL[name][0](), out, depth=2 if name == "LeNet-5" else 1)
    return res
