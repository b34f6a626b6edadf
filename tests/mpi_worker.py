"""What each rank runs in the data-parallel tests: ``mpiexec -n 2 python tests/mpi_worker.py SCENARIO OUTDIR``.

Every rank writes what the test checks into OUTDIR (``rank{r}.json``, ``rank{r}.npz``); the test
(tests/test_distributed.py) runs the same computation in one process and compares.
"""
from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

import fastdl
from fastdl import data, distributed as dist, nn, optim, train

B = 8  # per-rank batch


def build(kind: str, seed: int, bn: bool = False):
    fastdl.manual_seed(seed)
    if kind == "mlp":
        layers = [nn.Linear(12, 16), nn.Tanh()] + ([nn.BatchNorm1d(16)] if bn else []) + [nn.Linear(16, 3)]
        return nn.Sequential(*layers)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 3))


def batch(kind: str, n: int, seed: int = 7):
    g = np.random.default_rng(seed)
    x = g.standard_normal((n, 12) if kind == "mlp" else (n, 2, 8, 8)).astype(np.float32)
    return x, g.integers(0, 3, n)


def make_opt(name, params):
    return optim.SGD(params, lr=0.1, momentum=0.9) if name == "sgd" else optim.Adam(params, lr=0.01)


def steps(model, opt, x, y, n_steps: int = 3):
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(n_steps):
        opt.zero_grad()
        loss_fn(model(fastdl.tensor(x)), fastdl.tensor(y)).backward()
        opt.step()


def scenario_basics(r, w, out):
    a = np.full(3, float(r + 1))
    s = dist.all_reduce(a.copy(), "sum")
    m = dist.all_reduce(fastdl.tensor(a.copy()), "mean").numpy()
    mx = dist.all_reduce(a.copy(), "max")
    b = dist.broadcast(np.full(2, float(r)), src=w - 1)
    dist.barrier()
    return {"rank": r, "world": w, "sum": s.tolist(), "mean": m.tolist(), "max": mx.tolist(), "bcast": b.tolist(),
            "object": dist.broadcast_object({"from": r}, 0), "gathered": dist.all_gather_object([r, "x" * r]),
            "threads": fastdl.get_num_threads()}


def scenario_equivalence(r, w, out):
    """Each model/optimizer pair: init differs per rank (the broadcast must fix it), rank r trains on rows
    [r*B, (r+1)*B) of one global batch; rank 0 writes the parameters, every rank a digest."""
    arrays, res = {}, {}
    for kind in ("mlp", "cnn"):
        for opt_name in ("sgd", "adam"):
            for cap in (25.0, 0.0005):  # one bucket, and a bucket per parameter or two
                model = dist.DistributedDataParallel(build(kind, seed=100 + r), bucket_cap_mb=cap)
                x, y = batch(kind, B * w)
                steps(model, make_opt(opt_name, model.parameters()), x[r * B:(r + 1) * B], y[r * B:(r + 1) * B])
                key = f"{kind}-{opt_name}-{cap}"
                for n, v in model.module.state_dict().items():
                    arrays[f"{key}/{n}"] = v
                res[key] = {"buckets": len(model.bucket_sizes), "started": model.buckets_started_in_backward,
                            "digest": float(sum(float(np.abs(v).sum()) for v in model.module.state_dict().values()))}
    np.savez(os.path.join(out, f"rank{r}.npz"), **arrays)
    return res


def scenario_no_sync(r, w, out):
    """Two micro-batches, the first under no_sync: the same step as both at once."""
    model = dist.DistributedDataParallel(build("mlp", seed=3))
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = batch("mlp", 2 * B * w)
    mine = x[r * 2 * B:(r + 1) * 2 * B], y[r * 2 * B:(r + 1) * 2 * B]
    loss_fn = nn.CrossEntropyLoss()
    opt.zero_grad()
    with model.no_sync():
        (loss_fn(model(fastdl.tensor(mine[0][:B])), fastdl.tensor(mine[1][:B])) * 0.5).backward()
    (loss_fn(model(fastdl.tensor(mine[0][B:])), fastdl.tensor(mine[1][B:])) * 0.5).backward()
    opt.step()
    np.savez(os.path.join(out, f"rank{r}.npz"), **model.module.state_dict())
    return {}


