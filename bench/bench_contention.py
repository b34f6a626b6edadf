"""fastdl when it is not alone: a LeNet-5 training step and an LSTM layer forward, timed alone, as two
processes at once, with PyTorch imported first in the same process, and inside a tune.random_search
running 2 trials in parallel processes; PyTorch's own steps in the situations that apply to it.

Each situation runs in fresh processes, warmed up and then released together for the same few
seconds (the workload's median step time); the table gives the medians and each one's slowdown
against the same workload alone.  Perfect sharing of the
cores by two processes is 2.0x.  Nothing here sets thread counts: every library runs with its
defaults, as a user's script would.

    python bench/bench_contention.py [--seconds 3] [--repeat 3] [--json bench/results/bench_contention.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def workload(lib: str, work: str, seconds: float, torch_first: bool = False, wait=None) -> float:
    """Median seconds per step of one workload run for ``seconds`` in this process; ``wait()`` is
    called after the warm-up (the driver starts every process of a situation at once)."""
    import numpy as np
    if torch_first or lib == "torch":
        import torch
    rng = np.random.default_rng(0)
    if lib == "fastdl":
        import fastdl
        from fastdl import models, nn, optim
        fastdl.manual_seed(0)
        if work == "lenet":
            model, loss_fn = models.lenet5(padding=2), nn.CrossEntropyLoss()
            opt = optim.Adam(model.parameters(), lr=1e-3)
            x = fastdl.tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
            y = rng.integers(0, 10, 64)

            def step():
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        else:
            lstm = nn.LSTM(128, 256)
            x = fastdl.tensor(rng.standard_normal((50, 32, 128)).astype(np.float32))

            def step():
                with fastdl.no_grad():
                    lstm(x)
    else:
        if work == "lenet":
            tn = torch.nn
            model = tn.Sequential(tn.Conv2d(1, 6, 5, padding=2), tn.Tanh(), tn.AvgPool2d(2), tn.Conv2d(6, 16, 5),
                                  tn.Tanh(), tn.AvgPool2d(2), tn.Flatten(), tn.Linear(400, 120), tn.Tanh(),
                                  tn.Linear(120, 84), tn.Tanh(), tn.Linear(84, 10))
            opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), tn.CrossEntropyLoss()
            x = torch.from_numpy(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
            y = torch.from_numpy(rng.integers(0, 10, 64))

            def step():
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
        else:
            lstm = torch.nn.LSTM(128, 256)
            x = torch.from_numpy(rng.standard_normal((50, 32, 128)).astype(np.float32))

            def step():
                with torch.no_grad():
                    lstm(x)
    for _ in range(5):
        step()
    if wait is not None:
        wait()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def trial(config: dict) -> dict:
    """A tune objective: times the workload in the trial's worker process."""
    return {"score": workload("fastdl", config["work"], float(config["seconds"]))}


def run_together(lib, work, seconds, n=1, torch_first=False) -> list:
    """n processes of one workload, warmed up, then released at the same moment; their step times."""
    cmd = [sys.executable, __file__, "--child", lib, work, str(seconds)] + (["--torch-first"] if torch_first else [])
    procs = [subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for _ in range(n)]
    for p in procs:
        if p.stdout.readline().strip() != "ready":
            raise SystemExit("a benchmark process failed to start")
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"a benchmark process failed ({p.returncode})")
        out.append(json.loads(stdout.strip().splitlines()[-1]))
    return out


def in_tune(work: str, seconds: float) -> list:
    """Two trials at once in tune.random_search's worker processes; their step times."""
    from fastdl import tune
    res = tune.random_search(trial, {"work": tune.Choice([work]), "seconds": tune.Choice([seconds])}, n_trials=2,
                             n_jobs=2)
    return [t.score for t in res.trials]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="how long each process runs its workload")
    ap.add_argument("--repeat", type=int, default=3, help="runs of each situation (the median is kept)")
    ap.add_argument("--json", default=os.path.join(HERE, "results", "bench_contention.json"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--torch-first", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        lib, work, seconds = args.child

        def wait():
            print("ready", flush=True)
            sys.stdin.readline()
        print(json.dumps(workload(lib, work, float(seconds), args.torch_first, wait)))
        return 0
    try:
        import torch  # noqa: F401
        libs = ("fastdl", "torch")
    except ImportError:
        libs = ("fastdl",)
    import numpy as np
    import fastdl
    print(f"contention benchmark | fastdl {fastdl.__version__} | {os.cpu_count()} cores | "
          f"fastdl threads {fastdl.get_num_threads()} | step medians over {args.seconds:g} s, "
          f"median of {args.repeat} runs", flush=True)
    rows = []
    for work in ("lenet", "lstm"):
        for lib in libs:
            situations = {
                "alone": lambda: run_together(lib, work, args.seconds),
                "two processes": lambda: run_together(lib, work, args.seconds, n=2),
            }
            if lib == "fastdl":
                situations["torch imported first"] = lambda: run_together(lib, work, args.seconds, torch_first=True)
                situations["tune, 2 parallel trials"] = lambda: in_tune(work, args.seconds)
            base = None
            for name, run in situations.items():
                t = float(np.median([np.mean(run()) for _ in range(args.repeat)]))
                base = base or t
                rows.append(dict(workload=work, library=lib, situation=name, ms=t * 1e3, slowdown=t / base))
                print(f"{work:6s} {lib:7s} {name:26s} {t * 1e3:9.2f} ms   x{t / base:5.2f}", flush=True)
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
