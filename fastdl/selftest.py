"""``fastdl selftest``: every native kernel against the NumPy reference on random inputs."""
from __future__ import annotations

import numpy as np

from . import backend, reference


def _cases(rng, dt):
    """(name, args) pairs covering every kernel in ``reference.OPS``."""
    r = lambda *s: rng.standard_normal(s).astype(dt)  # noqa: E731
    x, w, b, gy = r(33, 17), r(9, 17), r(9), r(33, 9)
    a3, b3, g3 = r(3, 5, 7), r(3, 7, 4), r(3, 5, 4)
    y = np.tanh(r(7, 11))
    s = reference.softmax_forward(r(4, 6, 5), 1)
    ls = reference.log_softmax_forward(r(4, 6, 5), 2)
    logits, t = r(13, 7), rng.integers(0, 7, 13)
    t[2] = -100
    ce_loss, lse = reference.cross_entropy_forward(logits, t, -100, 0.1)
    bx, bt, bm = r(6, 5), (rng.random((6, 5)) > 0.5).astype(dt), rng.random((6, 5)) > 0.3
    mask = reference.dropout_mask((8, 9), 0.3, 1234)
    cx, cw, cb = r(2, 4, 9, 8), r(6, 2, 3, 2), r(6)
    cgy = r(*reference.conv2d_forward(cx, cw, cb, (2, 1), (1, 0, 1, 1), (1, 2), 2).shape)
    px = r(2, 3, 7, 8)
    pidx = reference.max_pool2d_forward(px, (3, 2), (2, 2), (1, 1), (1, 1), True)[1]
    rx, rh, rwi, rwh, rb, rlen = r(5, 3, 4), r(3, 6), r(24, 4) * 0.5, r(24, 6) * 0.5, r(24), np.array([5, 2, 4])
    gwi, gwh, gb = r(18, 4) * 0.5, r(18, 6) * 0.5, r(18)
    gf = reference.rnn_forward("gru", rx, rh, None, gwi, gwh, gb, gb * 0.5, rlen, False)
    aq, ak, av, am = r(4, 5, 3), r(4, 7, 3), r(4, 7, 2), np.where(rng.random((2, 1, 7)) < 0.3, -np.inf, 0).astype(dt)
    aout, alse = reference.attention_forward(aq, ak, av, am, 2, True, None, 0.2, 99)
    sm = rng.random((3, 6)) < 0.7
    return [
        ("matmul", (a3, b3)), ("matmul_backward", (g3, a3, b3)),
        ("linear_forward", (x, w, b)), ("linear_backward", (gy, x, w)),
        ("relu_forward", (r(7, 11),)), ("relu_backward", (r(7, 11), np.maximum(y, 0))),
        ("tanh_forward", (r(7, 11),)), ("tanh_backward", (r(7, 11), y)),
        ("sigmoid_forward", (r(7, 11),)), ("sigmoid_backward", (r(7, 11), (y + 1) / 2)),
        ("activation_forward", (r(7, 11), "gelu", 0.0, 0.0)),
        ("activation_backward", (r(7, 11), r(7, 11), "softplus", 2.0, 3.0)),
        ("dropout_mask", ((8, 9), 0.3, 1234)),
        ("adaptive_step", ("nadam", r(5, 3), r(5, 3), r(5, 3), np.abs(r(5, 3)), 0.01, 0.9, 0.999, 1e-8, 0.1, False,
                           False, 3, 4e-3, 0.5)), ("dropout_apply", (r(8, 9), mask, 1 / 0.7)),
        ("softmax_forward", (r(4, 6, 5), 1)), ("softmax_backward", (r(4, 6, 5), s, 1)),
        ("log_softmax_forward", (r(4, 6, 5), 2)), ("log_softmax_backward", (r(4, 6, 5), ls, 2)),
        ("cross_entropy_forward", (logits, t, -100, 0.1)),
        ("cross_entropy_backward", (r(13), logits, t, lse, -100, 0.1)),
        ("bce_with_logits_forward", (bx, bt, bm)), ("bce_with_logits_backward", (r(6, 5), bx, bt, bm)),
        ("mse_forward", (bx, bt)), ("mse_backward", (0.5, bx, bt)),
        ("conv2d_forward", (cx, cw, cb, (2, 1), (1, 0, 1, 1), (1, 2), 2)),
        ("conv2d_backward", (cgy, cx, cw, (2, 1), (1, 0, 1, 1), (1, 2), 2)),
        ("max_pool2d_forward", (px, (3, 2), (2, 2), (1, 1), (1, 1), True)),
        ("max_pool2d_backward", (r(*pidx.shape), pidx, (7, 8))),
        ("avg_pool2d_forward", (px, (3, 3), (2, 2), (1, 1), True, False)),
        ("avg_pool2d_backward", (r(2, 3, 4, 5), (7, 8), (3, 3), (2, 2), (1, 1), True, False)),
        ("adaptive_avg_pool2d_forward", (px, (3, 5))), ("adaptive_avg_pool2d_backward", (r(2, 3, 3, 5), (7, 8))),
        ("batch_norm_forward", (px, r(3), r(3), r(3), np.abs(r(3)) + 1, True, 0.1, 1e-5)),
        ("batch_norm_backward", (r(2, 3, 7, 8), px, r(3), r(3), np.abs(r(3)) + 0.5, True)),
        ("layer_norm_forward", (px, [7, 8], r(7, 8), r(7, 8), 1e-5)),
        ("layer_norm_backward", (r(2, 3, 7, 8), px, [7, 8], r(7, 8), r(6), np.abs(r(6)) + 0.5)),
        ("group_norm_forward", (r(2, 6, 7, 3), 3, r(6), r(6), 1e-5)),
        ("group_norm_backward", (r(2, 6, 7, 3), r(2, 6, 7, 3), 3, r(6), r(6), np.abs(r(6)) + 0.5)),
        ("rnn_forward", ("lstm", rx, rh, rh * 0.5, rwi, rwh, rb, rb * 0.5, rlen, True)),
        ("rnn_backward", ("gru", r(5, 3, 6), r(3, 6), None, rx, rh, None, gwi, gwh, gb, gb * 0.5, gf[0], gf[3], None,
                          gf[5], rlen, False)),
        ("embedding_forward", (r(7, 4), np.array([[0, 6], [3, 3]]))),
        ("embedding_backward", (r(2, 2, 4), np.array([[0, 6], [3, 3]]), 7, 3)),
        ("attention_forward", (aq, ak, av, am, 2, True, None, 0.2, 99)),
        ("attention_backward", (r(4, 5, 2), aq, ak, av, aout, alse, am, 2, True, None, 0.2, 99)),
        ("masked_softmax_forward", (r(3, 6), sm, 0.5)),
        ("masked_softmax_backward", (r(3, 6), reference.masked_softmax_forward(r(3, 6), sm), 0.5)),
        ("additive_attention_forward", (r(2, 3, 4), r(2, 5, 4), r(4))),
        ("additive_attention_backward", (r(2, 3, 5), r(2, 3, 4), r(2, 5, 4), r(4))),
        # in-place optimizer updates: the mutated arguments are compared
        ("sgd_step", (r(5, 3), r(5, 3), r(5, 3), 0.1, 0.9, 0.1, 0.01, False, False, False)),
        ("adam_step", (r(5, 3), r(5, 3), r(5, 3), np.abs(r(5, 3)), np.abs(r(5, 3)), 1e-2, 0.9, 0.999, 1e-8, 0.01,
                       True, False, 3)),
        ("rmsprop_step", (r(5, 3), r(5, 3), np.abs(r(5, 3)) + 1, r(5, 3) * 0.1, r(5, 3), 1e-2, 0.99, 1e-8, 0.01,
                          0.9, False)),
    ]


