"""A seeded fuzzer of fastdl's native module, its NumPy twin, the functional ops, the layers and the
optimizers.  Each call starts from a valid one and breaks one argument: another dtype, a string,
None, a zero-sized or reshaped array, a negative, huge or NaN number.  A call passes when both
backends agree (the same result, or the same clean exception: TypeError, ValueError or IndexError
with a message of fastdl's own) and fails on anything else: another exception type, an internal
message (a pybind11 signature dump, "object has no attribute", "division by zero", ...), or a
disagreement between the backends.  Crashes and hangs are caught by running batches in child
processes (``run`` below, and tests/test_fuzz.py).

    python tests/fuzz.py --calls 30000 [--seed 0] [--batch 500]     # the long run
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

CLEAN = (TypeError, ValueError, IndexError)
INTERNAL = ("incompatible function arguments", "has no attribute", "division by zero", "index out of range",
            "not supported between instances", "unsupported operand", "NoneType", "std::", "object is not",
            "unhashable", "cannot reshape", "operands could not be broadcast", "Unable to allocate",
            "maximum recursion", "invalid literal")


def _bad_values(rng, a):
    """Replacements for one argument ``a`` of a valid call."""
    out = [None, "abc", True, -1, 0, 2**31, 2**62, 2**63 - 1, -2**63, float("nan"), float("inf"), 1e300, [1, "x"],
           object(), np.array(["a", "b"]), np.array([None, 1], dtype=object)]
    if isinstance(a, np.ndarray):
        dt = np.float64 if a.dtype == np.float32 else np.float32
        makers = [lambda: a.astype(dt), lambda: a.astype(np.int64), lambda: a.astype(bool), lambda: a.reshape(-1),
                  lambda: a[None], lambda: np.zeros((0,) + a.shape[1:], a.dtype),
                  lambda: a.T.copy() if a.ndim > 1 else a[::-1], lambda: np.full(a.shape, np.nan, a.dtype),
                  lambda: np.zeros(a.shape[:-1] + (0,), a.dtype), lambda: a[..., ::2]]
        if a.ndim >= 1 and a.size:
            shape = list(a.shape)
            shape[int(rng.integers(len(shape)))] = int(rng.integers(0, 3))
            makers.append(lambda: np.resize(a, shape).astype(a.dtype))
        for make in makers:
            try:
                out.append(make())
            except (ValueError, TypeError, IndexError):
                pass
    elif isinstance(a, (tuple, list)) and a:
        for bad in (-1, 0, 2**62, 10**6, "x", None, 1.5):
            t = list(a)
            t[int(rng.integers(len(t)))] = bad
            out.append(type(a)(t))
        out += [type(a)(a[:-1]), type(a)(list(a) + [1])]
    elif isinstance(a, bool):
        out += [2, "yes"]
    elif isinstance(a, (int, np.integer)):
        out += [a + 1, -a - 1, 10**6]
    elif isinstance(a, float):
        out += [-a, 0.0, 1.0, 1.5, -1e-3]
    elif isinstance(a, str):
        out += ["", a.upper(), a + "x"]
    return out


def _nonfinite(args) -> bool:
    """A NaN or inf among the inputs: how far it spreads differs between a blocked kernel (which skips
    structural zeros) and a dense NumPy product (where 0 * NaN is NaN), so only shapes are compared."""
    for a in args:
        if isinstance(a, np.ndarray) and a.dtype.kind == "f" and not np.isfinite(a).all():
            return True
        if isinstance(a, float) and not np.isfinite(a):
            return True
    return False


def _mutate(rng, args, times=1) -> list:
    """A copy of a valid call's arguments with ``times`` of them replaced by bad values."""
    args = list(args)
    for _ in range(times):
        i = int(rng.integers(len(args)))
        bad = _bad_values(rng, args[i])
        args[i] = bad[int(rng.integers(len(bad)))]
    return args


def _same(x, y, loose=False) -> bool:
    if isinstance(x, tuple) or isinstance(y, tuple):
        return isinstance(x, tuple) and isinstance(y, tuple) and len(x) == len(y) and \
            all(_same(a, b, loose) for a, b in zip(x, y))
    if x is None or y is None:
        return x is None and y is None
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.dtype != y.dtype:
        return False
    if loose:
        return True
    if x.dtype.kind == "f" and not np.isfinite(x).all() and not np.isfinite(y).all():
        return True  # both overflowed (finite inputs, huge hyperparameters): garbage on both sides
    if x.dtype.kind not in "fc":
        return bool(np.array_equal(x, y))
    tol = 1e-3 if x.dtype == np.float32 else 1e-8
    fx, fy = np.isfinite(x), np.isfinite(y)
    if not np.array_equal(fx, fy):  # non-finite in the same places (inf and NaN alike: blocked and
        return False                # whole-row algorithms may turn an overflow into either)
    scale = float(np.max(np.abs(np.where(fy, y, 0)), initial=0))
    with np.errstate(invalid="ignore", over="ignore"):
        return bool(np.all(np.isclose(np.where(fx, x, 0), np.where(fy, y, 0), rtol=tol, atol=tol * (1 + scale))))


