"""Benchmark the core kernels: native vs the NumPy reference (vs PyTorch when installed).

Each case is validated first (native against reference), then warmed up and
timed; the table gives median milliseconds, GFLOP/s (or GB/s for
memory-bound ops) and the ratios reference/native and torch/native, all
taken in the same run.  Every thread count runs in its own process with
OMP_NUM_THREADS / OPENBLAS_NUM_THREADS set, so NumPy's BLAS, ours and
PyTorch's get the same number of threads.

    python bench/bench_core.py [--threads 1 2] [--repeat 30] [--json bench/results/core.json]
"""
from __future__ import annotations

import numpy as np

import harness
from harness import timeit, timeit_pair


def cases(rng):
    """(name, work, unit, native_fn, reference_fn, torch_fn_or_None, validate) tuples."""
    import fastdl
    from fastdl import _C, reference as R

    try:
        import torch
        import torch.nn.functional as TF
    except ImportError:
        torch = None
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    T = (lambda a, rg=False: torch.from_numpy(a).requires_grad_(rg)) if torch else None
    out = []

    for n in (256, 512, 1024):
        a, b = f(n, n), f(n, n)
        out.append((f"matmul {n}x{n}x{n}", 2 * n ** 3, "GFLOP/s", lambda a=a, b=b: _C.matmul(a, b),
                    lambda a=a, b=b: R.matmul(a, b),
                    (lambda ta=T(a), tb=T(b): torch.matmul(ta, tb)) if torch else None,
                    lambda a=a, b=b: np.allclose(_C.matmul(a, b), R.matmul(a, b), rtol=1e-4, atol=1e-3)))
    a, b = f(64, 128, 64), f(64, 64, 128)
    out.append(("bmm 64x(128x64 @ 64x128)", 2 * 64 * 128 * 64 * 128, "GFLOP/s", lambda: _C.matmul(a, b),
                lambda: R.matmul(a, b), (lambda ta=T(a), tb=T(b): torch.bmm(ta, tb)) if torch else None,
                lambda: np.allclose(_C.matmul(a, b), R.matmul(a, b), rtol=1e-4, atol=1e-3)))

    for (N, I, O) in ((64, 784, 256), (512, 1024, 1024)):
        x, w, bias, gy = f(N, I), f(O, I), f(O), f(N, O)
        fl = 2 * N * I * O

        def nat(x=x, w=w, bias=bias, gy=gy):
            _C.linear_forward(x, w, bias)
            _C.linear_backward(gy, x, w)

        def ref(x=x, w=w, bias=bias, gy=gy):
            R.linear_forward(x, w, bias)
            R.linear_backward(gy, x, w)

        def tch(tx=T(x, True), tw=T(w, True), tb=T(bias, True), tg=T(gy)):
            TF.linear(tx, tw, tb).backward(tg)
        out.append((f"linear fwd+bwd {N}x{I}->{O}", 3 * fl, "GFLOP/s", nat, ref, tch if torch else None,
                    lambda x=x, w=w, bias=bias: np.allclose(_C.linear_forward(x, w, bias),
                                                            R.linear_forward(x, w, bias), rtol=1e-4, atol=1e-3)))

    x, gy = f(4096, 1000), f(4096, 1000)
    nbytes = x.nbytes
    out.append(("softmax fwd 4096x1000", 2 * nbytes, "GB/s", lambda: _C.softmax_forward(x, -1),
                lambda: R.softmax_forward(x, -1), (lambda tx=T(x): torch.softmax(tx, -1)) if torch else None,
                lambda: np.allclose(_C.softmax_forward(x, -1), R.softmax_forward(x, -1), rtol=1e-4, atol=1e-7)))
    y = R.softmax_forward(x, -1)

    def tsm(tx=T(x, True), tg=T(gy)):
        torch.softmax(tx, -1).backward(tg)
    out.append(("softmax fwd+bwd 4096x1000", 5 * nbytes, "GB/s",
                lambda: _C.softmax_backward(gy, _C.softmax_forward(x, -1), -1),
                lambda: R.softmax_backward(gy, R.softmax_forward(x, -1), -1), tsm if torch else None,
                lambda: np.allclose(_C.softmax_backward(gy, y, -1), R.softmax_backward(gy, y, -1), rtol=1e-3,
                                    atol=1e-6)))
    t = rng.integers(0, 1000, 4096)
    g = np.full(4096, 1 / 4096, np.float32)

    def ce_nat():
        loss, lse = _C.cross_entropy_forward(x, t)
        _C.cross_entropy_backward(g, x, t, lse)

    def ce_ref():
        loss, lse = R.cross_entropy_forward(x, t)
        R.cross_entropy_backward(g, x, t, lse)

    def ce_t(tx=T(x, True), tt=torch.from_numpy(t) if torch else None):
        TF.cross_entropy(tx, tt).backward()
    out.append(("cross-entropy fwd+bwd 4096x1000", 3 * nbytes, "GB/s", ce_nat, ce_ref, ce_t if torch else None,
                lambda: np.allclose(_C.cross_entropy_forward(x, t)[0], R.cross_entropy_forward(x, t)[0],
                                    rtol=1e-4, atol=1e-5)))

    # a whole training step of the default MLP (autograd + optimizer), native vs reference backend
    from fastdl import models, nn, optim
    xb, yb = f(64, 784), rng.integers(0, 10, 64)

    def step_fn(backend):
        fastdl.manual_seed(0)
        m = models.mlp(784, (256, 128), 10, dropout=0.2)
        opt = optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        return harness.train_step(backend, m, opt, nn.CrossEntropyLoss(), fastdl.tensor(xb), yb)
    tstep = None
    if torch:
        tm = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                 torch.nn.Linear(256, 128), torch.nn.ReLU(), torch.nn.Dropout(0.2),
                                 torch.nn.Linear(128, 10))
        topt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)
        txb, tyb = T(xb), torch.from_numpy(yb)

        def tstep():
            topt.zero_grad()
            TF.cross_entropy(tm(txb), tyb).backward()
            topt.step()
    mlp_flops = 3 * 2 * 64 * (784 * 256 + 256 * 128 + 128 * 10)
    out.append(("MLP train step (batch 64)", mlp_flops, "GFLOP/s", step_fn("native"), step_fn("reference"), tstep,
                lambda: True))
    return out


