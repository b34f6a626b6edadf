"""The CUDA backend against PyTorch's CUDA kernels (cuDNN, cuBLAS, its attention): the convolutions of
bench_conv.py, max pooling, the LSTM and GRU shapes of bench_rnn.py and the attention shapes of
bench_attention.py, forward+backward, a LeNet-5 training step (B=64) and a ResNet-18 training step
(B=64, 224x224).  Each op is validated against PyTorch on shared inputs and weights first; then fastdl
and PyTorch are timed in alternating blocks in one process with CUDA events (warm-up, medians), with
TFLOP/s (GB/s for pooling) and the ratio torch time / fastdl time (above 1: fastdl is faster).

    python bench/bench_cuda.py [--repeat 10]
    python bench/bench_cuda.py --device cpu --smoke    # the same code paths on the CPU, small shapes

Needs CuPy, a GPU and fastdl built with FASTDL_CUDA=ON (``fastdl info`` says), and PyTorch with CUDA.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_attention import SDPA  # noqa: E402
from bench_conv import CONV  # noqa: E402
from bench_rnn import SHAPES as RNN  # noqa: E402


def timers(device: str):
    """Two functions timing one call (ms): fastdl's (CuPy events on its stream) and PyTorch's (CUDA events)."""
    if device == "cpu":
        def wall(fn):
            t0 = time.perf_counter()
            fn()
            return (time.perf_counter() - t0) * 1e3
        return wall, wall
    import cupy as cp
    import torch

    def fastdl_ms(fn):
        a, b = cp.cuda.Event(), cp.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        return cp.cuda.get_elapsed_time(a, b)

    def torch_ms(fn):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        return a.elapsed_time(b)
    return fastdl_ms, torch_ms


def pair(tf, tt, ff, ft, repeat: int, block: int = 3):
    """Median ms of ff (fastdl) and ft (PyTorch), alternating in blocks, each block after a warm-up call."""
    ff(), ft()
    a, b = [], []
    for _ in range(max(3, -(-repeat // block))):
        for fn, t, out in ((ff, tf, a), (ft, tt, b)):
            fn()
            out.extend(t(fn) for _ in range(block))
    return float(np.median(a)), float(np.median(b))


def torch_resnet18(torch, num_classes=1000):
    """ResNet-18 as torchvision builds it (so that no torchvision is needed)."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1, self.b1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
            self.c2, self.b2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
            self.down = None if stride == 1 and cin == cout else nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = torch.relu(self.b1(self.c1(x)))
            y = self.b2(self.c2(y))
            return torch.relu(y + (x if self.down is None else self.down(x)))
    layers = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        layers += [Block(cin, cout, stride), Block(cout, cout, 1)]
        cin = cout
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, num_classes)]
    return nn.Sequential(*layers)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--smoke", action="store_true", help="small shapes, 2 repeats: check the script runs")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", "cuda.json"))
    args = ap.parse_args()

    import fastdl
    from fastdl import functional as F
    from fastdl import models, nn
    import torch

    dev = args.device
    if dev == "cuda" and not fastdl.cuda.is_available():
        print(f"no CUDA here: {fastdl.cuda.status()}")
        return 0
    if dev == "cuda" and not torch.cuda.is_available():
        print("PyTorch has no CUDA here: the comparison needs it")
        return 0
    repeat = 2 if args.smoke else args.repeat
    tf, tt = timers(dev)
    tdev = torch.device(dev)
    rng = np.random.default_rng(0)
    rows = []
    print(f"fastdl CUDA benchmark | {fastdl.cuda.status()} | torch {torch.__version__} | device {dev}")
    if dev == "cuda":
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"{'case':48s} {'fastdl ms':>10s} {'torch ms':>9s} {'torch/fastdl':>12s} {'fastdl rate':>14s}")

    def add(case, ff, ft, work, unit="TFLOP/s"):
        a, b = pair(tf, tt, ff, ft, repeat)
        scale = 1e12 if unit == "TFLOP/s" else 1e9
        rows.append(dict(case=case, fastdl_ms=a, torch_ms=b, torch_over_fastdl=b / a, rate=work / (a * 1e-3) / scale,
                         unit=unit))
        print(f"{case:48s} {a:10.3f} {b:9.3f} {b / a:12.2f} {work / (a * 1e-3) / scale:9.2f} {unit}")

    def close(a, b, what, tol=2e-3):
        a = a.cpu().numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray) else a
        b = b.detach().cpu().numpy()
        if not np.allclose(a, b, rtol=tol, atol=tol):
            raise SystemExit(f"validation failed: {what} (max difference {np.abs(a - b).max():.3g})")

    def sync():
        if dev == "cuda":
            torch.cuda.synchronize()

    # ------------------------------------------------------------ convolutions, forward + backward
    for name, n, cin, cout, h, k, s, p in CONV:
        if args.smoke:
            n, h = 2, min(h, 16)
        x = rng.standard_normal((n, cin, h, h)).astype(np.float32)
        w = (rng.standard_normal((cout, cin, k, k)) * 0.1).astype(np.float32)
        xf, wf = fastdl.tensor(x).to(dev).requires_grad_(), fastdl.tensor(w).to(dev).requires_grad_()
        xt, wt = torch.tensor(x, device=tdev, requires_grad=True), torch.tensor(w, device=tdev, requires_grad=True)
        close(F.conv2d(xf, wf, None, s, p), torch.nn.functional.conv2d(xt, wt, None, s, p), name)
        oh = (h + 2 * p - k) // s + 1

        def ff():
            F.conv2d(xf, wf, None, s, p).sum().backward()

        def ft():
            torch.nn.functional.conv2d(xt, wt, None, s, p).sum().backward()
        add(f"conv {name} fwd+bwd", ff, ft, 3 * 2 * n * cout * oh * oh * cin * k * k)

    # ------------------------------------------------------------ max pooling, forward + backward
    n, c, h = (2, 8, 16) if args.smoke else (64, 64, 112)
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    xf, xt = fastdl.tensor(x).to(dev).requires_grad_(), torch.tensor(x, device=tdev, requires_grad=True)
    close(F.max_pool2d(xf, 2), torch.nn.functional.max_pool2d(xt, 2), "max_pool2d")
    add(f"max_pool2d 2x2 ({n},{c},{h},{h}) fwd+bwd", lambda: F.max_pool2d(xf, 2).sum().backward(),
        lambda: torch.nn.functional.max_pool2d(xt, 2).sum().backward(), 4 * x.nbytes * 1.5, "GB/s")

    # ------------------------------------------------------------ LSTM and GRU, forward + backward
    for kind, gates in (("LSTM", 4), ("GRU", 3)):
        for T, B, I, H in RNN:
            if args.smoke:
                T, B = 5, 4
            m, tm = getattr(nn, kind)(I, H), getattr(torch.nn, kind)(I, H)
            m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
            m, tm = m.to(dev), tm.to(tdev)
            x = rng.standard_normal((T, B, I)).astype(np.float32)
            xf, xt = fastdl.tensor(x).to(dev).requires_grad_(), torch.tensor(x, device=tdev, requires_grad=True)
            close(m(xf)[0], tm(xt)[0], f"{kind} T={T}")
            add(f"{kind} T={T} B={B} I={I} H={H} fwd+bwd", lambda: m(xf)[0].sum().backward(),
                lambda: tm(xt)[0].sum().backward(), 3 * 2 * T * B * gates * H * (I + H))

    # ------------------------------------------------------------ attention, forward + backward
    for B, heads, L, E in SDPA:
        if args.smoke:
            B, L = 1, 32
        q, k_, v = (rng.standard_normal((B, heads, L, E)).astype(np.float32) for _ in range(3))
        fq, fk, fv = (fastdl.tensor(a).to(dev).requires_grad_() for a in (q, k_, v))
        tq, tk, tv = (torch.tensor(a, device=tdev, requires_grad=True) for a in (q, k_, v))
        for causal in (False, True):
            close(F.scaled_dot_product_attention(fq, fk, fv, is_causal=causal),
                  torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal), f"SDPA L={L}")
            flops = 3.5 * 4 * B * heads * L * L * E / (2 if causal else 1)
            add(f"SDPA B={B} h={heads} L=S={L} E={E}{' causal' if causal else ''} fwd+bwd",
                lambda: F.scaled_dot_product_attention(fq, fk, fv, is_causal=causal).sum().backward(),
                lambda: torch.nn.functional.scaled_dot_product_attention(tq, tk, tv, is_causal=causal).sum().backward(),
                flops)

    # ------------------------------------------------------------ training steps
    def steps(case, fmodel, tmodel, x, y, flops):
        from fastdl import optim
        fopt, topt = optim.SGD(fmodel.parameters(), lr=0.01), torch.optim.SGD(tmodel.parameters(), lr=0.01)
        xf, yf = fastdl.tensor(x).to(dev), fastdl.tensor(y).to(dev)
        xt, yt = torch.tensor(x, device=tdev), torch.tensor(y, device=tdev)

        def ff():
            fopt.zero_grad()
            F.cross_entropy(fmodel(xf), yf).backward()
            fopt.step()

        def ft():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tmodel(xt), yt).backward()
            topt.step()
        ff(), ft(), sync()
        add(case, ff, ft, flops)

    b = 4 if args.smoke else 64
    x = rng.standard_normal((b, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, b)
    tl = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5), torch.nn.Tanh(), torch.nn.AvgPool2d(2), torch.nn.Conv2d(6, 16, 5),
                             torch.nn.Tanh(), torch.nn.AvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(400, 120),
                             torch.nn.Tanh(), torch.nn.Linear(120, 84), torch.nn.Tanh(), torch.nn.Linear(84, 10)).to(tdev)
    steps(f"LeNet-5 training step (B={b})", models.lenet5().to(dev), tl, x, y,
          3 * 2 * b * (6 * 28 * 28 * 25 + 16 * 10 * 10 * 150 + 400 * 120 + 120 * 84 + 84 * 10))
    b, hw = (2, 64) if args.smoke else (64, 224)
    x = rng.standard_normal((b, 3, hw, hw)).astype(np.float32)
    y = rng.integers(0, 1000, b)
    steps(f"ResNet-18 training step (B={b}, {hw}x{hw})", models.resnet18().to(dev), torch_resnet18(torch).to(tdev),
          x, y, 3 * 1.82e9 * b * (hw / 224) ** 2)

    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    if not args.smoke:
        with open(args.json, "w") as fh:
            json.dump(dict(device=dev, status=fastdl.cuda.status(), torch=torch.__version__, rows=rows), fh, indent=1)
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
