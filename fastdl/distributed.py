"""Data-parallel training over MPI (through mpi4py, the optional extra ``fastdl[mpi]``).

Run the same script on every rank with ``mpiexec -n N python train.py``::

    from fastdl import distributed as dist
    dist.init()                                          # MPI, and threads = cores / ranks on this host
    model = dist.DistributedDataParallel(build_model())  # rank 0's weights everywhere
    sampler = dist.DistributedSampler(train_set, seed=0)
    loader = data.DataLoader(train_set, batch_size=64, sampler=sampler)
    train.fit(model, loss_fn, opt, loader, epochs=10)    # unchanged; checkpoints written by rank 0

What each piece does, as in PyTorch:

- :class:`DistributedDataParallel` checks that every rank built the same model (names, shapes and
  dtypes of the parameters and buffers; a difference is named), copies rank 0's parameters and
  buffers to every rank, and after each ``backward`` leaves on every rank the mean of the ranks'
  gradients.  The gradients are averaged in buckets (about ``bucket_cap_mb`` each, the first one
  small), one non-blocking all-reduce per bucket, started as soon as backward has finished the
  bucket's last gradient, so communication overlaps the rest of backward.  ``no_sync()`` skips the
  averaging (gradient accumulation).  Batch-norm statistics are computed per rank on its own batch
  (PyTorch's default, not ``SyncBatchNorm``); with ``broadcast_buffers`` (the default) rank 0's
  running statistics are copied to every rank at each training forward, as PyTorch does.
- :class:`DistributedSampler` gives each rank a disjoint shard of the dataset, reshuffled every
  epoch from a seed that all ranks share (``fit`` calls ``set_epoch``), padded by repeating
  samples (or, with ``drop_last``, truncated) so that every rank sees the same number of batches.
- Checkpoints: ``ModelCheckpoint``/``save_checkpoint`` write on rank 0 only and store the wrapped
  model's state dict, without the ``module.`` prefix, so a checkpoint loads on any number of ranks
  and into a plain model.

Faults: every collective operation waits at most ``timeout`` seconds (``init(timeout=...)``,
default 300, or the environment variable ``FASTDL_DIST_TIMEOUT``) and then raises
:class:`DistributedError` naming the operation; at exit the job is then aborted so that no rank is
left waiting.  A rank whose process dies is noticed by the launcher (``mpiexec``), which ends the
others.
"""
from __future__ import annotations

import atexit
import contextlib
import json
import os
import sys
import time

import numpy as np

from . import autograd
from .backend import get_num_threads, set_num_threads
from .nn.module import Module
from .tensor import Tensor

EXTRA = "pip install 'fastdl[mpi]'"
DEFAULT_TIMEOUT = 300.0


class DistributedError(RuntimeError):
    """A collective operation failed or timed out, or the ranks disagree (different models)."""


class _State:
    comm = None
    timeout = DEFAULT_TIMEOUT
    failed = False


_S = _State()


def _mpi():
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError(f"fastdl.distributed needs mpi4py and an MPI library: {EXTRA} ({exc})") from None
    return MPI


def is_available() -> bool:
    """Whether mpi4py (and so an MPI library) can be imported."""
    try:
        _mpi()
    except ImportError:
        return False
    return True