def run_one(threads: int, repeat: int) -> dict:
    import fastdl
    from fastdl import _C

    rng = np.random.default_rng(0)
    torch = harness.use_threads(threads)
    tv = None if torch is None else torch.__version__
    rows = []
    for name, work, unit, nat, ref, tch, ok in cases(rng):
        if not ok():
            raise SystemExit(f"validation failed: {name}")
        tn, tt = timeit_pair(nat, tch, repeat) if tch else (timeit(nat, repeat), None)
        tr = timeit(ref, repeat)
        rows.append(dict(case=name, unit=unit, native_ms=tn * 1e3, reference_ms=tr * 1e3,
                         torch_ms=None if tt is None else tt * 1e3, native_rate=work / tn / 1e9,
                         ref_over_native=tr / tn, torch_over_native=None if tt is None else tt / tn))
    return dict(threads=threads, torch=tv, blas=_C.blas_config(), blas_core=_C.blas_corename(),
                cpu=_C.cpu_features(), rows=rows)


def show(res: dict) -> None:
    print(f"\n== threads {res['threads']} | {res['blas']} ({res['blas_core']}) | CPU {res['cpu']} | "
          f"torch {res['torch'] or 'not installed'} | float32")
    print(f"{'case':34s} {'native ms':>10s} {'rate':>9s} {'unit':8s} {'ref ms':>9s} {'ref/nat':>8s} "
          f"{'torch ms':>9s} {'torch/nat':>9s}")
    for r in res["rows"]:
        tm = f"{r['torch_ms']:9.3f}" if r["torch_ms"] is not None else f"{'-':>9s}"
        tr = f"{r['torch_over_native']:9.2f}" if r["torch_over_native"] is not None else f"{'-':>9s}"
        print(f"{r['case']:34s} {r['native_ms']:10.3f} {r['native_rate']:9.1f} {r['unit']:8s} "
              f"{r['reference_ms']:9.3f} {r['ref_over_native']:8.2f} {tm} {tr}")


def main() -> int:
    args = harness.parser(__doc__, "core", repeat=30).parse_args()
    return harness.main(args, __file__, lambda a: run_one(a.child, a.repeat), show, "fastdl core benchmark")


if __name__ == "__main__":
    raise SystemExit(main())