def _outcome(fn, args):
    args = [a.copy() if isinstance(a, np.ndarray) else a for a in args]
    try:
        res = fn(*args)
    except Exception as exc:  # classified by the caller
        return "raise", exc, args
    if res is None:  # an in-place kernel: what it wrote is its result
        res = tuple(a for a in args if isinstance(a, np.ndarray))
    return "return", res, args


def _unclean(exc) -> str | None:
    msg = f"{type(exc).__name__}: {exc}"
    if not isinstance(exc, CLEAN):
        return msg
    if any(p in str(exc) for p in INTERNAL):
        return msg
    return None


def kernel_calls(rng, n):
    """n mutated calls of the kernel table: native against reference."""
    from fastdl import _C, reference, selftest
    cases = selftest._cases(rng, np.float32) + selftest._cases(rng, np.float64)
    findings = []
    for _ in range(n):
        name, args = cases[int(rng.integers(len(cases)))]
        args = _mutate(rng, args, 1 + int(rng.random() < 0.2))  # now and then two arguments at once
        where = f"{name}({', '.join(_short(a) for a in args)})"
        _trace(where)
        kn, rn = _outcome(getattr(_C, name), args), _outcome(getattr(reference, name), args)
        for side, (kind, val, _) in (("native", kn), ("reference", rn)):
            if kind == "raise" and _unclean(val):
                findings.append(f"unclean [{side}] {where}: {_unclean(val)}"[:400])
        if kn[0] != rn[0]:
            findings.append(f"disagree {where}: native {kn[0]} {_short(kn[1])}, reference {rn[0]} {_short(rn[1])}"[:400])
        elif kn[0] == "raise" and type(kn[1]) is not type(rn[1]):
            findings.append(f"disagree {where}: native {type(kn[1]).__name__}, reference {type(rn[1]).__name__}"[:400])
        elif kn[0] == "return" and not _same(kn[1], rn[1], loose=_nonfinite(args)):
            findings.append(f"disagree {where}: results differ"[:400])
    return findings


def _trace(where):
    if os.environ.get("FASTDL_FUZZ_TRACE"):  # which call a crashed batch was in
        print(where, file=sys.stderr, flush=True)


def _short(a) -> str:
    if isinstance(a, np.ndarray):
        tags = ("+nan" if a.dtype.kind == "f" and np.isnan(a).any() else "") + \
            ("" if a.flags.c_contiguous else "+strided")
        return f"array{a.shape}:{a.dtype}{tags}"
    if isinstance(a, BaseException):
        return f"{type(a).__name__}: {a}"[:120]
    if isinstance(a, tuple) and a and all(isinstance(x, np.ndarray) or x is None for x in a):
        return "(" + ", ".join(_short(x) for x in a) + ")"
    return repr(a)[:40]