def init(timeout: float | None = None, threads: int | None = None) -> None:
    """Start MPI (once; later calls only change ``timeout``) and size this rank's thread pool.

    ``timeout``: seconds any collective operation may wait for the other ranks before raising
    :class:`DistributedError` (default 300, or ``FASTDL_DIST_TIMEOUT``).  ``threads``: the native
    kernels' threads on this rank; by default the physical cores divided by the ranks on this host
    (unless ``OMP_NUM_THREADS`` is set), so that N ranks on one machine do not oversubscribe it.
    Outside ``mpiexec`` this is a world of one rank, and everything here still works."""
    if timeout is None:
        timeout = float(os.environ.get("FASTDL_DIST_TIMEOUT", DEFAULT_TIMEOUT))
    if not timeout > 0:
        raise ValueError(f"init: timeout must be > 0 seconds, got {timeout}")
    _S.timeout = float(timeout)
    if _S.comm is not None:
        return
    MPI = _mpi()
    if not MPI.Is_initialized():
        MPI.Init_thread()
    _S.comm = MPI.COMM_WORLD.Dup()
    if threads is not None:
        set_num_threads(threads)
    elif "OMP_NUM_THREADS" not in os.environ:
        local = MPI.COMM_WORLD.Split_type(MPI.COMM_TYPE_SHARED)
        set_num_threads(max(1, get_num_threads() // local.Get_size()))
        local.Free()
    atexit.register(_abort_if_failed)
    if _S.comm.Get_size() > 1:
        sys.excepthook = _abort_on_exception(sys.excepthook)


def _abort_on_exception(previous):
    """An exception that ends one rank's program ends the job (after its traceback is printed): the other
    ranks would otherwise wait in their next collective until the timeout, or forever in MPI_Finalize."""
    def hook(kind, value, tb):
        previous(kind, value, tb)
        _abort()
    return hook


def _abort() -> None:
    """End the job after a grace moment: the launcher forwards a rank's output on its own time, and an
    immediate abort cut the traceback short on a loaded machine (seen in the test suite)."""
    sys.stderr.flush()
    sys.stdout.flush()
    time.sleep(0.5)
    _mpi().COMM_WORLD.Abort(1)


def _abort_if_failed() -> None:
    # after a timeout the other ranks may be blocked for good: end the whole job rather than hang
    # in MPI_Finalize (the traceback has been printed by now)
    if _S.failed and _S.comm is not None:
        _abort()


def is_initialized() -> bool:
    return _S.comm is not None


def rank() -> int:
    """This process's rank (0 when :func:`init` was not called: a world of one)."""
    return _S.comm.Get_rank() if _S.comm is not None else 0


_this_rank = rank  # (DistributedSampler's argument of the same name hides it there)


def world_size() -> int:
    """The number of ranks (1 when :func:`init` was not called)."""
    return _S.comm.Get_size() if _S.comm is not None else 1


def is_main_process() -> bool:
    """Rank 0: the one that prints and writes checkpoints."""
    return rank() == 0


def _comm(what: str):
    if _S.comm is None:
        raise RuntimeError(f"{what}: call fastdl.distributed.init() first")
    return _S.comm


def _wait(requests, what: str) -> None:
    """Wait for non-blocking MPI requests, at most the timeout; spin briefly, then sleep in growing steps
    (an idle rank should not steal a core from the busy ones)."""
    MPI = _mpi()
    deadline = time.monotonic() + _S.timeout
    spins = 0
    while not MPI.Request.Testall(requests):
        spins += 1
        if spins > 200:
            if time.monotonic() > deadline:
                _S.failed = True
                raise DistributedError(
                    f"{what} did not complete within {_S.timeout:g} s on rank {rank()} of {world_size()}: another "
                    "rank died, hangs, or took a different path through the program (the timeout is "
                    "fastdl.distributed.init(timeout=...) or FASTDL_DIST_TIMEOUT)")
            time.sleep(min(1e-3, 1e-6 * (spins - 200)))


def _array(x, what: str) -> np.ndarray:
    a = x.data if isinstance(x, Tensor) else x
    if not isinstance(a, np.ndarray) or not a.flags.c_contiguous or not a.flags.writeable:
        raise TypeError(f"{what}: expected a Tensor or a writeable C-contiguous NumPy array, got {type(x).__name__}")
    return a


_OPS = ("sum", "mean", "max", "min")


def all_reduce(x, op: str = "sum"):
    """Reduce ``x`` (a Tensor or NumPy array) over all ranks in place: ``op`` is "sum", "mean", "max" or
    "min".  Returns ``x``."""
    if op not in _OPS:
        raise ValueError(f"all_reduce: op must be one of {_OPS}, got {op!r}")
    a, comm, MPI = _array(x, "all_reduce"), _comm("all_reduce"), _mpi()
    mop = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    _wait([comm.Iallreduce(MPI.IN_PLACE, a, op=mop)], f"all_reduce of {a.size} values")
    if op == "mean":
        a /= comm.Get_size()
    return x


def broadcast(x, src: int = 0):
    """Overwrite ``x`` (a Tensor or NumPy array) on every rank with rank ``src``'s.  Returns ``x``."""
    a, comm = _array(x, "broadcast"), _comm("broadcast")
    _check_src(src, comm)
    _wait([comm.Ibcast(a, root=src)], f"broadcast of {a.size} values from rank {src}")
    return x


def _check_src(src, comm) -> None:
    if not 0 <= int(src) < comm.Get_size():
        raise ValueError(f"src must be a rank in [0, {comm.Get_size()}), got {src}")


def barrier() -> None:
    """Wait until every rank got here (at most the timeout)."""
    comm = _comm("barrier")
    _wait([comm.Ibarrier()], "barrier")


def broadcast_object(obj, src: int = 0):
    """Rank ``src``'s ``obj`` on every rank; ``obj`` must be JSON-serialisable (no pickle crosses ranks)."""
    comm = _comm("broadcast_object")
    _check_src(src, comm)
    payload = np.frombuffer(json.dumps(obj).encode(), np.uint8) if comm.Get_rank() == src else None
    n = np.array([payload.size if payload is not None else 0], np.int64)
    _wait([comm.Ibcast(n, root=src)], "broadcast_object (size)")
    buf = payload.copy() if payload is not None else np.empty(int(n[0]), np.uint8)
    _wait([comm.Ibcast(buf, root=src)], "broadcast_object")
    return json.loads(buf.tobytes().decode())


def all_gather_object(obj) -> list:
    """Every rank's ``obj`` (JSON-serialisable), in rank order, on every rank."""
    comm = _comm("all_gather_object")
    mine = np.frombuffer(json.dumps(obj).encode(), np.uint8).copy()
    sizes = np.empty(comm.Get_size(), np.int64)
    _wait([comm.Iallgather(np.array([mine.size], np.int64), sizes)], "all_gather_object (sizes)")
    buf = np.empty(int(sizes.sum()), np.uint8)
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    _wait([comm.Iallgatherv(mine, [buf, sizes, offsets, _mpi().BYTE])], "all_gather_object")
    return [json.loads(buf[o:o + s].tobytes().decode()) for o, s in zip(offsets, sizes)]


# ---------------------------------------------------------------- data-parallel model
def _named_state(module: Module) -> list:
    return list(module.named_parameters()) + [(n, b) for n, b in module.named_buffers() if b is not None]


def _bcast_into(t: Tensor, comm, what: str) -> None:
    """Rank 0's values of ``t`` on every rank (a 0-d or read-only array is replaced by a new one)."""
    a = t.data
    if isinstance(a, np.ndarray) and a.ndim and a.flags.c_contiguous and a.flags.writeable:
        _wait([comm.Ibcast(a, root=0)], what)
    else:
        buf = np.array(a, copy=True).reshape(-1)
        _wait([comm.Ibcast(buf, root=0)], what)
        t.data = buf.reshape(np.shape(a))


def _check_same_model(module: Module) -> None:
    """Every rank holds the model rank 0 holds (names, shapes, dtypes): otherwise a clear error on all."""
    sig = [[n, list(t.shape), str(t.dtype)] for n, t in _named_state(module)]
    ref = broadcast_object(sig, 0)
    diff = ""
    if sig != ref:
        mine, theirs = {n: (s, d) for n, s, d in sig}, {n: (s, d) for n, s, d in ref}
        for n in list(theirs) + list(mine):
            if n not in mine:
                diff = f"{n!r} is missing here (rank 0: shape {tuple(theirs[n][0])})"
            elif n not in theirs:
                diff = f"{n!r} is not in rank 0's model"
            elif mine[n] != theirs[n]:
                diff = (f"{n!r} has shape {tuple(mine[n][0])} {mine[n][1]} here but {tuple(theirs[n][0])} "
                        f"{theirs[n][1]} on rank 0")
            else:
                continue
            break
        diff = diff or "the order of the parameters differs"
    diffs = all_gather_object(diff)
    bad = [(r, d) for r, d in enumerate(diffs) if d]
    if bad:
        raise DistributedError("DistributedDataParallel: the ranks built different models: " +
                               "; ".join(f"on rank {r}, {d}" for r, d in bad))


class DistributedDataParallel(Module):
    """Wrap ``module`` for data-parallel training: same weights on every rank, gradients averaged over the
    ranks after each backward (see the module's docstring).  ``model.module`` is the wrapped model; the
    wrapper's ``state_dict`` keys carry PyTorch's ``module.`` prefix.

    ``bucket_cap_mb``: the size of the gradient buckets (one all-reduce each); larger buckets mean fewer
    messages, smaller ones an earlier start of communication during backward.  The first bucket (the
    last layers' gradients, finished first) is capped at 1 MB, as PyTorch's."""

    def __init__(self, module: Module, bucket_cap_mb: float = 25.0, broadcast_buffers: bool = True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: module must be a fastdl Module, got {type(module).__name__}")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be > 0, got {bucket_cap_mb}")
        self.comm = _comm("DistributedDataParallel")
        self.module = module
        self.broadcast_buffers = bool(broadcast_buffers)
        _check_same_model(module)
        for name, t in _named_state(module):
            _bcast_into(t, self.comm, f"DistributedDataParallel: the broadcast of {name!r}")
        self._sync = True
        self._build_buckets(float(bucket_cap_mb))
        self._round = None
        self.buckets_started_in_backward = 0
        self._handles = [p.register_post_accumulate_grad_hook(self._ready) for p in self._params]

    # ---------------------------------------------------------------- buckets
    def _build_buckets(self, cap_mb: float) -> None:
        seen, params = set(), []
        for p in self.module.parameters():
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                params.append(p)
        self._params = params
        # reverse registration order: backward finishes the last layers first
        buckets, current, size, cap = [], [], 0, min(1.0, cap_mb) * 2 ** 20
        for p in reversed(params):
            nbytes = p.data.nbytes
            if current and (size + nbytes > cap or p.dtype != current[0].dtype):
                buckets.append(current)
                current, size, cap = [], 0, cap_mb * 2 ** 20
            current.append(p)
            size += nbytes
        if current:
            buckets.append(current)
        self._buckets = buckets
        self._flat = [np.empty(sum(p.data.size for p in b), b[0].dtype) for b in buckets]
        self._where = {id(p): k for k, b in enumerate(buckets) for p in b}

    @property
    def bucket_sizes(self) -> list:
        """Bytes per gradient bucket, in the order they are all-reduced."""
        return [f.nbytes for f in self._flat]

    @contextlib.contextmanager
    def no_sync(self):
        """Inside, backward accumulates gradients locally without averaging (gradient accumulation); the
        first backward after it averages everything accumulated."""
        prev, self._sync = self._sync, False
        try:
            yield
        finally:
            self._sync = prev

    def _ready(self, p) -> None:
        if not self._sync:
            return
        if self._round is None or self._round["pass"] != autograd.current_backward():
            # the first finished gradient of this backward pass (a round left by a pass that raised is dropped)
            self._round = {"count": [0] * len(self._buckets), "next": 0, "requests": [],
                           "pass": autograd.current_backward()}
            autograd.queue_callback(self._finish)
        r = self._round
        k = self._where[id(p)]
        r["count"][k] += 1
        while r["next"] < len(self._buckets) and r["count"][r["next"]] == len(self._buckets[r["next"]]):
            self._launch(r["next"], r)
            r["next"] += 1
        if r["requests"]:  # let MPI progress the all-reduces already started
            _mpi().Request.Testall(r["requests"])

    def _launch(self, k: int, r: dict) -> None:
        flat, off = self._flat[k], 0
        for p in self._buckets[k]:
            n = p.data.size
            if p.grad is None:  # unused on this rank: it contributes zeros
                flat[off:off + n] = 0
            else:
                flat[off:off + n] = p.grad.data.reshape(-1)
            off += n
        r["requests"].append(self.comm.Iallreduce(_mpi().IN_PLACE, flat, op=_mpi().SUM))

    def _finish(self) -> None:
        r, self._round = self._round, None
        self.buckets_started_in_backward = r["next"]  # the rest wait for parameters that got no gradient
        for k in range(r["next"], len(self._buckets)):  # buckets holding a parameter that got no gradient
            self._launch(k, r)
        _wait(r["requests"], f"DistributedDataParallel: the gradient all-reduce ({len(self._buckets)} buckets)")
        inv = 1.0 / self.comm.Get_size()
        for flat, bucket in zip(self._flat, self._buckets):
            flat *= inv
            off = 0
            for p in bucket:
                n = p.data.size
                g = flat[off:off + n].reshape(p.shape)
                if p.grad is None:
                    p.grad = Tensor(g.copy())
                else:
                    p.grad.data[...] = g
                off += n

    # ---------------------------------------------------------------- forward
    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self.training and autograd.is_grad_enabled():
            if self.comm.Get_size() > 1:
                for name, b in self.module.named_buffers():
                    if b is not None:
                        _bcast_into(b, self.comm, f"DistributedDataParallel: the broadcast of buffer {name!r}")
        return self.module(*args, **kwargs)


def unwrap(model):
    """The model inside a :class:`DistributedDataParallel` (or ``model`` itself)."""
    return model.module if isinstance(model, DistributedDataParallel) else model


# ---------------------------------------------------------------- data
class DistributedSampler:
    """The indices of this rank's shard of ``dataset``, for ``DataLoader(..., sampler=...)`` (PyTorch's).

    Every epoch the dataset is permuted with ``seed + epoch`` (the same on every rank; call
    :meth:`set_epoch`, which :func:`fastdl.train.fit` does), padded by repeating indices from its start
    to a multiple of ``num_replicas`` (or, with ``drop_last``, cut down to one), and rank ``r`` takes
    every ``num_replicas``-th index from position ``r``: disjoint shards of equal length."""

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        num_replicas = world_size() if num_replicas is None else int(num_replicas)
        rank_ = _this_rank() if rank is None else int(rank)
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank_ < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas}), got {rank_}")
        self.dataset, self.num_replicas, self.rank = dataset, num_replicas, rank_
        self.shuffle, self.seed, self.drop_last, self.epoch = bool(shuffle), int(seed), bool(drop_last), 0
        n = len(dataset)
        if self.drop_last and n % num_replicas:
            self.num_samples = max(0, -(-(n - num_replicas) // num_replicas))
        else:
            self.num_samples = -(-n // num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose permutation :meth:`__iter__` gives (the same on every rank)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self):
        n = len(self.dataset)
        idx = np.random.default_rng(self.seed + self.epoch).permutation(n) if self.shuffle else np.arange(n)
        if self.drop_last:
            idx = idx[:self.total_size]
        elif self.total_size > n and n:
            idx = np.concatenate([idx, np.resize(idx, self.total_size - n)])
        return iter(idx[self.rank:self.total_size:self.num_replicas].tolist())


__all__ = ["init", "is_available", "is_initialized", "rank", "world_size", "is_main_process", "all_reduce",
           "broadcast", "barrier", "broadcast_object", "all_gather_object", "DistributedDataParallel",
           "DistributedSampler", "DistributedError", "unwrap"]
