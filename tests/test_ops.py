"""Every native op against the NumPy reference: forward, gradients, gradcheck."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
import fastdl.functional as F
from helpers import check_op, each_build

SIZES = [1, 3, 7, 33]


def r(rng, *shape):
    return rng.standard_normal(shape)


# ------------------------------------------------------------------ gemm
@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 7, 1), (7, 3, 33), (33, 7, 3)])
def test_matmul_2d(rng, m, k, n):
    check_op(lambda a, b: a @ b, r(rng, m, k), r(rng, k, n), expected=lambda a, b: a @ b)


@pytest.mark.parametrize("m,n,k", [(16, 16, 1024), (96, 64, 128), (97, 129, 300), (16, 20, 2000), (200, 47, 257),
                                   (1024, 128, 1600), (37, 1100, 70), (70, 20, 600), (37, 17, 700), (100, 33, 520)])
def test_weight_gradient_products(rng, m, n, k):
    """gw = gy^T x (linear's weight gradient, A^T B): products this large run on the packed tile kernel
    where the CPU has its AVX-512 build (edges of every size: rows past whole micro-panels of six,
    columns past whole vectors and panels, K past whole blocks of 384, over 512 columns), and wide
    ones of long sums as their transpose turned back in 16 x 16 tiles under the AVX2 build (rows and
    columns past whole tiles); compared with float64 under every build, at 1, 2 and 3 threads."""
    from fastdl import _C
    gy, x = (rng.standard_normal(s).astype(np.float32) for s in ((k, m), (k, n)))
    want = gy.astype(np.float64).T @ x.astype(np.float64)

    def check(msg):
        gw = _C.linear_backward(gy, x, np.zeros((m, n), np.float32))[1]
        np.testing.assert_allclose(gw, want, rtol=1e-4, atol=1e-4 * np.sqrt(k), err_msg=msg)
    each_build(check, threads=(1, 2, 3))


@pytest.mark.parametrize("m,n,k", [(6, 16, 16), (7, 17, 300), (96, 64, 128), (97, 129, 257), (200, 47, 129),
                                   (33, 1100, 70), (128, 128, 64), (1, 64, 4096)])
def test_plain_products(rng, m, n, k):
    """A B (matmul, linear's input gradient) and A B^T (linear, with and without the bias it starts
    from): products this large run on the packed tile kernel where the CPU has its AVX-512 build
    (edges: rows past whole tiles of six and blocks of 48, columns past whole vectors, panels of 64
    and blocks of 512, K past whole blocks of 384 and 16 x 16 transposes); compared with float64
    under every build, at 1, 2 and 3 threads."""
    from fastdl import _C
    a, b, bt, bias = (rng.standard_normal(s).astype(np.float32) for s in ((m, k), (k, n), (n, k), (n,)))
    a64, b64, bt64 = a.astype(np.float64), b.astype(np.float64), bt.astype(np.float64)
    tol = dict(rtol=1e-4, atol=1e-4 * np.sqrt(k))

    def check(msg):
        np.testing.assert_allclose(_C.matmul(a, b), a64 @ b64, err_msg=msg, **tol)
        np.testing.assert_allclose(_C.linear_forward(a, bt), a64 @ bt64.T, err_msg=msg, **tol)
        np.testing.assert_allclose(_C.linear_forward(a, bt, bias), a64 @ bt64.T + bias, err_msg=msg, **tol)
        gx = _C.linear_backward(a, np.zeros((m, n), np.float32), b, True, False, False)[0]
        np.testing.assert_allclose(gx, a64 @ b64, err_msg=msg, **tol)
    each_build(check, threads=(1, 2, 3))


@pytest.mark.parametrize("sa,sb", [
    ((4, 3, 5), (4, 5, 2)),      # batched
    ((4, 3, 5), (5, 2)),         # shared right operand: folded into one GEMM
    ((3, 5), (4, 5, 2)),         # shared left operand
    ((1, 3, 5), (4, 5, 2)),      # broadcast batch of 1
    ((2, 1, 3, 5), (1, 4, 5, 2)),  # materialised broadcast over two batch dims
    ((5,), (5, 2)), ((3, 5), (5,)), ((5,), (5,)), ((2, 3, 5), (5,)),
])
def test_matmul_batched_and_vectors(rng, sa, sb):
    check_op(lambda a, b: a @ b, r(rng, *sa), r(rng, *sb), expected=np.matmul)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("bias", [True, False])
def test_linear(rng, n, bias):
    x, w, b = r(rng, n, 7), r(rng, 5, 7), r(rng, 5)
    if bias:
        check_op(F.linear, x, w, b, expected=lambda x, w, b: x @ w.T + b)
    else:
        check_op(F.linear, x, w, expected=lambda x, w: x @ w.T)


def test_linear_leading_dims(rng):
    check_op(F.linear, r(rng, 2, 3, 4), r(rng, 6, 4), r(rng, 6), expected=lambda x, w, b: x @ w.T + b)


# ------------------------------------------------------------------ element-wise
@pytest.mark.parametrize("n", SIZES + [70001])  # 70001: above the threading grain
@pytest.mark.parametrize("name,formula", [
    ("relu", lambda x: np.maximum(x, 0)), ("tanh", np.tanh), ("sigmoid", lambda x: 1 / (1 + np.exp(-x)))])
def test_activations(rng, n, name, formula):
    x = r(rng, n) * 3
    x[np.abs(x) < 1e-3] = 0.5  # keep away from relu's kink for gradcheck
    check_op(getattr(F, name), x, expected=formula, gradcheck=n < 100)


def test_activations_extreme_values():
    x = np.array([-1e4, -100, -30, -1e-6, 0, 1e-6, 30, 100, 1e4], np.float32)
    for name, ref in (("tanh", np.tanh), ("sigmoid", lambda v: 1 / (1 + np.exp(-v.astype(np.float64))))):
        with np.errstate(over="ignore"):
            y = getattr(F, name)(fastdl.tensor(x)).data
            np.testing.assert_allclose(y, ref(x), rtol=1e-6, atol=1e-30)


@pytest.mark.parametrize("name", ["relu", "tanh", "sigmoid", "softmax", "log_softmax"])
def test_nan_in_nan_out(name):
    x = np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]], np.float32)
    y = getattr(F, name)(fastdl.tensor(x)).data
    assert np.isnan(y[0, 1])
    if name in ("softmax", "log_softmax"):
        assert np.isnan(y[0]).all() and np.isfinite(y[1]).all()
    else:
        assert np.isfinite(np.delete(y.ravel(), 1)).all()


# ------------------------------------------------------------------ softmax
@pytest.mark.parametrize("shape,axis", [((7,), 0), ((3, 33), -1), ((3, 33), 0), ((2, 5, 4), 1),
                                        ((2, 5, 4), 0), ((1, 1), 1), ((4, 3, 2, 5), 2)])
@pytest.mark.parametrize("log", [False, True])
def test_softmax(rng, shape, axis, log):
    def ref(x):
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        p = e / e.sum(axis=axis, keepdims=True)
        return np.log(p) if log else p
    fn = (lambda x: F.log_softmax(x, axis=axis)) if log else (lambda x: F.softmax(x, dim=axis))
    check_op(fn, r(rng, *shape) * 3, expected=ref)


def test_softmax_large_logits_stable():
    x = fastdl.tensor(np.array([[1000.0, 1001.0, 1002.0], [-1000.0, -1000.0, -1000.0]], np.float32))
    p = F.softmax(x).data
    np.testing.assert_allclose(p[0], np.exp([-2, -1, 0]) / np.exp([-2, -1, 0]).sum(), rtol=1e-5)
    np.testing.assert_allclose(p[1], [1 / 3] * 3, rtol=1e-6)
    np.testing.assert_allclose(F.log_softmax(x).data[1], [-np.log(3)] * 3, rtol=1e-6)


def test_softmax_masked_minus_inf():
    x = fastdl.tensor(np.array([[0.0, -np.inf, 1.0]], np.float32))
    p = F.softmax(x).data
    assert p[0, 1] == 0.0
    np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-6)


# ------------------------------------------------------------------ losses
def _ce_formula(x, t, eps=0.0, ignore=-100):
    m = x.max(axis=1, keepdims=True)
    logp = x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True))
    keep = t != ignore
    nll = -logp[np.arange(len(t)), np.where(keep, t, 0)]
    smooth = -logp.mean(axis=1)
    loss = (1 - eps) * nll + eps * smooth
    return np.where(keep, loss, 0), keep


@pytest.mark.parametrize("n,c", [(1, 1), (3, 7), (33, 3), (7, 33)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy(rng, n, c, reduction, eps):
    x = r(rng, n, c) * 2
    t = rng.integers(0, c, n)
    if n > 2:
        t[1] = -100  # ignored

    def expected(x, t):
        loss, keep = _ce_formula(x, t, eps)
        return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / keep.sum()}[reduction]
    check_op(lambda x, t: F.cross_entropy(x, t, reduction=reduction, label_smoothing=eps), x, t,
             expected=expected)


def test_cross_entropy_spatial(rng):
    x, t = r(rng, 2, 4, 3, 5), rng.integers(0, 4, (2, 3, 5))

    def expected(x, t):
        flat = np.moveaxis(x, 1, -1).reshape(-1, 4)
        return _ce_formula(flat, t.reshape(-1))[0].mean()
    check_op(F.cross_entropy, x, t, expected=expected)


def test_cross_entropy_matches_log_softmax_nll(rng):
    x = fastdl.tensor(r(rng, 6, 5), requires_grad=True)
    t = rng.integers(0, 5, 6)
    a = F.cross_entropy(x, t)
    b = F.nll_loss(F.log_softmax(x, axis=1), t)
    np.testing.assert_allclose(a.item(), b.item(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 33)])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits(rng, shape, masked, reduction):
    x = r(rng, *shape) * 4
    t = (rng.random(shape) > 0.5).astype(np.float64)
    m = rng.random(shape) > 0.3 if masked else None
    if masked:
        m.reshape(-1)[0] = True

    def expected(x, t):
        loss = np.maximum(x, 0) - x * t + np.log1p(np.exp(-np.abs(x)))
        keep = np.ones(shape, bool) if m is None else m
        loss = np.where(keep, loss, 0)
        return {"none": loss, "sum": loss.sum(), "mean": loss.sum() / keep.sum()}[reduction]
    check_op(lambda x, t: F.binary_cross_entropy_with_logits(x, t, reduction=reduction, mask=m), x, t,
             requires_grad=[True, False], expected=expected)


def test_bce_mask_blocks_gradient(rng):
    x = fastdl.tensor(r(rng, 4, 3), requires_grad=True)
    t = np.ones((4, 3))
    m = np.zeros((4, 3), bool)
    m[:, 0] = True
    loss = F.binary_cross_entropy_with_logits(x, t, mask=m)
    loss.backward()
    assert np.all(x.grad.data[:, 1:] == 0) and np.all(x.grad.data[:, 0] != 0)
    # mean over the 4 present labels only
    full = F.binary_cross_entropy_with_logits(x[:, 0], t[:, 0])
    np.testing.assert_allclose(loss.item(), full.item(), rtol=1e-12)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 33)])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse(rng, shape, reduction):
    red = {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction]
    check_op(lambda p, t: F.mse_loss(p, t, reduction), r(rng, *shape), r(rng, *shape),
             requires_grad=[True, False], expected=lambda p, t: red((p - t) ** 2))


# ------------------------------------------------------------------ dropout
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 0.9])
def test_dropout_given_mask(rng, p):
    x = r(rng, 7, 9)
    mask = rng.random((7, 9)) >= p
    scale = 1 / (1 - p)
    check_op(lambda x: F.dropout(x, p, mask=mask), x, expected=lambda x: x * mask * scale)


def test_dropout_mask_same_on_both_backends_and_reproducible():
    x = np.ones((50, 40), np.float32)
    fastdl.manual_seed(7)
    a = F.dropout(fastdl.tensor(x), 0.3).data
    fastdl.set_backend("reference")
    fastdl.manual_seed(7)
    b = F.dropout(fastdl.tensor(x), 0.3).data
    fastdl.set_backend("native")
    np.testing.assert_array_equal(a, b)
    fastdl.manual_seed(8)
    assert not np.array_equal(a, F.dropout(fastdl.tensor(x), 0.3).data)


def test_dropout_statistics():
    x = np.ones((400, 500), np.float32)
    y = F.dropout(fastdl.tensor(x), 0.3).data
    kept = (y != 0).mean()
    assert abs(kept - 0.7) < 0.005  # 200k Bernoulli(0.7): sd 0.001
    np.testing.assert_allclose(y[y != 0], 1 / 0.7, rtol=1e-6)
    assert abs(y.mean() - 1.0) < 0.01  # inverted dropout keeps the mean
    np.testing.assert_array_equal(F.dropout(fastdl.tensor(x), 0.3, training=False).data, x)


def test_dropout_gradient_uses_same_mask():
    x = fastdl.tensor(np.ones((20, 30)), requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.data, y.data)
