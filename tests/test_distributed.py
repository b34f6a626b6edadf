"""Data-parallel training over MPI: each scenario of tests/mpi_worker.py runs under ``mpiexec -n 2`` on
loopback (bounded in time, its processes killed if it overruns), and is compared with the same
computation in one process here.  The sampler and the error paths need no MPI."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile

import numpy as np
import pytest

import fastdl
from fastdl import data, distributed as dist, nn, optim

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import mpi_worker as W  # noqa: E402


def _mpiexec():
    pytest.importorskip("mpi4py")
    exe = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if exe is None:  # mpi4py without a launcher: the extra installs both
        pytest.fail("mpi4py imports but no mpiexec is on PATH: pip install 'fastdl[mpi]'")
    return exe


def mpirun(args, n=2, timeout=180):
    """``mpiexec -n n ARGS`` in its own process group, killed whole if it overruns ``timeout`` seconds."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.Popen([_mpiexec(), "-n", str(n), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, env=env, cwd=tempfile.gettempdir(), start_new_session=True)
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, _ = p.communicate()
        pytest.fail(f"mpiexec {' '.join(args)} did not finish in {timeout} s:\n{out[-3000:]}")
    return p.returncode, out


@pytest.fixture
def run_scenario(tmp_path):
    def run(name, expect_rc=0):
        rc, out = mpirun([sys.executable, os.path.join(HERE, "mpi_worker.py"), name, str(tmp_path)])
        assert rc == expect_rc, out[-3000:]
        res = [json.loads((tmp_path / f"rank{r}.json").read_text()) if (tmp_path / f"rank{r}.json").exists()
               else None for r in range(2)]
        return res, tmp_path, out
    return run


def _close(a, b, rtol=1e-6):
    np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol * max(1.0, float(np.abs(b).max())))


# ---------------------------------------------------------------- under mpiexec
def test_collectives(run_scenario):
    (r0, r1), _, _ = run_scenario("basics")
    for r, res in enumerate((r0, r1)):
        assert res["rank"] == r and res["world"] == 2
        assert res["sum"] == [3.0] * 3 and res["mean"] == [1.5] * 3 and res["max"] == [2.0] * 3
        assert res["bcast"] == [1.0, 1.0]  # from the last rank
        assert res["object"] == {"from": 0} and res["gathered"] == [[0, ""], [1, "x"]]


def test_one_step_on_two_ranks_equals_one_process_with_twice_the_batch(run_scenario):
    """Per-rank batch B on 2 ranks = batch 2B in one process (SGD and Adam, an MLP and a CNN, one bucket
    and several), after 3 steps, to 1e-6 relative; both ranks end with the same weights."""
    (r0, r1), out, _ = run_scenario("equivalence")
    got = np.load(out / "rank0.npz")
    for key, res in r0.items():
        kind, opt_name, cap = key.split("-")
        assert res["digest"] == r1[key]["digest"]  # the ranks agree bit for bit
        if float(cap) < 1:
            assert res["buckets"] > 1
        assert res["started"] == res["buckets"]  # every all-reduce started while backward was still running
        model = W.build(kind, seed=100)  # rank 0's initial weights, broadcast to rank 1
        x, y = W.batch(kind, 2 * W.B)
        W.steps(model, W.make_opt(opt_name, model.parameters()), x, y)
        for n, v in model.state_dict().items():
            _close(got[f"{key}/{n}"], v)


def test_no_sync_accumulates_then_averages(run_scenario):
    _, out, _ = run_scenario("no_sync")
    model = W.build("mlp", seed=3)
    opt = optim.SGD(model.parameters(), lr=0.1)
    x, y = W.batch("mlp", 4 * W.B)
    opt.zero_grad()
    nn.CrossEntropyLoss()(model(fastdl.tensor(x)), fastdl.tensor(y)).backward()
    opt.step()
    for r in range(2):
        got = np.load(out / f"rank{r}.npz")
        for n, v in model.state_dict().items():
            _close(got[n], v)