def api_calls(rng, n):
    """n mutated calls of public constructors and ops (layers, optimizers, functional)."""
    import fastdl
    from fastdl import nn, optim
    from fastdl import functional as F
    r = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    ctors = [
        (nn.Linear, (4, 3)), (nn.Conv2d, (2, 3, 3)), (nn.MaxPool2d, (2,)), (nn.AvgPool2d, (2,)),
        (nn.BatchNorm1d, (3,)), (nn.BatchNorm2d, (3,)), (nn.LayerNorm, (4,)), (nn.Dropout, (0.5,)),
        (nn.Embedding, (10, 4)), (nn.LSTM, (4, 5)), (nn.GRU, (4, 5)), (nn.RNN, (4, 5)), (nn.LSTMCell, (4, 5)),
        (nn.MultiheadAttention, (8, 2)), (nn.AdditiveAttention, (4, 4, 3)), (nn.AdaptiveAvgPool2d, ((2, 2),)),
    ]
    inputs = {nn.Linear: r(2, 4), nn.Conv2d: r(1, 2, 6, 6), nn.MaxPool2d: r(1, 2, 6, 6), nn.AvgPool2d: r(1, 2, 6, 6),
              nn.BatchNorm1d: r(4, 3), nn.BatchNorm2d: r(2, 3, 4, 4), nn.LayerNorm: r(2, 4), nn.Dropout: r(3, 4),
              nn.Embedding: np.array([[1, 2], [3, 9]]), nn.LSTM: r(3, 2, 4), nn.GRU: r(3, 2, 4), nn.RNN: r(3, 2, 4),
              nn.LSTMCell: r(2, 4), nn.AdaptiveAvgPool2d: r(1, 2, 5, 5)}
    ops = [
        (F.linear, (r(2, 4), r(3, 4), r(3))), (F.conv2d, (r(1, 2, 6, 6), r(3, 2, 3, 3))),
        (F.max_pool2d, (r(1, 2, 6, 6), 2)), (F.avg_pool2d, (r(1, 2, 6, 6), 2)),
        (F.adaptive_avg_pool2d, (r(1, 2, 6, 6), (2, 3))), (F.softmax, (r(3, 4), 1)), (F.log_softmax, (r(3, 4), 0)),
        (F.cross_entropy, (r(4, 5), np.array([0, 1, 4, 2]))), (F.mse_loss, (r(3, 4), r(3, 4))),
        (F.dropout, (r(3, 4), 0.5)), (F.layer_norm, (r(2, 4), (4,))), (F.embedding, (np.array([1, 2]), r(5, 3))),
        (F.scaled_dot_product_attention, (r(2, 3, 4), r(2, 5, 4), r(2, 5, 4))),
        (F.masked_softmax, (r(3, 4), np.ones((3, 4), bool))), (F.additive_attention, (r(2, 3, 4), r(2, 5, 4), r(4))),
        (F.binary_cross_entropy_with_logits, (r(3, 4), r(3, 4))),
    ]
    opts = [(optim.SGD, dict(lr=0.1, momentum=0.9)), (optim.Adam, dict(lr=1e-3)), (optim.AdamW, dict(lr=1e-3)),
            (optim.RMSprop, dict(lr=1e-2, centered=True))]
    findings = []
    for _ in range(n):
        kind = rng.integers(3)
        try:
            if kind == 0:
                cls, args = ctors[int(rng.integers(len(ctors)))]
                args = _mutate(rng, args)
                where = f"{cls.__name__}({', '.join(_short(a) for a in args)})"
                m = cls(*args)
                if cls in inputs:
                    m(inputs[cls])
            elif kind == 1:
                fn, args = ops[int(rng.integers(len(ops)))]
                args = _mutate(rng, args)
                where = f"F.{fn.__name__}({', '.join(_short(a) for a in args)})"
                fn(*args)
            else:
                cls, kw = opts[int(rng.integers(len(opts)))]
                kw = dict(kw)
                key = list(kw)[int(rng.integers(len(kw)))] if rng.random() < 0.7 else "weight_decay"
                bad = _bad_values(rng, kw.get(key, 0.0))
                kw[key] = bad[int(rng.integers(len(bad)))]
                where = f"{cls.__name__}({_short(kw)})"
                p = nn.Parameter(r(5))
                o = cls([p], **kw)
                p.grad = fastdl.tensor(r(5))
                o.step()
        except Exception as exc:  # classified below
            if _unclean(exc):
                findings.append(f"unclean {where}: {_unclean(exc)}"[:400])
    return findings


def batch(seed: int, n: int) -> list:
    """One batch of n calls (half kernel, half API) in this process; returns the findings."""
    import warnings
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(seed)
    with np.errstate(all="ignore"):
        return kernel_calls(rng, n - n // 2) + api_calls(rng, n // 2)


def run(calls: int, seed: int = 0, per_batch: int = 500, timeout: float = 600.0) -> dict:
    """Batches in child processes: counts of crashes (signals), hangs and findings."""
    res = {"calls": 0, "crashes": [], "hangs": [], "findings": []}
    for b in range(-(-calls // per_batch)):
        n = min(per_batch, calls - b * per_batch)
        code = f"import json, sys; sys.path.insert(0, {os.path.dirname(os.path.abspath(__file__))!r}); " \
               f"import fuzz; print(json.dumps(fuzz.batch({seed * 100003 + b}, {n})))"
        try:  # from a neutral folder: the installed fastdl, not a source tree in the working directory
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                               cwd=tempfile.gettempdir())
        except subprocess.TimeoutExpired:
            res["hangs"].append(f"batch {b} (seed {seed * 100003 + b}) ran over {timeout:.0f} s")
            continue
        res["calls"] += n
        if p.returncode < 0 or p.returncode > 1:
            res["crashes"].append(f"batch {b} (seed {seed * 100003 + b}): exit {p.returncode}: "
                                  f"{p.stderr.strip()[-300:]}")
        elif p.returncode == 1:
            res["crashes"].append(f"batch {b}: the fuzzer itself failed: {p.stderr.strip()[-500:]}")
        else:
            res["findings"] += json.loads(p.stdout.strip().splitlines()[-1])
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=30000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    t0 = time.time()
    res = run(args.calls, args.seed, args.batch)
    for k in ("crashes", "hangs", "findings"):
        for line in res[k]:
            print(f"{k[:-1]}: {line}")
    print(f"{res['calls']} calls in {time.time() - t0:.0f} s: {len(res['crashes'])} crashed batches, "
          f"{len(res['hangs'])} hangs, {len(res['findings'])} findings")
    return 1 if res["crashes"] or res["hangs"] or res["findings"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
