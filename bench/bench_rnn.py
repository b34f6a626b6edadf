"""Recurrent layers: LSTM and GRU forward and forward+backward at the issue's shapes, a
bidirectional LSTM, single steps of generation (T=1, forward only), and a char-LM training step:
native vs the NumPy reference (a loop over time steps) vs PyTorch when installed, at 1 and 2
threads, fastdl and PyTorch alternating in one process, or with ``--separate R`` each in its own
process (R of each, in turn: in one process PyTorch's OpenMP workers spin on after its calls, on the
cores fastdl's workers need).  Validated before timing.  Rates are also given as a share of the
machine's FMA peak (``_C.fma_peak_gflops``: independent FMA chains on one core with the widest SIMD
build, times threads).

    python bench/bench_rnn.py [--threads 1 2] [--repeat 5] [--separate 3]
"""
from __future__ import annotations

import numpy as np

import harness
from harness import timeit, timeit_pair

SHAPES = [(50, 32, 128, 256), (100, 64, 256, 512)]  # T, B, I, H
DECODE = [(1, 1, 128, 256), (1, 16, 128, 256), (1, 1, 256, 512)]  # single steps, forward only


def child(threads: int, repeat: int, side: str | None = None) -> dict:
    """The cases timed at ``threads``; ``side`` "native" or "torch" times only that library (the
    fastdl side then leaves PyTorch unused: its workers would spin on after the validation's calls)."""
    import fastdl
    from fastdl import models, nn, optim

    torch = harness.use_threads(threads)
    torch_version = getattr(torch, "__version__", None)
    if side == "native":
        torch = None
    rng = np.random.default_rng(0)
    rows = []

    def add(name, flops, nat, ref, tch, ok):
        if not ok():
            raise SystemExit(f"validation failed: {name}")
        tn = tt = tr = None
        if side == "native":
            tn = timeit(nat, repeat, min_time=0.3)
        elif side == "torch":
            tt = timeit(tch, repeat, min_time=0.3) if tch else None  # (PyTorch not installed: no times)
        elif tch:
            tn, tt = timeit_pair(nat, tch, repeat)
        else:
            tn = timeit(nat, repeat, min_time=0.0)
        if side != "torch" and ref:
            tr = timeit(ref, 2, min_time=0.0)
        rows.append(dict(case=name, flops=flops, native_ms=None if tn is None else tn * 1e3,
                         reference_ms=None if tr is None else tr * 1e3,
                         torch_ms=None if tt is None else tt * 1e3))

    cases = [("LSTM", 4, False, SHAPES[0]), ("LSTM", 4, False, SHAPES[1]), ("GRU", 3, False, SHAPES[0]),
             ("GRU", 3, False, SHAPES[1]), ("LSTM", 4, True, SHAPES[0])]
    # one step of generation (sampling, greedy or beam decoding): T=1, inference only; the per-call work
    # (the weights' packing, the call itself) against one step's products
    cases += [(kind, g, False, shape) for kind, g in (("LSTM", 4), ("GRU", 3)) for shape in DECODE]
    for kind, g, bi, (T, B, I, H) in cases:
        dirs = 2 if bi else 1
        flops_fwd = dirs * 2 * T * B * g * H * (I + H)
        m = getattr(nn, kind)(I, H, bidirectional=bi)
        x = rng.standard_normal((T, B, I)).astype(np.float32)
        label = f"{'Bi' if bi else ''}{kind} T={T} B={B} I={I} H={H}"
        tm = None
        if torch:
            tm = getattr(torch.nn, kind)(I, H, bidirectional=bi)
            m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
            tx = torch.from_numpy(x)
            txg = torch.from_numpy(x).requires_grad_(True)

        def run(backend, grad):
            xt = fastdl.tensor(x, requires_grad=grad)  # made once, as PyTorch's tx and txg below

            def f():
                fastdl.set_backend(backend)
                try:
                    if grad:
                        out, _ = m(xt)
                        out.sum().backward()
                    else:
                        with fastdl.no_grad():
                            m(xt)
                finally:
                    fastdl.set_backend("native")
            return f

        def ok():
            with fastdl.no_grad():
                a = m(x)[0].data
                fastdl.set_backend("reference")
                b = m(x)[0].data
                fastdl.set_backend("native")
            good = np.allclose(a, b, rtol=1e-4, atol=1e-5)
            if torch:
                good &= np.allclose(a, tm(tx)[0].detach().numpy(), rtol=1e-3, atol=1e-4)
            return good

        def t_fwd():
            with torch.no_grad():
                tm(tx)

        def t_fb():
            out, _ = tm(txg)
            out.sum().backward()
        add(label + " fwd", flops_fwd, run("native", False), run("reference", False), t_fwd if torch else None, ok)
        if T == 1:
            continue
        add(label + " fwd+bwd", 3 * flops_fwd, run("native", True), run("reference", True), t_fb if torch else None,
            lambda: True)

    # char-LM training step on the names list (batch 64)
    vocab = models.CharVocab.from_texts(fastdl.datasets.names())
    names = fastdl.datasets.names()[:64]
    xb, yb = vocab.batch(names)
    fastdl.manual_seed(0)
    lm = models.CharLM(len(vocab), 32, 128)
    opt = optim.Adam(lm.parameters(), lr=3e-3)

    def lm_step(backend):
        def f():
            fastdl.set_backend(backend)
            try:
                opt.zero_grad()
                lm.loss(xb, yb).backward()
                opt.step()
            finally:
                fastdl.set_backend("native")
        return f
    tstep = None
    if torch:
        class TLM(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.embed = torch.nn.Embedding(len(vocab), 32)
                self.rnn = torch.nn.LSTM(32, 128, batch_first=True)
                self.head = torch.nn.Linear(128, len(vocab))

            def forward(self, t):
                return self.head(self.rnn(self.embed(t))[0])
        tlm = TLM()
        topt = torch.optim.Adam(tlm.parameters(), lr=3e-3)
        txb, tyb = torch.from_numpy(xb), torch.from_numpy(yb)

        def tstep():
            topt.zero_grad()
            torch.nn.functional.cross_entropy(tlm(txb).reshape(-1, len(vocab)), tyb.reshape(-1),
                                              ignore_index=-100).backward()
            topt.step()
    T = xb.shape[1]
    add(f"char-LM train step (B=64, T={T}, LSTM 32->128)", 3 * 2 * T * 64 * 4 * 128 * (32 + 128),
        lm_step("native"), lm_step("reference"), tstep, lambda: True)
    # the machine's FMA peak on this many cores (independent FMA chains on one core, times threads),
    # for the rates as a share of it
    peak = threads * max(fastdl._C.fma_peak_gflops() for _ in range(3))
    return rates(dict(threads=threads, torch=torch_version, rows=rows, peak_gflops=peak))


def rates(res: dict) -> dict:
    """Each row's rates and ratios from its times (missing ones None)."""
    peak = res["peak_gflops"]
    for r in res["rows"]:
        tn, tr, tt = r["native_ms"], r["reference_ms"], r["torch_ms"]
        r["gflops"] = r["flops"] / tn / 1e6 if tn else None
        r["peak_share"] = r["gflops"] / peak if tn and peak else None
        r["ref_over_native"] = tr / tn if tr and tn else None
        r["torch_over_native"] = tt / tn if tt and tn else None
        r["torch_peak_share"] = r["flops"] / tt / 1e6 / peak if tt and peak else None
    return res


def merge(natives: list, torches: list) -> dict:
    """One result from the --separate children: per case, the median over the rounds of each side's time."""
    res = dict(natives[0], torch=torches[0]["torch"], peak_gflops=max(r["peak_gflops"] for r in natives + torches))
    rows = []
    for i, row in enumerate(natives[0]["rows"]):
        def med(results, key):
            got = [r["rows"][i][key] for r in results if r["rows"][i][key] is not None]
            return float(np.median(got)) if got else None
        rows.append(dict(case=row["case"], flops=row["flops"], native_ms=med(natives, "native_ms"),
                         reference_ms=med(natives, "reference_ms"), torch_ms=med(torches, "torch_ms")))
    res["rows"] = rows
    return rates(res)


def show(res: dict) -> None:
    print(f"\n== threads {res['threads']} | torch {res['torch'] or 'not installed'} | float32 | FMA peak "
          f"{res['peak_gflops']:.0f} GFLOP/s on {res['threads']} core(s) | "
          + (f"each library in its own process, medians of {res['separate']} each" if res.get("separate")
             else "alternating in one process"))
    print(f"{'case':44s} {'native ms':>10s} {'GFLOP/s':>8s} {'%peak':>6s} {'numpy ms':>9s} {'np/nat':>7s} "
          f"{'torch ms':>9s} {'torch/nat':>9s} {'torch %peak':>11s}")
    def ms(v, width):  # three decimals below 1 ms (the single steps)
        return f"{v:{width}.3f}" if v < 1 else f"{v:{width}.1f}"
    for r in res["rows"]:
        ref = f"{ms(r['reference_ms'], 9)} {r['ref_over_native']:7.2f}" if r["reference_ms"] else f"{'-':>9s} {'-':>7s}"
        tch = f"{ms(r['torch_ms'], 9)} {r['torch_over_native']:9.2f} {100 * r['torch_peak_share']:10.0f}%" \
            if r["torch_ms"] is not None else f"{'-':>9s} {'-':>9s} {'-':>11s}"
        share = f"{100 * r['peak_share']:5.0f}%" if r["peak_share"] is not None else f"{'-':>6s}"
        print(f"{r['case']:44s} {ms(r['native_ms'], 10)} {r['gflops']:8.1f} {share} {ref} {tch}")


def main() -> int:
    args = harness.parser(__doc__, "rnn", repeat=5, separable=True).parse_args()
    return harness.main(args, __file__, lambda a: child(a.child, a.repeat, a.side), show, "fastdl recurrent benchmark",
                        merge)


if __name__ == "__main__":
    raise SystemExit(main())