class PartlyUsed(nn.Module):
    def __init__(self):
        super().__init__()
        self.used = nn.Linear(12, 3)
        self.unused = nn.Linear(12, 3)  # registered after: its bucket comes first in backward's order

    def forward(self, x):
        return self.used(x)


def scenario_unused(r, w, out):
    """A parameter that gets no gradient contributes zeros; the buckets behind it still complete."""
    fastdl.manual_seed(1)
    model = dist.DistributedDataParallel(PartlyUsed(), bucket_cap_mb=0.0001)
    x, y = batch("mlp", B * w)
    nn.CrossEntropyLoss()(model(fastdl.tensor(x[r * B:(r + 1) * B])), fastdl.tensor(y[r * B:(r + 1) * B])).backward()
    return {"started": model.buckets_started_in_backward, "buckets": len(model.bucket_sizes),
            "grads": {n: p.grad.numpy().tolist() for n, p in model.module.named_parameters()}}


def scenario_buffers(r, w, out):
    """BatchNorm: each rank normalises with its own batch's statistics; rank 0's running statistics are
    copied to every rank at each training forward (broadcast_buffers).  lr=0 keeps the weights, so the
    test can replay the statistics in one process."""
    model = dist.DistributedDataParallel(build("mlp", seed=100 + r, bn=True))
    x, y = batch("mlp", B * w)
    steps(model, optim.SGD(model.parameters(), lr=0.0), x[r * B:(r + 1) * B], y[r * B:(r + 1) * B], 2)
    return {k: v.tolist() for k, v in model.module.state_dict().items() if "running" in k}


def scenario_mismatch(r, w, out):
    try:
        dist.DistributedDataParallel(nn.Sequential(nn.Linear(12, 16 if r == 0 else 17), nn.Linear(16 if r == 0 else 17, 3)))
    except dist.DistributedError as exc:
        return {"error": str(exc)}
    return {"error": None}


def scenario_hang(r, w, out):
    """Rank 1 never joins the all-reduce: rank 0 must fail within the timeout, and the job must end."""
    dist.init(timeout=2.0)
    if r == 1:
        time.sleep(600)  # longer than the test's mpiexec timeout: only the abort ends this rank in time
        return {}
    t0 = time.monotonic()
    try:
        dist.all_reduce(np.ones(4))
    except dist.DistributedError as exc:
        msg = str(exc)
    else:
        msg = None
    with open(os.path.join(out, "rank0.json"), "w") as f:
        json.dump({"error": msg, "waited": time.monotonic() - t0}, f)
    raise SystemExit(3)


def scenario_crash(r, w, out):
    """Rank 1's program raises: the job must end at once, not when rank 0's all-reduce times out."""
    if r == 1:
        raise RuntimeError("rank 1 fell over")
    dist.all_reduce(np.ones(4))
    return {"finished": True}


def scenario_fit(r, w, out):
    """train.fit unchanged on a DDP model with a DistributedSampler and a ModelCheckpoint."""
    x, y = batch("mlp", 60, seed=11)
    ds = data.TensorDataset(x, y)
    sampler = dist.DistributedSampler(ds, seed=5)
    loader = data.DataLoader(ds, batch_size=B, sampler=sampler)
    model = dist.DistributedDataParallel(build("mlp", seed=100 + r))
    ck = train.ModelCheckpoint(os.path.join(out, "ck-{epoch}.npz"), monitor="loss")
    hist = train.fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.01), loader, epochs=3,
                     callbacks=[ck], progress=False)
    seen = sorted(int(i) for e in range(2) for i in (sampler.set_epoch(e), list(sampler))[1])
    return {"loss": hist["loss"], "batches": len(loader), "written": sorted(os.listdir(out)),
            "digest": float(sum(float(np.abs(v).sum()) for v in model.module.state_dict().values())),
            "indices_two_epochs": seen}


def main():
    scenario, out = sys.argv[1], sys.argv[2]
    dist.init(timeout=60)
    r, w = dist.rank(), dist.world_size()
    res = globals()[f"scenario_{scenario}"](r, w, out)
    with open(os.path.join(out, f"rank{r}.json"), "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
