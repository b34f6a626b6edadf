"""Attention: scaled dot-product attention forward and forward+backward at B=32, heads=8, L=S=128,
E=64 and at B=4, heads=8, L=S=2048, E=64, causal and not; MultiheadAttention forward+backward; a
seq2seq (date translation) training step.  fastdl against PyTorch's CPU kernels and the NumPy
reference, validated first, at 1 and 2 threads, the libraries alternating in one process.  Then
the peak extra memory of the long forward+backward, each library alone in a fresh process.

    python bench/bench_attention.py [--threads 1 2] [--repeat 5] [--no-memory]
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np

import harness
from harness import timeit, timeit_pair

SDPA = [(32, 8, 128, 64), (4, 8, 2048, 64)]  # B, heads, L = S, E


def child(threads: int, repeat: int) -> dict:
    import fastdl
    from fastdl import functional as F
    from fastdl import nn

    torch = harness.use_threads(threads)
    rng = np.random.default_rng(0)
    rows = []

    def add(name, flops, nat, ref, tch):
        tn, tt = timeit_pair(nat, tch, repeat) if tch else (timeit(nat, repeat, min_time=0.0), None)
        tr = timeit(ref, 1, min_time=0.0) if ref else None
        rows.append(dict(case=name, native_ms=tn * 1e3, gflops=None if flops is None else flops / tn / 1e9,
                         reference_ms=None if tr is None else tr * 1e3, ref_over_native=None if tr is None else tr / tn,
                         torch_ms=None if tt is None else tt * 1e3, torch_over_native=None if tt is None else tt / tn))

    for B, H, L, E in SDPA:
        q, k, v = (rng.standard_normal((B, H, L, E)).astype(np.float32) for _ in range(3))
        g = rng.standard_normal((B, H, L, E)).astype(np.float32)
        for causal in (False, True):
            label = f"SDPA B={B} h={H} L=S={L} E={E}{' causal' if causal else ''}"
            flops = 4 * B * H * L * L * E * (0.5 if causal else 1.0)

            def fwd(backend):
                def f():
                    fastdl.set_backend(backend)
                    try:
                        with fastdl.no_grad():
                            F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    finally:
                        fastdl.set_backend("native")
                return f

            def fb(backend):
                def f():
                    fastdl.set_backend(backend)
                    try:
                        ts = [fastdl.tensor(a, requires_grad=True) for a in (q, k, v)]
                        F.scaled_dot_product_attention(*ts, is_causal=causal).backward(g)
                    finally:
                        fastdl.set_backend("native")
                return f
            # validate against the reference (and PyTorch) on the first heads
            sl = (slice(0, 1), slice(0, 2))
            got = F.scaled_dot_product_attention(q[sl], k[sl], v[sl], is_causal=causal).numpy()
            fastdl.set_backend("reference")
            want = F.scaled_dot_product_attention(q[sl], k[sl], v[sl], is_causal=causal).numpy()
            fastdl.set_backend("native")
            if not np.allclose(got, want, rtol=1e-4, atol=1e-5):
                raise SystemExit(f"validation failed: {label}")
            t_fwd = t_fb = None
            if torch:
                tq, tk, tv, tg = (torch.from_numpy(a) for a in (q, k, v, g))
                tsd = torch.nn.functional.scaled_dot_product_attention
                if not np.allclose(tsd(tq[sl], tk[sl], tv[sl], is_causal=causal).numpy(), got, rtol=1e-4, atol=1e-5):
                    raise SystemExit(f"validation against PyTorch failed: {label}")

                def t_fwd():
                    with torch.no_grad():
                        tsd(tq, tk, tv, is_causal=causal)

                def t_fb():
                    a, b, c = (t.clone().requires_grad_(True) for t in (tq, tk, tv))
                    tsd(a, b, c, is_causal=causal).backward(tg)
            short = L <= 256
            add(label + " fwd", flops, fwd("native"), fwd("reference") if short else None, t_fwd)
            add(label + " fwd+bwd", 3.5 * flops, fb("native"), fb("reference") if short else None, t_fb)

    # MultiheadAttention forward + backward (self-attention, batch first)
    Bm, Lm, Em, Hm = 32, 128, 256, 8
    fastdl.manual_seed(0)
    mha = nn.MultiheadAttention(Em, Hm, batch_first=True)
    x = rng.standard_normal((Bm, Lm, Em)).astype(np.float32)

    def mha_step(need):
        def f():
            xt = fastdl.tensor(x, requires_grad=True)
            out, _ = mha(xt, xt, xt, need_weights=need)
            out.sum().backward()
        return f
    t_mha = None
    if torch:
        tmha = torch.nn.MultiheadAttention(Em, Hm, batch_first=True)
        tmha.load_state_dict({kk: torch.from_numpy(vv) for kk, vv in mha.state_dict().items()})
        tx = torch.from_numpy(x)
        if not np.allclose(mha(x, x, x, need_weights=False)[0].numpy(),
                           tmha(tx, tx, tx, need_weights=False)[0].detach().numpy(), rtol=1e-3, atol=1e-4):
            raise SystemExit("validation against PyTorch failed: MultiheadAttention")

        def t_mha():
            xt = tx.clone().requires_grad_(True)
            out, _ = tmha(xt, xt, xt, need_weights=False)
            out.sum().backward()
    mflops = 3 * (2 * Bm * Lm * Em * Em * 4 + 4 * Bm * Lm * Lm * Em)
    add(f"MultiheadAttention B={Bm} L={Lm} E={Em} h={Hm} fwd+bwd", mflops, mha_step(False), None, t_mha)

    # a date-translation training step (batch 64), native against the NumPy reference backend
    from fastdl import optim
    from fastdl.demos.date_translation import SRC_CHARS, _batches
    from fastdl.models import Seq2Seq
    from fastdl import datasets, text
    pairs = datasets.date_pairs(64, seed=0)
    src = text.Vocab([list(SRC_CHARS)], specials=("<pad>", "<unk>"))
    tgt = text.Vocab([list("0123456789-")])
    S, lengths, tin, tout = next(_batches(pairs, src, tgt, 64, np.random.default_rng(0)))
    model = Seq2Seq(len(src), len(tgt))
    opt = optim.Adam(model.parameters(), lr=3e-3)

    def s2s(backend):
        def f():
            fastdl.set_backend(backend)
            try:
                opt.zero_grad()
                model.loss(S, lengths, tin, tout).backward()
                opt.step()
            finally:
                fastdl.set_backend("native")
        return f
    add("Seq2Seq date translation train step (B=64)", None, s2s("native"), s2s("reference"), None)
    peak = threads * max(fastdl._C.fma_peak_gflops() for _ in range(3))
    for r in rows:
        r["peak_share"] = r["gflops"] / peak if peak and r["gflops"] else None
        if r["torch_ms"] is not None and r["gflops"]:
            r["torch_peak_share"] = r["gflops"] / r["torch_over_native"] / peak
    return dict(threads=threads, torch=getattr(torch, "__version__", None), rows=rows, peak_gflops=peak)


def show(res: dict) -> None:
    print(f"\n== threads {res['threads']} | torch {res['torch'] or 'not installed'} | float32 | FMA peak "
          f"{res['peak_gflops']:.0f} GFLOP/s on {res['threads']} core(s)")
    print(f"{'case':52s} {'native ms':>10s} {'GFLOP/s':>8s} {'%peak':>6s} {'numpy ms':>9s} {'np/nat':>7s} "
          f"{'torch ms':>9s} {'torch/nat':>9s} {'torch %peak':>11s}")
    for r in res["rows"]:
        ref = f"{r['reference_ms']:9.1f} {r['ref_over_native']:7.2f}" if r["reference_ms"] else f"{'-':>9s} {'-':>7s}"
        tch = f"{r['torch_ms']:9.1f} {r['torch_over_native']:9.2f}" if r["torch_ms"] is not None else \
            f"{'-':>9s} {'-':>9s}"
        tch += f" {100 * r['torch_peak_share']:10.0f}%" if r.get("torch_peak_share") else f" {'-':>11s}"
        gf = f"{r['gflops']:8.1f} {100 * r['peak_share']:5.0f}%" if r["gflops"] else f"{'-':>8s} {'-':>6s}"
        print(f"{r['case']:52s} {r['native_ms']:10.1f} {gf} {ref} {tch}")


MEMORY_CHILD = r"""
import json, sys, numpy as np
lib = sys.argv[1]
B, H, L, E = 4, 8, 2048, 64
rng = np.random.default_rng(0)
q, k, v, g = (rng.standard_normal((B, H, L, E)).astype(np.float32) for _ in range(4))
def hwm():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmHWM"))
if lib == "fastdl":
    import fastdl
    from fastdl import functional as F
    ts = [fastdl.tensor(a, requires_grad=True) for a in (q, k, v)]
    F.scaled_dot_product_attention(ts[0][:1, :1], ts[1][:1, :1], ts[2][:1, :1]).sum().backward()  # warm up
    before = hwm()
    F.scaled_dot_product_attention(*ts).backward(g)