def _close(a, b, tol) -> float:
    """Largest error relative to tolerance (<= 1 passes); None results must match."""
    if isinstance(a, tuple):
        return max(_close(u, v, tol) for u, v in zip(a, b))
    if a is None or b is None:
        return 0.0 if a is None and b is None else np.inf
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return np.inf
    same = a == b  # equal infinities (a row that attends to nothing has lse = -inf) are no error
    with np.errstate(invalid="ignore"):
        err = np.where(same, 0.0, np.abs(a - b) / (tol * (1 + np.abs(b))))
    return float(np.max(np.where(np.isnan(err) & ~same, np.inf, err), initial=0.0))


def run(seed: int = 0, out=print) -> bool:
    native = backend._table("native")
    ok_all = True
    out(f"{'op':26s} {'dtype':8s} {'max err/tol':>12s}  result")
    for dt, tol in ((np.float32, 1e-4), (np.float64, 1e-10)):
        rng = np.random.default_rng(seed)
        for name, args in _cases(rng, dt):
            try:
                a1 = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
                a2 = tuple(a.copy() if isinstance(a, np.ndarray) else a for a in args)
                o1, o2 = getattr(native, name)(*a1), getattr(reference, name)(*a2)
                if o1 is None and o2 is None:  # an in-place kernel: compare what it wrote
                    o1 = tuple(a for a in a1 if isinstance(a, np.ndarray))
                    o2 = tuple(a for a in a2 if isinstance(a, np.ndarray))
                err = _close(o1, o2, tol)
                ok = err <= 1.0
                msg = f"{err:12.3g}"
            except Exception as exc:  # report, never crash the self-test
                ok, msg = False, f"{type(exc).__name__}: {exc}"
            ok_all &= ok
            out(f"{name:26s} {np.dtype(dt).name:8s} {msg}  {'pass' if ok else 'FAIL'}")
    missing = [n for n in reference.OPS if not hasattr(native, n)]
    if missing:
        ok_all = False
        out(f"missing native kernels: {missing}")
    out("selftest: " + ("all ops match the reference" if ok_all else "FAILURES above"))
    return ok_all
