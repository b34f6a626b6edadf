"""Data-parallel training on one machine: 1 process x 2 threads against 2 MPI ranks x 1 thread.

Two workloads, each at the same global batch (so the same samples per step either way):

- LeNet-5 on 28x28 digits, Adam, batch 64 (61,706 parameters, 0.25 MB of gradients);
- an LSTM character language model (embedding 64, LSTM 512, vocabulary 96), Adam, batch 32 x 64
  tokens (1.38 M parameters, 5.5 MB of gradients).

Each configuration runs in its own fresh processes (``mpiexec -n 2`` for the ranks): validated
(after the first steps the two ranks hold bit-identical weights), warmed up, then timed for
``--steps`` steps; the table gives the median step time, samples per second and, for the ranks, the
all-reduce's share of the step: the time backward's end waits for the last buckets plus the time
spent starting them (communication that overlapped the rest of backward is not in it), and the time
of one bare all-reduce of all the gradients for comparison.

    python bench/bench_distributed.py [--steps 40] [--json bench/results/bench_distributed.json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
GLOBAL_BATCH = {"lenet5": 64, "lstm-lm": 32}


def build(work: str):
    import fastdl
    from fastdl import models, nn
    fastdl.manual_seed(0)
    if work == "lenet5":
        return models.lenet5(padding=2, activation="relu", pooling="max"), nn.CrossEntropyLoss()
    return models.CharLM(96, embed_dim=64, hidden_size=512), None


def batch(work: str, n: int, step: int):
    g = np.random.default_rng(step)
    if work == "lenet5":
        return g.standard_normal((n, 1, 28, 28)).astype(np.float32), g.integers(0, 10, n)
    t = g.integers(0, 96, (n, 65))
    return t[:, :-1], t[:, 1:]


def worker(work: str, steps: int, distributed: bool) -> dict:
    import fastdl
    from fastdl import optim
    r, w = 0, 1
    if distributed:
        from fastdl import distributed as dist
        dist.init()
        r, w = dist.rank(), dist.world_size()
    model, loss_fn = build(work)
    if distributed:
        model = dist.DistributedDataParallel(model)
        comm_time = [0.0]
        for name in ("_launch", "_finish"):  # time on the critical path spent starting and finishing all-reduces
            orig = getattr(model, name)

            def timed(*a, _orig=orig):
                t0 = time.perf_counter()
                _orig(*a)
                comm_time[0] += time.perf_counter() - t0
            setattr(model, name, timed)
    opt = optim.Adam(model.parameters(), lr=1e-3)
    per = GLOBAL_BATCH[work] // w

    def step(i):
        x, y = batch(work, GLOBAL_BATCH[work], i)
        x, y = x[r * per:(r + 1) * per], y[r * per:(r + 1) * per]
        opt.zero_grad()
        loss = loss_fn(model(fastdl.tensor(x)), y) if work == "lenet5" else _lm_loss(model, x, y)
        loss.backward()
        opt.step()

    for i in range(3):
        step(i)
    out = {"threads": fastdl.get_num_threads(), "ranks": w}
    if distributed:
        digest = float(sum(float(np.abs(p.data).sum()) for p in model.parameters()))
        out["same_weights"] = len(set(dist.all_gather_object(digest))) == 1
        dist.barrier()
        comm_time[0] = 0.0
    ts = []
    for i in range(steps):
        t0 = time.perf_counter()
        step(3 + i)
        ts.append(time.perf_counter() - t0)
    out["step_s"] = float(np.median(ts))
    if distributed:
        out["comm_per_step_s"] = comm_time[0] / steps
        flat = np.ones(sum(p.data.size for p in model.parameters()), np.float32)
        bare = []
        for _ in range(10):
            dist.barrier()
            t0 = time.perf_counter()
            dist.all_reduce(flat)
            bare.append(time.perf_counter() - t0)
        out["bare_allreduce_s"] = float(np.median(bare))
        out["grad_mb"] = flat.nbytes / 2 ** 20
        out["buckets"] = len(model.bucket_sizes)
    return out


def _lm_loss(model, x, y):
    """CharLM's loss through ``model``'s forward (the DDP wrapper's, for the ranks)."""
    import fastdl
    from fastdl import functional as F
    logits, _ = model(fastdl.tensor(x))
    return F.cross_entropy(logits.reshape(-1, 96), np.asarray(y).reshape(-1))


def run(args_list: list, env: dict, timeout: float) -> list:
    p = subprocess.run(args_list, capture_output=True, text=True, env=env, timeout=timeout, cwd=HERE)
    if p.returncode:
        raise SystemExit(f"{' '.join(args_list)} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return [json.loads(line[len("RESULT "):]) for line in p.stdout.splitlines() if line.startswith("RESULT ")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--json", default=os.path.join(HERE, "results", "bench_distributed.json"))
    ap.add_argument("--worker", nargs=2, metavar=("WORK", "MODE"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        res = worker(a.worker[0], a.steps, a.worker[1] == "ranks")
        if a.worker[1] != "ranks" or __import__("fastdl.distributed").distributed.rank() == 0:
            print("RESULT " + json.dumps(res), flush=True)
        return
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"])
    if mpiexec is None:
        raise SystemExit("no mpiexec: pip install 'fastdl[mpi]'")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    rows = []
    print(f"{'workload':10} {'configuration':22} {'step ms':>9} {'samples/s':>10} {'vs 1x2':>7} "
          f"{'all-reduce ms':>14} {'share':>6} {'bare ms':>8}")
    for work in ("lenet5", "lstm-lm"):
        me = [sys.executable, os.path.abspath(__file__), "--steps", str(a.steps), "--worker", work]
        one = run(me + ["process"], dict(env, OMP_NUM_THREADS="2"), 900)[0]
        two = run([mpiexec, "-n", "2"] + me + ["ranks"], env, 900)[0]
        if not two["same_weights"]:
            raise SystemExit(f"{work}: the ranks' weights differ after training: the all-reduce is broken")
        g = GLOBAL_BATCH[work]
        for name, res in (("1 process x 2 threads", one), (f"2 ranks x {two['threads']} thread", two)):
            sps = g / res["step_s"]
            row = {"workload": work, "config": name, "step_ms": 1e3 * res["step_s"], "samples_per_s": sps,
                   "speedup": one["step_s"] / res["step_s"]}
            line = (f"{work:10} {name:22} {row['step_ms']:9.2f} {sps:10.0f} {row['speedup']:6.2f}x")
            if "comm_per_step_s" in res:
                row.update(allreduce_ms=1e3 * res["comm_per_step_s"], share=res["comm_per_step_s"] / res["step_s"],
                           bare_ms=1e3 * res["bare_allreduce_s"], grad_mb=res["grad_mb"], buckets=res["buckets"])
                line += f" {row['allreduce_ms']:14.2f} {row['share']:6.1%} {row['bare_ms']:8.2f}"
            print(line, flush=True)
            rows.append(row)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"rows": rows, "steps": a.steps, "cpu_count": os.cpu_count()}, f, indent=1)
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