def test_a_parameter_without_gradient_gets_zeros_and_blocks_nothing(run_scenario):
    (r0, r1), _, _ = run_scenario("unused")
    assert r0 == r1 and r0["buckets"] == 4 and r0["started"] == 0  # the unused bucket is first in line
    fastdl.manual_seed(1)
    model = W.PartlyUsed()
    x, y = W.batch("mlp", 2 * W.B)
    nn.CrossEntropyLoss()(model(fastdl.tensor(x)), fastdl.tensor(y)).backward()
    for n, p in model.named_parameters():
        want = p.grad.numpy() if p.grad is not None else np.zeros(p.shape, np.float32)
        _close(np.array(r0["grads"][n], np.float32), want)


def test_batch_norm_statistics_per_rank_and_rank0_running_stats_broadcast(run_scenario):
    """Each forward starts from rank 0's running statistics and updates them with the rank's own batch."""
    (r0, r1), _, _ = run_scenario("buffers")
    x, _ = W.batch("mlp", 2 * W.B)
    model = W.build("mlp", seed=100, bn=True)
    bn = model[2]
    with fastdl.no_grad():
        model(fastdl.tensor(x[:W.B]))  # step 1 on rank 0
        s0 = {k: v.copy() for k, v in model.state_dict().items()}
        model(fastdl.tensor(x[:W.B]))  # step 2 on rank 0
        exp0 = {k: v.copy() for k, v in model.state_dict().items()}
        model.load_state_dict(s0)  # rank 1 starts step 2 from rank 0's statistics, with its own batch
        model(fastdl.tensor(x[W.B:]))
        exp1 = model.state_dict()
    assert bn.training
    for k in ("2.running_mean", "2.running_var"):
        _close(np.array(r0[k], np.float32), exp0[k], 1e-5)
        _close(np.array(r1[k], np.float32), exp1[k], 1e-5)


def test_different_models_are_named_on_every_rank(run_scenario):
    (r0, r1), _, _ = run_scenario("mismatch")
    for res in (r0, r1):
        assert "on rank 1, '0.weight' has shape (17, 12) float32 here but (16, 12) float32 on rank 0" in res["error"]


def test_a_rank_that_never_joins_fails_the_others_within_the_timeout(run_scenario):
    # rank 0 raises, then the job is aborted: rank 1 sleeps for longer than mpirun's timeout, so the job
    # ending at all (with rank 0's status) is the abort.  MPI_Abort's own message is not checked: under
    # load mpiexec sometimes ends before the ranks' output reaches the pipe.
    (r0, _), _, _ = run_scenario("hang", expect_rc=1)
    assert "did not complete within 2 s on rank 0 of 2" in r0["error"]
    assert 1.9 < r0["waited"] < 30


def test_an_exception_on_one_rank_ends_the_job_at_once(run_scenario):
    import time
    t0 = time.monotonic()
    (r0, r1), _, out = run_scenario("crash", expect_rc=1)
    assert time.monotonic() - t0 < 40  # the all-reduce's timeout is 60 s: it was not waited for
    assert r0 is None and r1 is None and "RuntimeError: rank 1 fell over" in out


def test_fit_unchanged_with_sampler_and_rank0_checkpoints(run_scenario):
    (r0, r1), out, _ = run_scenario("fit")
    assert r0["digest"] == r1["digest"]  # the same weights on both ranks after fit
    assert r0["batches"] == r1["batches"] == 4  # 60 samples: 30 per rank, batches of 8
    assert r0["loss"] != r1["loss"]  # each rank reports its own shard's loss
    assert [f for f in r0["written"] if f.startswith("ck")] == ["ck-1.npz", "ck-2.npz", "ck-3.npz"]
    ck = fastdl.load(out / "ck-3.npz")
    plain = W.build("mlp", seed=0)
    plain.load_state_dict(ck["model"])  # no "module." prefix: loads into a model outside DDP
    assert sum(float(np.abs(v).sum()) for v in plain.state_dict().values()) == pytest.approx(r0["digest"], rel=1e-6)


