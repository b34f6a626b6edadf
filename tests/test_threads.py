"""The one thread pool: results at 1, 2 and 3 threads (3 is more than this machine's cores) agree with
the reference, a repeated call gives the same bits, and fastdl keeps working beside another process,
beside PyTorch in its own process, and in a child forked after the pool ran."""
from __future__ import annotations

import multiprocessing as mp
import subprocess
import sys

import numpy as np
import pytest

import fastdl
from fastdl import _C
from fastdl import reference as R


@pytest.fixture
def threads():
    before = fastdl.get_num_threads()
    yield
    fastdl.set_num_threads(before)


def cases(rng):
    f = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    x, w, b = f(8, 16, 12, 12), f(32, 16, 3, 3), f(32)
    conv = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    y = R.conv2d_forward(x, w, b, *conv)
    lw, lx = f(300, 200), f(257, 200)
    bx = f(6, 5, 7, 7)
    rx, rh, rwi, rwh, rbi, rbh = f(9, 33, 20), f(33, 40), f(160, 20) * 0.3, f(160, 40) * 0.3, f(160), f(160)
    out = R.rnn_forward("lstm", rx, rh, rh, rwi, rwh, rbi, rbh, None, False)
    # H = 48, a multiple of every SIMD width: the packed forward, its rows split over the threads
    ph, pwi, pwh, pb = f(33, 48), f(192, 20) * 0.3, f(192, 48) * 0.3, f(192)
    gwi, gwh, gb = f(144, 20) * 0.3, f(144, 48) * 0.3, f(144)
    ln = rng.integers(1, 10, 33)
    vx, vh, vln = f(9, 32, 20), f(32, 48), rng.integers(1, 10, 32)  # a batch of whole vectors
    # four vectors of 16 (AVX-512): one group, split into one a thread at 2 and 3 threads (2 + 2, 1 + 1 + 2 vectors)
    wx, wh, wln = f(9, 64, 20), f(64, 48), rng.integers(1, 10, 64)
    # the packed backward with dx in its loop (the input width a multiple of every SIMD width)
    qx, qwi = f(9, 33, 64), f(192, 64) * 0.2
    qout = R.rnn_forward("lstm", qx, ph, ph, qwi, pwh, pb, pb, ln, False)
    return [
        ("conv2d_forward", (x, w, b) + conv),
        ("conv2d_backward", (f(*y.shape), x, w) + conv),
        ("matmul", (f(300, 256), f(256, 280))),            # split over the pool by rows
        ("matmul", (f(40, 256), f(256, 600))),             # by columns
        ("matmul", (f(24, 64, 48), f(24, 48, 64))),        # a batch shared out
        ("matmul_backward", (f(24, 64, 64), f(24, 64, 48), f(24, 48, 64))),
        ("linear_forward", (lx, lw, f(300))),
        ("linear_backward", (f(257, 300), lx, lw)),
        ("batch_norm_forward", (bx, f(5), f(5), None, None, True, 0.1, 1e-5)),
        ("softmax_forward", (f(300, 301), 1)),
        ("mse_forward", (f(200_000), f(200_000))),
        ("rnn_forward", ("lstm", rx, rh, rh, rwi, rwh, rbi, rbh, None, False)),
        ("rnn_forward", ("lstm", rx, ph, ph, pwi, pwh, pb, pb, None, True)),
        ("rnn_forward", ("lstm", rx, ph, ph, pwi, pwh, pb, pb, ln, False)),
        ("rnn_forward", ("gru", rx, ph, None, gwi, gwh, gb, gb, ln, True)),
        ("rnn_forward", ("lstm", vx, vh, vh, pwi, pwh, pb, pb, None, True)),
        ("rnn_forward", ("lstm", vx, vh, vh, pwi, pwh, pb, pb, vln, True)),
        ("rnn_forward", ("gru", vx, vh, None, gwi, gwh, gb, gb, vln, False)),
        ("rnn_forward", ("lstm", wx, wh, wh, pwi, pwh, pb, pb, wln, False)),
        ("rnn_backward", ("lstm", f(9, 33, 40), f(33, 40), f(33, 40), rx, rh, rh, rwi, rwh, rbi, rbh, out[0], out[3],
                          out[4], None, None, False)),
        ("rnn_backward", ("lstm", f(9, 33, 48), f(33, 48), f(33, 48), qx, ph, ph, qwi, pwh, pb, pb, qout[0], qout[3],
                          qout[4], None, ln, False)),
    ]