else:
    import torch
    ts = [torch.from_numpy(a).requires_grad_(True) for a in (q, k, v)]
    torch.nn.functional.scaled_dot_product_attention(ts[0][:1, :1], ts[1][:1, :1], ts[2][:1, :1]).sum().backward()
    before = hwm()
    torch.nn.functional.scaled_dot_product_attention(*ts).backward(torch.from_numpy(g))
print(json.dumps({"extra_mb": (hwm() - before) / 2**20}))
"""


def memory() -> None:
    """Peak resident memory added by one forward+backward of the long case, in a fresh process."""
    io_mb = 7 * 4 * 8 * 2048 * 64 * 4 / 2**20  # q, k, v, out and three gradients
    one = 2048 * 2048 * 4 / 2**20
    print(f"\n== peak extra memory, SDPA forward+backward B=4 h=8 L=S=2048 E=64 (each library alone in a fresh "
          f"process; inputs, output and gradients are {io_mb:.0f} MB, one (L, S) float32 matrix {one:.0f} MB, "
          f"one per head {32 * one:.0f} MB)")
    for lib in ("fastdl", "torch"):
        proc = subprocess.run([sys.executable, "-c", MEMORY_CHILD, lib], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "2"})
        if proc.returncode:
            print(f"{lib:8s} not measured ({proc.stderr.strip().splitlines()[-1] if proc.stderr else 'failed'})")
            continue
        print(f"{lib:8s} {json.loads(proc.stdout.strip().splitlines()[-1])['extra_mb']:8.1f} MB")


def main() -> int:
    ap = harness.parser(__doc__, "attention", repeat=5)
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    args = ap.parse_args()
    rc = harness.main(args, __file__, lambda a: child(a.child, a.repeat), show, "fastdl attention benchmark")
    if rc == 0 and args.child is None and not args.no_memory:
        memory()
    return rc


if __name__ == "__main__":
    raise SystemExit(main())