@pytest.mark.slow
def test_cli_distributed_trains_lenet5_as_well_as_one_process(tmp_path):
    args = ["-m", "fastdl", "train", "--epochs", "3", "--no-progress", "--val-split", "0"]
    rc, out = mpirun([sys.executable, *args, "--distributed", "--save", str(tmp_path / "d.npz")], timeout=600)
    assert rc == 0, out[-3000:]
    assert out.count("test accuracy") == 1 and "2 ranks x 1 threads" in out  # rank 0 alone prints
    one = subprocess.run([sys.executable, *args, "--save", str(tmp_path / "s.npz")], capture_output=True, text=True,
                         timeout=600, cwd=tempfile.gettempdir())
    assert one.returncode == 0, one.stderr[-3000:]
    acc = [float(re.search(r"test accuracy ([0-9.]+)", s).group(1)) for s in (out, one.stdout)]
    assert acc[0] > 0.93 and abs(acc[0] - acc[1]) < 0.015, acc
    assert set(fastdl.load(tmp_path / "d.npz")["state_dict"]) == set(fastdl.load(tmp_path / "s.npz")["state_dict"])


# ---------------------------------------------------------------- without MPI
@pytest.mark.parametrize("n,replicas,drop_last", [(10, 3, False), (10, 3, True), (2, 3, False), (2, 3, True),
                                                  (12, 4, False), (7, 2, True), (5, 8, False)])
def test_sampler_shards_match_pytorch(n, replicas, drop_last):
    torch = pytest.importorskip("torch")
    from torch.utils.data.distributed import DistributedSampler as TorchSampler
    ds = data.TensorDataset(np.arange(n))
    shards = []
    for r in range(replicas):
        ours = dist.DistributedSampler(ds, num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
        theirs = TorchSampler(torch.arange(n), num_replicas=replicas, rank=r, shuffle=False, drop_last=drop_last)
        assert list(ours) == list(theirs) and len(ours) == len(theirs)
        shards.append(list(ours))
    assert len({len(s) for s in shards}) == 1  # every rank the same number of samples


def test_sampler_reshuffles_per_epoch_with_a_shared_seed():
    ds = data.TensorDataset(np.arange(50))
    samplers = [dist.DistributedSampler(ds, num_replicas=2, rank=r, seed=3) for r in range(2)]
    seen = []
    for epoch in range(3):
        for s in samplers:
            s.set_epoch(epoch)
        a, b = (list(s) for s in samplers)
        assert not set(a) & set(b) and sorted(a + b) == list(range(50))  # disjoint, and together everything
        seen.append(a)
    assert seen[0] != seen[1] != seen[2]
    again = dist.DistributedSampler(ds, num_replicas=2, rank=0, seed=3)
    again.set_epoch(1)
    assert list(again) == seen[1]


def test_loader_with_sampler():
    ds = data.TensorDataset(np.arange(10), np.arange(10) * 2)
    s = dist.DistributedSampler(ds, num_replicas=2, rank=1, shuffle=False)
    loader = data.DataLoader(ds, batch_size=2, sampler=s)
    assert len(loader) == 3
    assert [b[0].numpy().tolist() for b in loader] == [[1, 3], [5, 7], [9]]
    with pytest.raises(ValueError, match="sampler and shuffle"):
        data.DataLoader(ds, sampler=s, shuffle=True)
    with pytest.raises(TypeError, match="sampler must be"):
        data.DataLoader(ds, sampler=5)
    with pytest.raises(IndexError, match="outside the dataset"):
        list(data.DataLoader(ds, sampler=[0, 10]))


def test_bad_arguments_are_named():
    ds = data.TensorDataset(np.arange(4))
    with pytest.raises(ValueError, match="rank must be in"):
        dist.DistributedSampler(ds, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        dist.DistributedSampler(ds, num_replicas=0, rank=0)
    with pytest.raises(ValueError, match="timeout"):
        dist.init(timeout=0)


def test_without_mpi4py_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    monkeypatch.setattr(dist._S, "comm", None)
    assert not dist.is_available()
    with pytest.raises(ImportError, match=r"fastdl\[mpi\]"):
        dist.init()
    with pytest.raises(RuntimeError, match="call fastdl.distributed.init"):
        dist.DistributedDataParallel(nn.Linear(2, 2))
    assert dist.rank() == 0 and dist.world_size() == 1 and dist.is_main_process()
