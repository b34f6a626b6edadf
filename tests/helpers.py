"""One helper routes every op test: forward (shape, dtype, values) and
gradients of the native backend against the NumPy reference backend, then
gradcheck in float64."""
from __future__ import annotations

import numpy as np

import fastdl

TOL = {np.float32: dict(rtol=2e-4, atol=2e-5), np.float64: dict(rtol=1e-9, atol=1e-11)}


def _run(fn, arrays, requires_grad, backend, seed_grad):
    fastdl.set_backend(backend)
    try:
        ts = [fastdl.Tensor(a.copy(), requires_grad=rg) if isinstance(a, np.ndarray) else a
              for a, rg in zip(arrays, requires_grad)]
        out = fn(*ts)
        if seed_grad is not None:
            out.backward(seed_grad.astype(out.dtype) if out.ndim else None)
        grads = [t.grad.data if isinstance(t, fastdl.Tensor) and t.grad is not None else None for t in ts]
        return out, grads
    finally:
        fastdl.set_backend("native")


def check_op(fn, *arrays, requires_grad=None, gradcheck=True, rng=None, expected=None, grad=True):
    """Check ``fn(*tensors)`` for the float32 and float64 versions of ``arrays``.

    ``arrays``: NumPy arrays (float ones are cast per dtype; integer ones are
    passed unchanged) or other plain arguments.  ``expected``: optional
    independent NumPy function giving the forward result in float64.
    """
    rng = rng or np.random.default_rng(0)
    if requires_grad is None:
        requires_grad = [isinstance(a, np.ndarray) and a.dtype.kind == "f" for a in arrays]
    for dt in (np.float32, np.float64):
        cast = [a.astype(dt) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a for a in arrays]
        probe = fn(*[fastdl.Tensor(a) if isinstance(a, np.ndarray) else a for a in cast])
        seed = rng.standard_normal(probe.shape) if grad and any(requires_grad) else None
        out_n, g_n = _run(fn, cast, requires_grad, "native", seed)
        out_r, g_r = _run(fn, cast, requires_grad, "reference", seed)
        assert out_n.shape == out_r.shape, (out_n.shape, out_r.shape)
        assert out_n.dtype == out_r.dtype == np.dtype(dt), (out_n.dtype, out_r.dtype, dt)
        np.testing.assert_allclose(out_n.data, out_r.data, **TOL[dt], err_msg="forward native vs reference")
        if expected is not None:
            np.testing.assert_allclose(out_n.data, expected(*[a.astype(np.float64) if isinstance(a, np.ndarray)
                                                             and a.dtype.kind == "f" else a for a in arrays]),
                                       rtol=1e-4 if dt == np.float32 else 1e-9,
                                       atol=1e-5 if dt == np.float32 else 1e-11, err_msg="forward vs formula")
        for i, (a, b) in enumerate(zip(g_n, g_r)):
            assert (a is None) == (b is None), f"grad {i}: one backend gave none"
            if a is not None:
                assert a.shape == np.shape(arrays[i]) and a.dtype == np.dtype(dt)
                np.testing.assert_allclose(a, b, **TOL[dt], err_msg=f"grad of input {i} native vs reference")
    if gradcheck and grad and any(requires_grad):
        ts = [fastdl.Tensor(a.astype(np.float64), requires_grad=rg) if isinstance(a, np.ndarray) and a.dtype.kind == "f"
              else a for a, rg in zip(arrays, requires_grad)]
        assert fastdl.gradcheck(fn, ts, eps=1e-6, atol=1e-5, rtol=1e-3)


def run_cli(*args, env=None, check=False, timeout=300):
    """``python -m fastdl ARGS`` in a neutral folder, so the installed package (with its
    built extension) is imported rather than the source tree."""
    import subprocess
    import sys
    import tempfile

    return subprocess.run([sys.executable, "-m", "fastdl", *args], capture_output=True, text=True, env=env,
                          check=check, timeout=timeout, cwd=tempfile.gettempdir())


def tune_objective(cfg):
    """A smooth objective for the tuning tests (module level: picklable for worker processes)."""
    import math
    return (math.log10(cfg["lr"]) + 2.0) ** 2 + 100 * (cfg["beta"] - 0.99) ** 2 + 0.01 * cfg["units"]


def tune_objective_flaky(cfg):
    """Like :func:`tune_objective`, but a trial with more than 56 units fails (a crash to report)."""
    if cfg["units"] > 56:
        raise ValueError(f"out of memory with {cfg['units']} units")
    return tune_objective(cfg)


def each_build(check, threads=None):
    """check(msg) under every SIMD build of the tile kernels this CPU runs (widths 16 and 8, and 0: none,
    the BLAS paths), at each of ``threads`` thread counts if given; the build and the thread count are
    restored afterwards, also when a check fails."""
    from fastdl import _C
    before = fastdl.get_num_threads()
    widths = [w for w in (16, 8) if _C.conv_direct_width(w) == w] + [0]
    try:
        for w in widths:
            _C.conv_direct_width(w)
            for n in threads or (None,):
                if n is not None:
                    fastdl.set_num_threads(n)
                check(f"width {w}" + ("" if n is None else f", {n} threads"))
    finally:
        _C.conv_direct_width(-1)
        fastdl.set_num_threads(before)
