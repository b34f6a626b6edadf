"""The PyTorch-surface ops with native kernels or native building blocks: the activation family (forward and
forward+backward), ConvTranspose2d, GroupNorm and EmbeddingBag, against PyTorch (the two alternating in one
process, so both see the same machine load) and the NumPy reference, at 1 and 2 threads.

Validated first (fastdl and PyTorch give the same result), then timed; medians in ms.

    python bench/bench_surface.py [--threads 1 2] [--repeat 15]
"""
from __future__ import annotations

import numpy as np

import harness
from harness import timeit, timeit_pair

ACTS = ["gelu", "gelu_tanh", "silu", "leaky_relu", "elu", "softplus", "hardswish", "mish"]


def _cases(torch, fastdl):
    import fastdl.nn.functional as F
    TF = torch.nn.functional
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 64 * 1024)).astype(np.float32)  # 4M elements
    g = rng.standard_normal(x.shape).astype(np.float32)
    tfn = {"gelu": TF.gelu, "gelu_tanh": lambda t: TF.gelu(t, approximate="tanh"), "silu": TF.silu,
           "leaky_relu": lambda t: TF.leaky_relu(t, 0.01), "elu": TF.elu, "softplus": TF.softplus,
           "hardswish": TF.hardswish, "mish": TF.mish}
    ffn = {"gelu": F.gelu, "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "silu": F.silu,
           "leaky_relu": lambda t: F.leaky_relu(t, 0.01), "elu": F.elu, "softplus": F.softplus,
           "hardswish": F.hardswish, "mish": F.mish}
    cases = []
    for k in ACTS:
        def f_fwd(k=k):
            return ffn[k](fastdl.Tensor(x))  # wraps the array, as torch.from_numpy

        def t_fwd(k=k):
            with torch.no_grad():
                return tfn[k](torch.from_numpy(x))

        def f_both(k=k):
            t = fastdl.Tensor(x, requires_grad=True)
            ffn[k](t).backward(g)

        def t_both(k=k):
            t = torch.from_numpy(x).requires_grad_(True)
            tfn[k](t).backward(torch.from_numpy(g))
        cases.append((f"{k} fwd (4M)", f_fwd, t_fwd, lambda k=k: ffn[k](fastdl.Tensor(x)).data,
                      lambda k=k: t_fwd(k).numpy()))
        cases.append((f"{k} fwd+bwd", f_both, t_both, None, None))
    xi = rng.standard_normal((32, 64, 16, 16)).astype(np.float32)
    ct, tct = fastdl.nn.ConvTranspose2d(64, 32, 4, stride=2, padding=1), torch.nn.ConvTranspose2d(64, 32, 4, stride=2,
                                                                                                 padding=1)
    ct.load_state_dict({k: v.detach().numpy() for k, v in tct.state_dict().items()})
    gi = rng.standard_normal((32, 32, 32, 32)).astype(np.float32)
    cases.append(("ConvTranspose2d 64->32 k4 s2 fwd+bwd",) + _fwd_bwd(fastdl, torch, ct, tct, xi, gi))
    gn, tgn = fastdl.nn.GroupNorm(8, 64), torch.nn.GroupNorm(8, 64)
    cases.append(("GroupNorm(8, 64) fwd+bwd",) + _fwd_bwd(fastdl, torch, gn, tgn, xi, xi))
    eb, teb = fastdl.nn.EmbeddingBag(50_000, 128, mode="mean"), torch.nn.EmbeddingBag(50_000, 128, mode="mean")
    eb.load_state_dict({k: v.detach().numpy() for k, v in teb.state_dict().items()})
    ids = rng.integers(0, 50_000, 64 * 200)
    offs = np.arange(64) * 200
    ge = rng.standard_normal((64, 128)).astype(np.float32)
    tids, toffs = torch.from_numpy(ids), torch.from_numpy(offs)

    def f_eb():
        eb.zero_grad()
        eb(ids, offs).backward(ge)

    def t_eb():
        teb.zero_grad()
        teb(tids, toffs).backward(torch.from_numpy(ge))
    cases.append(("EmbeddingBag mean 64 bags x 200 fwd+bwd", f_eb, t_eb, lambda: eb(ids, offs).data,
                  lambda: teb(tids, toffs).detach().numpy()))
    return cases


def _fwd_bwd(fastdl, torch, m, tm, x, g):
    """(fastdl step, torch step, fastdl forward, torch forward) for a layer on input x with output gradient g."""
    def f():
        m(fastdl.Tensor(x, requires_grad=True)).backward(g)

    def t():
        tm(torch.from_numpy(x).requires_grad_(True)).backward(torch.from_numpy(g))
    return f, t, lambda: m(fastdl.tensor(x)).data, lambda: tm(torch.from_numpy(x)).detach().numpy()


def child(threads: int, repeat: int) -> dict:
    import fastdl
    torch = harness.use_threads(threads)
    if torch is None:
        raise SystemExit("this benchmark compares with PyTorch: pip install torch")
    rows = []
    for name, f, t, fv, tv in _cases(torch, fastdl):
        if fv is not None:
            np.testing.assert_allclose(fv(), tv(), rtol=2e-4, atol=2e-5, err_msg=name)
        tf, tt = timeit_pair(f, t, repeat)
        row = dict(case=name, fastdl_ms=tf * 1e3, torch_ms=tt * 1e3, speedup=tt / tf)
        if name.endswith("fwd (4M)"):  # the NumPy twin of the activation kernel
            from fastdl import reference
            x = np.random.default_rng(0).standard_normal((64, 64 * 1024)).astype(np.float32)
            kind = name.split()[0]
            alpha = {"leaky_relu": 0.01, "elu": 1.0, "softplus": 1.0}.get(kind, 0.0)
            beta = 20.0 if kind == "softplus" else 0.0
            row["numpy_ms"] = timeit(lambda: reference.activation_forward(x, kind, alpha, beta), 3, 0.0) * 1e3
        rows.append(row)
    return dict(threads=threads, torch=torch.__version__, rows=rows)


def show(res: dict) -> None:
    print(f"\n== threads {res['threads']}, torch {res['torch']} (same process, alternating)")
    print(f"{'case':42s} {'fastdl ms':>10s} {'torch ms':>9s} {'torch/fastdl':>13s} {'numpy ms':>9s}")
    for r in res["rows"]:
        npm = f"{r['numpy_ms']:9.1f}" if "numpy_ms" in r else f"{'':9s}"
        print(f"{r['case']:42s} {r['fastdl_ms']:10.2f} {r['torch_ms']:9.2f} {r['speedup']:13.2f} {npm}")


def main() -> int:
    ap = harness.parser(__doc__, "surface", repeat=15)
    args = ap.parse_args()
    return harness.main(args, __file__, lambda a: child(a.child, a.repeat), show, "fastdl PyTorch-surface benchmark")


if __name__ == "__main__":
    raise SystemExit(main())
