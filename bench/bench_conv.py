"""Convolution, pooling and batch-norm kernels, and LeNet-5 and ResNet-18 training steps: native vs the
NumPy reference (vs PyTorch when installed), at 1 and 2 threads.

Shapes (N, Cin->Cout, HxW, kernel, stride, pad) are those of the issue: LeNet conv1/conv2,
a VGG 3x3, a ResNet strided 3x3 and a 1x1.  Every case is validated (native against the
reference) before it is timed; medians, GFLOP/s (GB/s for pooling and batch norm) and
ratios come from the same run, with fastdl and PyTorch timed in alternating blocks
(harness.timeit_pair) so that both see the same load on a shared machine.

    python bench/bench_conv.py [--threads 1 2] [--repeat 10]
"""
from __future__ import annotations

import numpy as np

import harness
from harness import timeit, timeit_pair

CONV = [  # name, N, Cin, Cout, H, k, stride, pad
    ("LeNet conv1 64,1->6,32x32,k5", 64, 1, 6, 32, 5, 1, 0),
    ("LeNet conv2 64,6->16,14x14,k5", 64, 6, 16, 14, 5, 1, 0),
    ("VGG 32,64->64,56x56,k3,p1", 32, 64, 64, 56, 3, 1, 1),
    ("ResNet 32,64->128,56x56,k3,s2,p1", 32, 64, 128, 56, 3, 2, 1),
    ("1x1 32,256->128,28x28", 32, 256, 128, 28, 1, 1, 0),
]


