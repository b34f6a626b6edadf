"""Fused optimizer steps on 10M float32 parameters (SGD, Adam, AdamW, Adagrad, Adadelta, Adamax, NAdam, RAdam,
RMSprop): native kernel vs the NumPy reference
(vs PyTorch's foreach implementation when installed), at 1 and 2 threads.

Validated first (native and reference give the same update), then timed;
reports median ms and effective GB/s (bytes the update must read and write).

    python bench/bench_optim.py [--threads 1 2] [--n 10000000]
"""
from __future__ import annotations

import numpy as np

import harness
from harness import timeit, timeit_pair


def child(n: int, threads: int, repeat: int) -> dict:
    from fastdl import _C, reference as R

    rng = np.random.default_rng(0)
    g = rng.standard_normal(n).astype(np.float32)
    rows = []
    specs = {
        # name: (bytes moved per element, native call, reference call, torch optimizer factory)
        "SGD momentum": (5 * 4, lambda p, s: _C.sgd_step(p, g, s[0], 0.01, 0.9, 0, 0, False, False, False),
                         lambda p, s: R.sgd_step(p, g, s[0], 0.01, 0.9, 0, 0, False, False, False),
                         lambda ps, fe: __import__("torch").optim.SGD(ps, lr=0.01, momentum=0.9, foreach=fe)),
        "Adam": (7 * 4, lambda p, s: _C.adam_step(p, g, s[0], s[1], None, 1e-3, 0.9, 0.999, 1e-8, 0, False, False, 5),
                 lambda p, s: R.adam_step(p, g, s[0], s[1], None, 1e-3, 0.9, 0.999, 1e-8, 0, False, False, 5),
                 lambda ps, fe: __import__("torch").optim.Adam(ps, lr=1e-3, foreach=fe)),
        "AdamW": (7 * 4, lambda p, s: _C.adam_step(p, g, s[0], s[1], None, 1e-3, 0.9, 0.999, 1e-8, 1e-2, True, False, 5),
                  lambda p, s: R.adam_step(p, g, s[0], s[1], None, 1e-3, 0.9, 0.999, 1e-8, 1e-2, True, False, 5),
                  lambda ps, fe: __import__("torch").optim.AdamW(ps, lr=1e-3, foreach=fe)),
        **{name: (7 * 4 if kind != "adagrad" else 5 * 4,
                  (lambda k: lambda p, s: _C.adaptive_step(k, p, g, s[1], None if k == "adagrad" else s[0], 1e-3, 0.9,
                                                           0.999, 1e-8, 0, False, False, 5, 0.0 if k != "nadam" else
                                                           4e-3, 0.0 if k != "nadam" else 0.5))(kind),
                  (lambda k: lambda p, s: R.adaptive_step(k, p, g, s[1], None if k == "adagrad" else s[0], 1e-3, 0.9,
                                                          0.999, 1e-8, 0, False, False, 5, 0.0 if k != "nadam" else
                                                          4e-3, 0.0 if k != "nadam" else 0.5))(kind),
                  (lambda c: lambda ps, fe: getattr(__import__("torch").optim, c)(ps, lr=1e-3, foreach=fe))(name))
           for name, kind in (("Adagrad", "adagrad"), ("Adadelta", "adadelta"), ("Adamax", "adamax"),
                              ("NAdam", "nadam"), ("RAdam", "radam"))},
        "RMSprop": (5 * 4, lambda p, s: _C.rmsprop_step(p, g, s[1], None, None, 1e-3, 0.99, 1e-8, 0, 0, False),
                    lambda p, s: R.rmsprop_step(p, g, s[1], None, None, 1e-3, 0.99, 1e-8, 0, 0, False),
                    lambda ps, fe: __import__("torch").optim.RMSprop(ps, lr=1e-3, foreach=fe)),
    }
    torch = harness.use_threads(threads)
    for name, (bpe, nat, ref, tfac) in specs.items():
        fresh = lambda: (rng.standard_normal(n).astype(np.float32),  # noqa: E731
                         [np.zeros(n, np.float32), np.abs(rng.standard_normal(n)).astype(np.float32)])
        p1, s1 = fresh()
        p2, s2 = p1.copy(), [a.copy() for a in s1]
        nat(p1, s1)
        ref(p2, s2)
        if not np.allclose(p1, p2, rtol=1e-5, atol=1e-6):
            raise SystemExit(f"validation failed: {name}")
        p, s = fresh()
        steps = {}  # torch's optimizer, foreach and single-tensor, each on its own parameter
        if torch is not None:
            for fe in (True, False):
                tp = torch.nn.Parameter(torch.from_numpy(fresh()[0]))
                tp.grad = torch.from_numpy(g)
                steps[fe] = tfac([tp], fe)
                steps[fe].step()
        if steps:  # native and torch foreach in alternating blocks (the same machine load)
            tn, tfe = timeit_pair(lambda: nat(p, s), steps[True].step, repeat)
        else:
            tn = timeit(lambda: nat(p, s), repeat)
        tr = timeit(lambda: ref(p, s), max(3, repeat // 3))
        row = dict(case=name, n=n, native_ms=tn * 1e3, reference_ms=tr * 1e3, native_GBs=bpe * n / tn / 1e9,
                   ref_over_native=tr / tn)
        if steps:
            row["torch_foreach_ms"] = tfe * 1e3
            row["torch_single_ms"] = timeit(steps[False].step, repeat) * 1e3
            row["torch_foreach_over_native"] = row["torch_foreach_ms"] / row["native_ms"]
        rows.append(row)
    return dict(threads=threads, torch=getattr(torch, "__version__", None), rows=rows)


def show(res: dict) -> None:
    n = res["rows"][0]["n"]
    print(f"\n== {n / 1e6:.0f}M float32 parameters, threads {res['threads']}, torch {res['torch'] or 'not installed'}")
    print(f"{'optimizer':14s} {'native ms':>10s} {'GB/s':>7s} {'numpy ms':>9s} {'np/nat':>7s} "
          f"{'torch foreach':>14s} {'torch single':>13s} {'tfe/nat':>8s}")
    for r in res["rows"]:
        tf = f"{r.get('torch_foreach_ms', float('nan')):14.2f} {r.get('torch_single_ms', float('nan')):13.2f} " \
             f"{r.get('torch_foreach_over_native', float('nan')):8.2f}"
        print(f"{r['case']:14s} {r['native_ms']:10.2f} {r['native_GBs']:7.1f} {r['reference_ms']:9.2f} "
              f"{r['ref_over_native']:7.2f} {tf}")


def main() -> int:
    ap = harness.parser(__doc__, "optim", repeat=15)
    ap.add_argument("--n", type=int, default=10_000_000)
    args = ap.parse_args()
    return harness.main(args, __file__, lambda a: child(a.n, a.child, a.repeat), show, "fastdl optimizer benchmark")


if __name__ == "__main__":
    raise SystemExit(main())