def close(a, b, name):
    if a is None or b is None:
        assert a is None and b is None, name
        return
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * max(1.0, np.abs(b).max()), err_msg=name)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_kernels_at_every_thread_count_match_the_reference(rng, threads, n):
    fastdl.set_num_threads(n)
    assert fastdl.get_num_threads() == n
    for name, args in cases(rng):
        got, want = getattr(_C, name)(*args), getattr(R, name)(*args)
        if isinstance(want, tuple):
            for i, (g, w) in enumerate(zip(got, want)):
                close(g, w, f"{name}[{i}] at {n} threads")
        else:
            close(got, want, f"{name} at {n} threads")
        again = getattr(_C, name)(*args)  # the same parts, whichever thread runs them: the same bits
        for g, h in zip(got if isinstance(got, tuple) else (got,), again if isinstance(again, tuple) else (again,)):
            if g is not None:
                assert np.array_equal(g, h, equal_nan=True), f"{name} differs between two calls at {n} threads"


TRAIN = r"""
import sys
if sys.argv[1] == "torch":
    import torch  # PyTorch and its threads first, then fastdl
import numpy as np, fastdl
from fastdl import nn, optim
fastdl.manual_seed(0)
fastdl.set_num_threads(2)
rng = np.random.default_rng(0)
x = rng.standard_normal((256, 20)).astype(np.float32)
y = (x[:, :3].sum(1) > 0).astype(np.int64)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
opt = optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.CrossEntropyLoss()
losses = []
for _ in range(60):
    opt.zero_grad()
    loss = loss_fn(model(fastdl.tensor(x)), y)
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(repr((losses[0], losses[-1])))
"""


def test_two_interpreters_train_at_once(tmp_path):
    """Two processes (one with PyTorch imported first, when it is installed) train the same small model
    at the same time on 2 threads each; both finish, with the same losses as each other."""
    try:
        import torch  # noqa: F401
        first = "torch"
    except ImportError:
        first = "plain"
    # run from an empty folder: the fastdl they import is the installed one, not a source tree's
    procs = [subprocess.Popen([sys.executable, "-c", TRAIN, kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path) for kind in (first, "plain")]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=600) + (p.returncode,))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.communicate()
    results = []
    for out, err, rc in outs:
        assert rc == 0, err
        results.append(eval(out.strip().splitlines()[-1]))
    (a0, a1), (b0, b1) = results
    assert a1 < 0.5 * a0, results  # it learned
    assert (a0, a1) == (b0, b1), results  # the same arithmetic in both processes


def _child_step(q):
    x = np.ones((64, 256), np.float32)
    q.put(float(_C.matmul(x, np.ones((256, 600), np.float32)).sum()))


@pytest.mark.filterwarnings("ignore:.*fork.*:DeprecationWarning")
def test_a_forked_child_uses_the_kernels(threads):
    """A child forked after the pool ran (multiprocessing's fork, tune's workers on some systems) gets a
    pool of its own instead of waiting on its parent's workers."""
    fastdl.set_num_threads(2)
    _C.matmul(np.ones((300, 300), np.float32), np.ones((300, 300), np.float32))  # the pool has run
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_child_step, args=(q,))
    p.start()
    p.join(timeout=120)
    assert p.exitcode == 0
    assert q.get(timeout=10) == 64 * 600 * 256.0