def child(threads: int, repeat: int, quick_ref: bool) -> dict:
    import fastdl
    from fastdl import _C, models, nn, optim
    from fastdl import reference as R

    torch = harness.use_threads(threads)
    TF = torch.nn.functional if torch else None
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    rows = []

    def add(name, unit, work, nat, ref, tch, ok, ref_repeat=2):
        if not ok():
            raise SystemExit(f"validation failed: {name}")
        tn, tt = timeit_pair(nat, tch, repeat) if tch is not None else (timeit(nat, repeat), None)
        tr = timeit(ref, ref_repeat, min_time=0.0) if ref is not None else None
        rows.append(dict(case=name, unit=unit, native_ms=tn * 1e3, rate=work / tn / 1e9,
                         reference_ms=None if tr is None else tr * 1e3, ref_over_native=None if tr is None else tr / tn,
                         torch_ms=None if tt is None else tt * 1e3, torch_over_native=None if tt is None else tt / tn))

    for name, n, ci, co, h, k, s, p in CONV:
        x, w, b = f32(n, ci, h, h), f32(co, ci, k, k), f32(co)
        args = ((s, s), (p, p, p, p), (1, 1), 1)
        y = _C.conv2d_forward(x, w, b, *args)
        gy = f32(*y.shape)
        flops = 2 * n * co * ci * k * k * y.shape[2] * y.shape[3]
        T = (lambda a, rg=False: torch.from_numpy(a).requires_grad_(rg)) if torch else None
        tx, tw, tb, tg = (T(x, True), T(w, True), T(b, True), T(gy)) if torch else (None,) * 4

        def ok(x=x, w=w, b=b, args=args, y=y):
            ref = R.conv2d_forward(x, w, b, *args)
            return np.allclose(y, ref, rtol=1e-3, atol=1e-3 * np.abs(ref).max())
        add(name + " fwd", "GFLOP/s", flops, lambda x=x, w=w, b=b, a=args: _C.conv2d_forward(x, w, b, *a),
            (lambda x=x, w=w, b=b, a=args: R.conv2d_forward(x, w, b, *a)),
            (lambda: TF.conv2d(tx, tw, tb, s, p)) if torch else None, ok)

        def nat_fb(x=x, w=w, b=b, gy=gy, a=args):
            _C.conv2d_forward(x, w, b, *a)
            _C.conv2d_backward(gy, x, w, *a)

        def ref_fb(x=x, w=w, b=b, gy=gy, a=args):
            R.conv2d_forward(x, w, b, *a)
            R.conv2d_backward(gy, x, w, *a)

        def tch_fb():
            TF.conv2d(tx, tw, tb, s, p).backward(tg)

        def ok_b(x=x, w=w, gy=gy, a=args):
            g1, g2 = _C.conv2d_backward(gy, x, w, *a), R.conv2d_backward(gy, x, w, *a)
            return all(np.allclose(u, v, rtol=1e-3, atol=1e-3 * np.abs(v).max()) for u, v in zip(g1, g2))
        add(name + " fwd+bwd", "GFLOP/s", 3 * flops, nat_fb, None if quick_ref and ci * co > 1000 else ref_fb,
            tch_fb if torch else None, ok_b, ref_repeat=1)

    xp = f32(64, 64, 56, 56)
    nbytes = xp.nbytes * 1.25  # read the input, write a quarter
    tx = torch.from_numpy(xp) if torch else None
    add("max_pool2d 2x2 64,64,56x56", "GB/s", nbytes, lambda: _C.max_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), (1, 1), False),
        lambda: R.max_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), (1, 1), False),
        (lambda: TF.max_pool2d(tx, 2)) if torch else None,
        lambda: np.array_equal(_C.max_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), (1, 1), False)[0],
                               R.max_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), (1, 1), False)[0]))
    add("avg_pool2d 2x2 64,64,56x56", "GB/s", nbytes, lambda: _C.avg_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), False, True),
        lambda: R.avg_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), False, True),
        (lambda: TF.avg_pool2d(tx, 2)) if torch else None,
        lambda: np.allclose(_C.avg_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), False, True),
                            R.avg_pool2d_forward(xp, (2, 2), (2, 2), (0, 0), False, True), rtol=1e-5, atol=1e-6))
    xb = f32(32, 64, 56, 56)
    gb = f32(32, 64, 56, 56)
    gam, bet = f32(64), f32(64)
    tbn = torch.nn.BatchNorm2d(64) if torch else None
    txb = torch.from_numpy(xb).requires_grad_(True) if torch else None

    def bn_nat():
        rm, rv = np.zeros(64, np.float32), np.ones(64, np.float32)
        _, m, r = _C.batch_norm_forward(xb, gam, bet, rm, rv, True, 0.1, 1e-5)
        _C.batch_norm_backward(gb, xb, gam, m, r, True)

    def bn_ref():
        rm, rv = np.zeros(64, np.float32), np.ones(64, np.float32)
        _, m, r = R.batch_norm_forward(xb, gam, bet, rm, rv, True, 0.1, 1e-5)
        R.batch_norm_backward(gb, xb, gam, m, r, True)

    def bn_t():
        tbn(txb).backward(torch.from_numpy(gb))
    add("batch_norm train fwd+bwd 32,64,56x56", "GB/s", xb.nbytes * 6, bn_nat, bn_ref, bn_t if torch else None,
        lambda: np.allclose(_C.batch_norm_forward(xb, gam, bet, None, None, True, 0.1, 1e-5)[0],
                            R.batch_norm_forward(xb, gam, bet, None, None, True, 0.1, 1e-5)[0], rtol=1e-4, atol=1e-4))

    # a whole LeNet-5 training step (batch 64, 32x32, Adam): native vs reference backend vs PyTorch
    xl, yl = f32(64, 1, 32, 32), rng.integers(0, 10, 64)

    def lenet_step(backend):
        fastdl.manual_seed(0)
        m = models.lenet5(10)
        opt = optim.Adam(m.parameters(), lr=1e-3)
        return harness.train_step(backend, m, opt, nn.CrossEntropyLoss(), fastdl.tensor(xl), yl)
    tstep = None
    if torch:
        tm = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5), torch.nn.Tanh(), torch.nn.AvgPool2d(2),
                                 torch.nn.Conv2d(6, 16, 5), torch.nn.Tanh(), torch.nn.AvgPool2d(2), torch.nn.Flatten(),
                                 torch.nn.Linear(400, 120), torch.nn.Tanh(), torch.nn.Linear(120, 84), torch.nn.Tanh(),
                                 torch.nn.Linear(84, 10))
        topt = torch.optim.Adam(tm.parameters(), lr=1e-3)
        txl, tyl = torch.from_numpy(xl), torch.from_numpy(yl)

        def tstep():
            topt.zero_grad()
            TF.cross_entropy(tm(txl), tyl).backward()
            topt.step()
    lenet_flops = 3 * 2 * 64 * (6 * 25 * 28 * 28 + 16 * 6 * 25 * 10 * 10 + 400 * 120 + 120 * 84 + 84 * 10)
    add("LeNet-5 train step (64, Adam)", "GFLOP/s", lenet_flops, lenet_step("native"), lenet_step("reference"), tstep,
        lambda: True, ref_repeat=5)
    # a ResNet-18 training step (batch 8, 64x64, SGD): its last stages are 4x4 and 2x2 planes with 256-512
    # channels, the shapes a per-image convolution handles worst (no reference: it would take minutes)
    xr, yr = f32(8, 3, 64, 64), rng.integers(0, 1000, 8)
    fastdl.manual_seed(0)
    rn = models.resnet18()
    rn_step = harness.train_step("native", rn, optim.SGD(rn.parameters(), lr=0.01), nn.CrossEntropyLoss(),
                                 fastdl.tensor(xr), yr)
    trstep = None
    if torch:
        from bench_cuda import torch_resnet18
        trn = torch_resnet18(torch)
        tropt = torch.optim.SGD(trn.parameters(), lr=0.01)
        txr, tyr = torch.from_numpy(xr), torch.from_numpy(yr)

        def trstep():
            tropt.zero_grad()
            TF.cross_entropy(trn(txr), tyr).backward()
            tropt.step()
    add("ResNet-18 train step (8, 64x64, SGD)", "GFLOP/s", 3 * 1.82e9 * 8 * (64 / 224) ** 2, rn_step, None, trstep,
        lambda: True)
    return dict(threads=threads, torch=getattr(torch, "__version__", None), blas=_C.blas_corename(),
                simd=_C.simd_isa(), rows=rows)


def show(res):
    print(f"\n== threads {res['threads']} | BLAS kernel {res['blas']} | SIMD {res['simd']} | "
          f"torch {res['torch'] or 'not installed'} | float32")
    print(f"{'case':44s} {'native ms':>10s} {'rate':>7s} {'unit':8s} {'ref ms':>10s} {'ref/nat':>8s} {'torch ms':>9s} "
          f"{'torch/nat':>9s}")
    for r in res["rows"]:
        ref = f"{r['reference_ms']:10.1f} {r['ref_over_native']:8.1f}" if r["reference_ms"] is not None else \
            f"{'-':>10s} {'-':>8s}"
        tch = f"{r['torch_ms']:9.2f} {r['torch_over_native']:9.2f}" if r["torch_ms"] is not None else \
            f"{'-':>9s} {'-':>9s}"
        print(f"{r['case']:44s} {r['native_ms']:10.2f} {r['rate']:7.1f} {r['unit']:8s} {ref} {tch}")


def main() -> int:
    ap = harness.parser(__doc__, "conv", repeat=10)
    ap.add_argument("--full-reference", action="store_true",
                    help="also time the (slow) NumPy reference backward on the big conv shapes")
    args = ap.parse_args()
    return harness.main(args, __file__, lambda a: child(a.child, a.repeat, not a.full_reference), show,
                        "fastdl conv benchmark")


if __name__ == "__main__":
    raise SystemExit(main())
