"""Shared benchmark machinery: timing, one child process per thread count, JSON results.

Every benchmark script validates its cases, then times them with :func:`timeit` (warm-up, then
at least ``repeat`` runs and ``min_time`` seconds, median), or, to compare with PyTorch,
:func:`timeit_pair` (the two alternate in blocks, so both see the same machine load).
:func:`main` runs the script once per thread count in a child process with OMP/OPENBLAS/MKL
threads set, so NumPy's BLAS, ours and PyTorch's all get the same number, prints each child's
table and writes ``results/NAME.json``.  Scripts that offer ``--separate`` can instead time each
library in its own process: in one process PyTorch's OpenMP workers keep spinning for milliseconds
after each of its calls (GNU OpenMP's default), on the cores that fastdl's workers then need.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np


def timeit(fn, repeat: int, min_time: float = 0.2) -> float:
    """Median seconds of ``fn()`` after 3 warm-up calls."""
    for _ in range(3):
        fn()
    ts = []
    t_end = time.perf_counter() + min_time
    while len(ts) < repeat or time.perf_counter() < t_end and len(ts) < 20 * repeat:
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def timeit_pair(fa, fb, repeat: int, block: int = 3) -> tuple[float, float]:
    """Median seconds of ``fa()`` and of ``fb()``, timed in alternating blocks of ``block`` calls.

    On a shared machine the load drifts over seconds; alternating keeps both sides under the same
    conditions, while blocks (not strict A/B pairs) keep one library's idle threads from spinning
    into the other's first call.  Each block starts with an untimed warm-up call."""
    t0 = time.perf_counter()
    fa()
    fb()
    block = max(block, int(0.03 / max(time.perf_counter() - t0, 1e-6)))  # blocks of >= ~30 ms: short ops get many calls
    ta, tb = [], []
    for _ in range(max(4, -(-repeat // block))):
        for fn, ts in ((fa, ta), (fb, tb)):
            fn()
            for _ in range(block):
                t0 = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t0)
    return float(np.median(ta)), float(np.median(tb))


def train_step(backend: str, model, opt, loss_fn, x, y):
    """A function running one fastdl training step (forward, loss, backward, optimizer) on the
    given backend ("native" or "reference"), leaving the native backend selected."""
    import fastdl

    def step():
        fastdl.set_backend(backend)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        fastdl.set_backend("native")
    return step


def use_threads(n: int):
    """Set fastdl's (and PyTorch's, when installed) thread count; returns the torch module or None."""
    import fastdl
    fastdl.set_num_threads(n)
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(n)
    return torch


def parser(doc: str, name: str, repeat: int, separable: bool = False) -> argparse.ArgumentParser:
    """The common options; ``separable`` adds ``--separate`` (each library timed in its own process)."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=repeat)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results", f"{name}.json"))
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    if separable:
        ap.add_argument("--separate", type=int, default=0, metavar="ROUNDS",
                        help="time each library in its own process instead of alternating in one: ROUNDS "
                             "fastdl processes and as many PyTorch ones, in turn; medians over the rounds")
        ap.add_argument("--side", choices=["native", "torch"], default=None, help=argparse.SUPPRESS)
    return ap


def main(args, script: str, child, show, title: str, merge=None) -> int:
    """In a child (``--child N``): print ``child(args)`` as JSON.  Otherwise run one child per
    thread count, show each result and save them all.  With ``--separate R`` (scripts that pass
    ``merge``): per thread count, R children timing only fastdl (``--side native``) and R timing only
    PyTorch, in turn, and ``merge(native_results, torch_results)`` makes one result of them."""
    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    separate = getattr(args, "separate", 0)
    where = (f"each library in its own process ({separate} of each, in turn)" if separate
             else "alternating in one process")
    print(f"{title} | Python {platform.python_version()} | NumPy {np.__version__} | {platform.machine()} | "
          f"{os.cpu_count()} cores | {where}")
    results = []
    for n in args.threads:
        env = {**os.environ, "OMP_NUM_THREADS": str(n), "OPENBLAS_NUM_THREADS": str(n), "MKL_NUM_THREADS": str(n)}

        def run(*extra):
            proc = subprocess.run([sys.executable, script, *sys.argv[1:], "--child", str(n), *extra], env=env,
                                  capture_output=True, text=True)
            if proc.returncode:
                print(proc.stdout, proc.stderr, file=sys.stderr)
                raise SystemExit(proc.returncode)
            return json.loads(proc.stdout.strip().splitlines()[-1])
        if separate:
            sides = {"native": [], "torch": []}
            for _ in range(separate):
                for side, got in sides.items():
                    got.append(run("--side", side))
            res = merge(sides["native"], sides["torch"])
        else:
            res = run()
        res["separate"] = separate
        show(res)
        results.append(res)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump(results, fh, indent=1)
    print(f"\nwrote {args.json}")
    return 0
