"""The CUDA kernels (``fastdl._C_cuda``).

Without a GPU only the module's own argument checks run (where the module was built: CI builds it
whenever nvcc is there).  On a GPU with CuPy, every CUDA kernel is compared with the CPU kernel on the
same inputs, float64 gradients are checked on the GPU, LeNet-5 trains to the CPU's accuracy, and
checkpoints move between devices."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

import fastdl
from fastdl import backend, nn, optim, reference

BUILT = importlib.util.find_spec("fastdl._C_cuda") is not None
built = pytest.mark.skipif(not BUILT, reason="the CUDA kernels were not built (FASTDL_CUDA=ON)")
gpu = pytest.mark.skipif(not fastdl.cuda.is_available(), reason="no GPU with CuPy here")


# ---------------------------------------------------------------- without a GPU
@built
def test_module_reports_its_architectures():
    from fastdl import _C_cuda
    archs = _C_cuda.architectures.split()
    assert {"80-real", "90-real", "90-virtual"} <= set(archs)
    assert fastdl.cuda.architectures() == _C_cuda.architectures
    assert fastdl.cuda.status().startswith(f"built ({_C_cuda.architectures})")


@built
def test_bad_arguments_are_refused_before_any_launch():
    from fastdl import _C_cuda as K
    with pytest.raises(ValueError, match="act_forward: dtype must be 0"):
        K.act_forward(0, 7, 16, 16, 4, 0)
    with pytest.raises(ValueError, match="act_forward: act must be"):
        K.act_forward(9, 0, 16, 16, 4, 0)
    with pytest.raises(ValueError, match="x is a null pointer"):
        K.act_forward(0, 0, 0, 16, 4, 0)
    with pytest.raises(ValueError, match="rows must be >= 0"):
        K.softmax_forward(0, 0, 16, 16, -1, 3, 0)
    with pytest.raises(ValueError, match="too large"):
        K.embedding_forward(0, 16, 16, 16, 1 << 40, 1 << 20, 0)
    with pytest.raises(ValueError, match="label_smoothing"):
        K.cross_entropy_forward(0, 16, 16, 16, 16, 2, 3, -100, 1.5, 0)
    with pytest.raises(ValueError, match="step must be >= 1"):
        K.adam_step(0, 16, 16, 16, 16, 0, 4, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False, 0, 0)
    with pytest.raises(ValueError, match="dropout_mask: p must be in"):
        K.dropout_mask(16, 4, 1.5, 0, 0)
    with pytest.raises(ValueError, match="activation_backward: kind must be 0 to 11"):
        K.activation_backward(12, 0, 16, 16, 16, 4, 0.0, 0.0, 0)
    with pytest.raises(ValueError, match="masked_softmax_forward: scale must be finite"):
        K.masked_softmax_forward(0, 16, 0, 16, 2, 3, float("inf"), 0)
    with pytest.raises(ValueError, match="masked_softmax_backward: gx is a null pointer"):
        K.masked_softmax_backward(0, 16, 16, 0, 2, 3, 1.0, 0)
    with pytest.raises(ValueError, match="additive_attention_backward: kp is a null pointer"):
        K.additive_attention_backward(0, 16, 16, 0, 16, 16, 16, 16, 2, 3, 4, 5, 0)
    with pytest.raises(ValueError, match="rmsprop_step: square_avg is a null pointer"):
        K.rmsprop_step(0, 16, 16, 0, 0, 0, 4, 0.1, 0.99, 1e-8, 0.0, 0.0, False, 0)
    with pytest.raises(ValueError, match="adaptive_step: state_b is a null pointer"):
        K.adaptive_step(1, 0, 16, 16, 16, 0, 4, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False, 1, 0.0, 1.0, 0)
    with pytest.raises(ValueError, match="adaptive_step: kind must be 0 to 4"):
        K.adaptive_step(5, 0, 16, 16, 16, 16, 4, 0.1, 0.9, 0.999, 1e-8, 0.0, False, False, 1, 0.0, 1.0, 0)
    geom = (2, 3, 8, 8, 3, 3, 6, 6, 1, 1, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="im2col: geometry must have 14 entries"):
        K.im2col(0, 16, 16, geom[:-1], 0)
    with pytest.raises(ValueError, match="im2col: sh must be >= 1"):
        K.im2col(0, 16, 16, geom[:8] + (0,) + geom[9:], 0)
    with pytest.raises(ValueError, match="col2im: cols is a null pointer"):
        K.col2im(0, 0, 16, geom, 0)
    with pytest.raises(ValueError, match="too large"):
        K.im2col(0, 16, 16, (1 << 30, 1 << 30) + geom[2:], 0)
    pool = (6, 8, 8, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1)
    with pytest.raises(ValueError, match="max_pool2d_forward: indices is a null pointer"):
        K.max_pool2d_forward(0, 16, 16, 0, pool, 0)
    with pytest.raises(ValueError, match="avg_pool2d_backward: P must be >= 0"):
        K.avg_pool2d_backward(0, 16, 16, (-1,) + pool[1:], True, 0)
    with pytest.raises(ValueError, match="dtype must be 0"):
        K.avg_pool2d_forward(3, 16, 16, pool, True, 0)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d_forward: H, W, OH and OW must be >= 1"):
        K.adaptive_avg_pool2d_forward(0, 16, 16, 2, 3, 4, 0, 1, 0)
    with pytest.raises(ValueError, match="adaptive_avg_pool2d_backward: gx is a null pointer"):
        K.adaptive_avg_pool2d_backward(0, 16, 0, 2, 3, 4, 1, 1, 0)
    with pytest.raises(ValueError, match="batch_norm_forward: evaluation needs running_mean"):
        K.batch_norm_forward(0, 16, 0, 0, 0, 0, 16, 16, 16, 2, 3, 4, False, 0.1, 1e-5, 0)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        K.batch_norm_forward(0, 16, 0, 0, 0, 0, 16, 16, 16, 1, 3, 1, True, 0.1, 1e-5, 0)
    with pytest.raises(ValueError, match="layer_norm_forward: eps must be > 0"):
        K.layer_norm_forward(0, 16, 0, 0, 16, 16, 16, 2, 3, 0.0, 0)
    with pytest.raises(ValueError, match="layer_norm_backward: rstd is a null pointer"):
        K.layer_norm_backward(0, 16, 16, 0, 16, 0, 16, 0, 0, 2, 3, 0)
    with pytest.raises(ValueError, match="lstm_cell_forward: hw is a null pointer"):
        K.lstm_cell_forward(0, 16, 0, 16, 16, 16, 0, 0, 0, 0, 2, 3, 0)
    with pytest.raises(ValueError, match="lstm_cell_backward: t must be >= 0"):
        K.lstm_cell_backward(0, 16, 16, 16, 0, 16, 16, 16, 16, 0, -1, 2, 3, 0)
    with pytest.raises(ValueError, match="gru_cell_forward: h is a null pointer"):
        K.gru_cell_forward(0, 16, 16, 0, 0, 16, 0, 0, 0, 0, 2, 3, 0)
    with pytest.raises(ValueError, match="gru_cell_backward: hnl is a null pointer"):
        K.gru_cell_backward(0, 16, 0, 16, 0, 16, 16, 16, 16, 0, 0, 2, 3, 0)
    with pytest.raises(ValueError, match="rnn_cell_forward: act must be 0"):
        K.rnn_cell_forward(2, 0, 16, 16, 16, 16, 0, 0, 0, 2, 3, 0)
    with pytest.raises(ValueError, match="rnn_cell_backward: H must be >= 0"):
        K.rnn_cell_backward(1, 0, 16, 0, 16, 16, 16, 0, 0, 2, -3, 0)
    with pytest.raises(ValueError, match="attention_forward: E and Ev must be at most"):
        K.attention_forward(0, 16, 16, 16, 0, 1, 1, 1, 16, 16, 2, 3, 4, K.attention_max_features + 1, 4, False, 0.5,
                            0.0, 0, 0)
    with pytest.raises(ValueError, match="attention_forward: mask layout"):
        K.attention_forward(0, 16, 16, 16, 16, 1, 2, 1, 16, 16, 2, 3, 4, 8, 8, False, 0.5, 0.0, 0, 0)
    with pytest.raises(ValueError, match="attention_backward: dropout_p must be in"):
        K.attention_backward(0, *[16] * 7, 1, 1, 1, *[16] * 4, 2, 3, 4, 8, 8, False, 0.5, 1.0, 0, 0)
    with pytest.raises(ValueError, match="attention_backward: gv is a null pointer"):
        K.attention_backward(0, *[16] * 6, 0, 1, 1, 1, 16, 16, 16, 0, 2, 3, 4, 8, 8, False, 0.5, 0.0, 0, 0)
    K.act_forward(0, 0, 0, 0, 0, 0)  # nothing to do: no launch, no error
    K.im2col(0, 0, 0, (0,) + geom[1:], 0)
    K.max_pool2d_forward(0, 0, 0, 0, (0,) + pool[1:], 0)


def test_without_cuda_moving_a_tensor_says_why():
    if fastdl.cuda.is_available():
        pytest.skip("CUDA is available here")
    t = fastdl.tensor(np.ones(3, np.float32))
    with pytest.raises(RuntimeError, match="CUDA is not available: "):
        t.cuda()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        nn.Linear(2, 2).to("cuda")
    assert fastdl.cuda.device_count() >= 0 and isinstance(fastdl.cuda.status(), str)


# ---------------------------------------------------------------- on a GPU
def _cp():
    import cupy
    return cupy


def _pair(rng, shape, dtype):
    h = rng.standard_normal(shape).astype(dtype)
    return h, _cp().asarray(h)


TOL = {np.float32: dict(rtol=2e-5, atol=2e-6), np.float64: dict(rtol=1e-12, atol=1e-13)}


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_every_cuda_kernel_equals_the_cpu_kernel(dtype):
    from fastdl.cuda import ops
    cp, cpu, tol = _cp(), backend._C, TOL[dtype]
    rng = np.random.default_rng(0)

    def same(got, want):
        np.testing.assert_allclose(cp.asnumpy(got), want, **tol)

    x, xd = _pair(rng, (33, 517), dtype)
    g, gd = _pair(rng, (33, 517), dtype)
    for kind in ("relu", "tanh", "sigmoid"):
        y = getattr(cpu, f"{kind}_forward")(x)
        same(getattr(ops, "_act_forward")(kind)(xd), y)
        same(ops._act_backward(kind)(gd, cp.asarray(y)), getattr(cpu, f"{kind}_backward")(g, y))
    for log, name in ((0, "softmax"), (1, "log_softmax")):
        for axis in (-1, 0):
            y = getattr(cpu, f"{name}_forward")(x, axis)
            same(ops._softmax_forward(log)(xd, axis), y)
            same(ops._softmax_backward(log)(gd, cp.asarray(y), axis), getattr(cpu, f"{name}_backward")(g, y, axis))
    t = rng.integers(0, 517, 33)
    t[3] = -100
    for eps in (0.0, 0.1):
        loss, lse = cpu.cross_entropy_forward(x, t, -100, eps)
        dl, dlse = ops.cross_entropy_forward(xd, cp.asarray(t), -100, eps)
        same(dl, loss), same(dlse, lse)
        gl = rng.standard_normal(33).astype(dtype)
        same(ops.cross_entropy_backward(cp.asarray(gl), xd, cp.asarray(t), dlse, -100, eps),
             cpu.cross_entropy_backward(gl, x, t, lse, -100, eps))
    with pytest.raises(ValueError, match="outside"):
        ops.cross_entropy_forward(xd, cp.asarray(np.full(33, 517)), -100, 0.0)
    # dropout: the GPU's mask is the CPU's for the same seed; the parametrised activations (NaN, the
    # kinks at 0 and +-3, softplus past its threshold)
    np.testing.assert_array_equal(cp.asnumpy(ops.dropout_mask((33, 517), 0.3, 12345)),
                                  cpu.dropout_mask((33, 517), 0.3, 12345))
    keep = cpu.dropout_mask((33, 517), 0.3, 7)
    same(ops.dropout_apply(xd, cp.asarray(keep), 1 / 0.7), cpu.dropout_apply(x, keep, 1 / 0.7))
    xa = np.append(rng.standard_normal(500) * 4, [np.nan, 0.0, 3.0, -3.0, 25.0]).astype(dtype)
    ga = rng.standard_normal(xa.size).astype(dtype)
    for kind in ("leaky_relu", "elu", "selu", "celu", "gelu", "gelu_tanh", "silu", "mish", "softplus", "hardtanh",
                 "hardsigmoid", "hardswish"):
        alpha, beta = {"leaky_relu": (0.1, 0.0), "elu": (1.5, 0.0), "celu": (0.7, 0.0), "softplus": (2.0, 5.0),
                       "hardtanh": (-0.5, 2.0)}.get(kind, (0.0, 0.0))
        # against the NumPy reference, the same formulas: in float64 the CPU kernels' GELU tails are within
        # 1e-14 absolute of it, but not within a relative tolerance where the values are ~1e-15 or underflow
        act_tol = tol if dtype == np.float32 else dict(rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(cp.asnumpy(ops.activation_forward(cp.asarray(xa), kind, alpha, beta)),
                                   reference.activation_forward(xa, kind, alpha, beta), **act_tol)
        np.testing.assert_allclose(cp.asnumpy(ops.activation_backward(cp.asarray(ga), cp.asarray(xa), kind, alpha,
                                                                      beta)),
                                   reference.activation_backward(ga, xa, kind, alpha, beta), **act_tol)
    pr, prd = _pair(rng, (40, 30), dtype)  # MSE, BCE with logits (a mask of missing labels)
    tr, trd = _pair(rng, (40, 30), dtype)
    assert abs(ops.mse_forward(prd, trd) - cpu.mse_forward(pr, tr)) <= 1e-5 * cpu.mse_forward(pr, tr)
    same(ops.mse_backward(0.25, prd, trd), cpu.mse_backward(0.25, pr, tr))
    tb = (rng.random((40, 30)) < 0.5).astype(dtype)
    mb = rng.random((40, 30)) < 0.8
    same(ops.bce_with_logits_forward(prd * 5, cp.asarray(tb), cp.asarray(mb)),
         cpu.bce_with_logits_forward(pr * 5, tb, mb))
    same(ops.bce_with_logits_backward(trd, prd * 5, cp.asarray(tb), cp.asarray(mb)),
         cpu.bce_with_logits_backward(tr, pr * 5, tb, mb))
    x, xd = _pair(rng, (6, 9, 300), dtype)  # masked softmax: rows longer than a block, one with nothing kept
    keep = rng.random(x.shape) < 0.7
    keep[2, 3] = False
    for mask in (keep, None):
        y = cpu.masked_softmax_forward(x, mask, 0.25)
        yd = ops.masked_softmax_forward(xd, None if mask is None else cp.asarray(mask), 0.25)
        same(yd, y)
        g, gd = _pair(rng, x.shape, dtype)
        same(ops.masked_softmax_backward(gd, yd, 0.25), cpu.masked_softmax_backward(g, y, 0.25))
    w, wd = _pair(rng, (50, 24), dtype)
    idx = rng.integers(0, 50, (7, 9))
    same(ops.embedding_forward(wd, cp.asarray(idx)), cpu.embedding_forward(w, idx))
    gy = rng.standard_normal((7, 9, 24)).astype(dtype)
    same(ops.embedding_backward(cp.asarray(gy), cp.asarray(idx), 50, 3), cpu.embedding_backward(gy, idx, 50, 3))
    for step in (1, 2, 3):  # optimizer updates, state carried over steps
        for amsgrad, decoupled in ((False, False), (True, True)):
            p, pd = _pair(rng, (1000,), dtype)
            gr, grd = _pair(rng, (1000,), dtype)
            st = [np.zeros(1000, dtype) for _ in range(3)]
            sd = [cp.zeros(1000, dtype) for _ in range(3)]
            cpu.adam_step(p, gr, st[0], st[1], st[2] if amsgrad else None, 1e-2, 0.9, 0.999, 1e-8, 0.01, decoupled,
                          False, step)
            ops.adam_step(pd, grd, sd[0], sd[1], sd[2] if amsgrad else None, 1e-2, 0.9, 0.999, 1e-8, 0.01, decoupled,
                          False, step)
            same(pd, p), same(sd[0], st[0]), same(sd[1], st[1])
        buf, bufd = np.zeros(1000, dtype), cp.zeros(1000, dtype)
        cpu.sgd_step(p, gr, buf, 0.1, 0.9, 0.1, 0.01, True, False, step == 1)
        ops.sgd_step(pd, grd, bufd, 0.1, 0.9, 0.1, 0.01, True, False, step == 1)
        same(pd, p), same(bufd, buf)
    # RMSprop (plain, centered with momentum) and the other adaptive rules, state carried over 7 steps
    # (RAdam's rectification starts at step 6)
    for centered, mom in ((False, 0.0), (True, 0.9)):
        p, pd = _pair(rng, (1000,), dtype)
        st = [np.zeros(1000, dtype) for _ in range(3)]
        sd = [cp.zeros(1000, dtype) for _ in range(3)]
        for step in range(1, 4):
            gr, grd = _pair(rng, (1000,), dtype)
            cpu.rmsprop_step(p, gr, st[0], st[1] if centered else None, st[2] if mom else None, 1e-2, 0.99, 1e-8,
                             0.01, mom, False)
            ops.rmsprop_step(pd, grd, sd[0], sd[1] if centered else None, sd[2] if mom else None, 1e-2, 0.99, 1e-8,
                             0.01, mom, False)
            same(pd, p), same(sd[0], st[0]), same(sd[1], st[1]), same(sd[2], st[2])
    for kind, b1, extra, decoupled in (("adagrad", 0.0, 0.01, False), ("adadelta", 0.9, 0.0, False),
                                       ("adamax", 0.9, 0.0, False), ("nadam", 0.9, 0.004, True),
                                       ("radam", 0.9, 0.0, True)):
        p, pd = _pair(rng, (1000,), dtype)
        a, b = np.zeros(1000, dtype), np.zeros(1000, dtype)
        ad, bd = cp.zeros(1000, dtype), cp.zeros(1000, dtype)
        prod = 1.0
        for step in range(1, 8):
            gr, grd = _pair(rng, (1000,), dtype)
            prod *= b1 * (1 - 0.5 * 0.96 ** (step * extra)) if kind == "nadam" else 1.0
            args = (1e-2, b1, 0.999, 1e-8, 0.01, decoupled, step % 2 == 0, step, extra, prod)
            cpu.adaptive_step(kind, p, gr, a, None if kind == "adagrad" else b, *args)
            ops.adaptive_step(kind, pd, grd, ad, None if kind == "adagrad" else bd, *args)
            same(pd, p), same(ad, a), same(bd, b)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_convolution_and_pooling_kernels_equal_the_cpu_kernels(dtype):
    """im2col + cuBLAS convolution (groups, stride, asymmetric padding, dilation) forward and both
    backward passes, max / average pooling (padding, dilation, ceil mode, a NaN, both divisor rules) and
    adaptive average pooling."""
    from fastdl.cuda import ops
    cp, cpu, rng = _cp(), backend._C, np.random.default_rng(2)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]  # GEMMs sum in another order

    def same(got, want, **kw):
        np.testing.assert_allclose(cp.asnumpy(got), want, **(kw or tol))

    for groups, stride, pad, dil in ((1, (1, 1), (2, 2, 2, 2), (1, 1)), (2, (2, 1), (0, 1, 2, 0), (1, 2)),
                                     (8, (1, 1), (1, 1, 1, 1), (1, 1))):
        x, xd = _pair(rng, (3, 8, 13, 11), dtype)
        w, wd = _pair(rng, (16, 8 // groups, 5, 3), dtype)
        b, bd = _pair(rng, (16,), dtype)
        y = cpu.conv2d_forward(x, w, b, stride, pad, dil, groups)
        same(ops.conv2d_forward(xd, wd, bd, stride, pad, dil, groups), y)
        g, gd = _pair(rng, y.shape, dtype)
        for got, want in zip(ops.conv2d_backward(gd, xd, wd, stride, pad, dil, groups),
                             cpu.conv2d_backward(g, x, w, stride, pad, dil, groups)):
            same(got, want)
    x, xd = _pair(rng, (2, 5, 14, 15), dtype)
    x[0, 1, 3, 4] = np.nan
    xd = cp.asarray(x)
    for k, st, pd, dl, ceil in (((2, 2), (2, 2), (0, 0), (1, 1), False), ((3, 3), (2, 2), (1, 1), (1, 1), True),
                                ((3, 2), (1, 3), (1, 1), (2, 1), True)):
        y, i = cpu.max_pool2d_forward(x, k, st, pd, dl, ceil)
        yd, idd = ops.max_pool2d_forward(xd, k, st, pd, dl, ceil)
        same(yd, y, rtol=0, atol=0), np.testing.assert_array_equal(cp.asnumpy(idd), i)
        g, gd = _pair(rng, y.shape, dtype)
        same(ops.max_pool2d_backward(gd, idd, (14, 15)), cpu.max_pool2d_backward(g, i, (14, 15)))
        if dl == (1, 1):
            for cip in (True, False):
                same(ops.avg_pool2d_forward(xd, k, st, pd, ceil, cip), cpu.avg_pool2d_forward(x, k, st, pd, ceil, cip))
                same(ops.avg_pool2d_backward(gd, (14, 15), k, st, pd, ceil, cip),
                     cpu.avg_pool2d_backward(g, (14, 15), k, st, pd, ceil, cip))
    for h, w, oh, ow in ((14, 15, 4, 6), (3, 2, 7, 5), (8, 8, 1, 1)):  # overlapping, repeated, global windows
        x, xd = _pair(rng, (2, 5, h, w), dtype)
        y = cpu.adaptive_avg_pool2d_forward(x, (oh, ow))
        same(ops.adaptive_avg_pool2d_forward(xd, (oh, ow)), y)
        g, gd = _pair(rng, y.shape, dtype)
        same(ops.adaptive_avg_pool2d_backward(gd, (h, w)), cpu.adaptive_avg_pool2d_backward(g, (h, w)))


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_normalization_kernels_equal_the_cpu_kernels(dtype):
    """Batch norm (training with the running statistics updated in place, evaluation) and layer norm over
    two trailing dimensions, forward and backward."""
    from fastdl.cuda import ops
    cp, cpu, rng = _cp(), backend._C, np.random.default_rng(3)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)

    def same(got, want):
        np.testing.assert_allclose(cp.asnumpy(got), want, **tol)

    x, xd = _pair(rng, (16, 24, 7, 9), dtype)
    g, gd = _pair(rng, x.shape, dtype)
    w, wd = _pair(rng, (24,), dtype)
    b, bd = _pair(rng, (24,), dtype)
    rm, rv = np.zeros(24, dtype), np.ones(24, dtype)
    rmd, rvd = cp.asarray(rm), cp.asarray(rv)
    for training in (True, False):
        want = cpu.batch_norm_forward(x, w, b, rm, rv, training, 0.1, 1e-5)
        got = ops.batch_norm_forward(xd, wd, bd, rmd, rvd, training, 0.1, 1e-5)
        for u, v in zip(got + (rmd, rvd), want + (rm, rv)):
            same(u, v)
        for u, v in zip(ops.batch_norm_backward(gd, xd, wd, got[1], got[2], training),
                        cpu.batch_norm_backward(g, x, w, want[1], want[2], training)):
            same(u, v)
    x, xd = _pair(rng, (6, 33, 4, 65), dtype)
    g, gd = _pair(rng, x.shape, dtype)
    w, wd = _pair(rng, (4, 65), dtype)
    b, bd = _pair(rng, (4, 65), dtype)
    want = cpu.layer_norm_forward(x, (4, 65), w, b, 1e-5)
    got = ops.layer_norm_forward(xd, (4, 65), wd, bd, 1e-5)
    for u, v in zip(got, want):
        same(u, v)
    for u, v in zip(ops.layer_norm_backward(gd, xd, (4, 65), wd, got[1], got[2]),
                    cpu.layer_norm_backward(g, x, (4, 65), w, want[1], want[2])):
        same(u, v)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_additive_attention_equals_the_cpu_kernel(dtype):
    """Additive attention scores and their gradients (a thread per score, per query and per key feature)."""
    from fastdl.cuda import ops
    cp, cpu, rng = _cp(), backend._C, np.random.default_rng(7)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    q, qd = _pair(rng, (3, 17, 40), dtype)
    k, kd = _pair(rng, (3, 23, 40), dtype)
    v, vd = _pair(rng, (40,), dtype)
    np.testing.assert_allclose(cp.asnumpy(ops.additive_attention_forward(qd, kd, vd)),
                               cpu.additive_attention_forward(q, k, v), **tol)
    g, gd = _pair(rng, (3, 17, 23), dtype)
    for u, w in zip(ops.additive_attention_backward(gd, qd, kd, vd), cpu.additive_attention_backward(g, q, k, v)):
        np.testing.assert_allclose(cp.asnumpy(u), w, **tol)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_group_norm_equals_the_cpu_kernel(dtype):
    """Group norm (groups as rows of the layer-norm kernels) forward and backward, with and without the affine."""
    from fastdl.cuda import ops
    cp, cpu, rng = _cp(), backend._C, np.random.default_rng(6)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else TOL[dtype]
    for shape, groups in (((4, 12, 9, 7), 3), ((3, 8, 33), 8), ((5, 6), 1)):
        x, xd = _pair(rng, shape, dtype)
        g, gd = _pair(rng, shape, dtype)
        w, wd = _pair(rng, (shape[1],), dtype)
        b, bd = _pair(rng, (shape[1],), dtype)
        for aff, affd in (((w, b), (wd, bd)), ((None, None), (None, None))):
            want = cpu.group_norm_forward(x, groups, *aff, 1e-5)
            got = ops.group_norm_forward(xd, groups, *affd, 1e-5)
            for u, v in zip(got, want):
                np.testing.assert_allclose(cp.asnumpy(u), v, **tol)
            for u, v in zip(ops.group_norm_backward(gd, xd, groups, affd[0], got[1], got[2]),
                            cpu.group_norm_backward(g, x, groups, aff[0], want[1], want[2])):
                np.testing.assert_allclose(cp.asnumpy(u), v, **tol)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_recurrent_layers_equal_the_cpu_kernel(mode, dtype):
    """Each recurrent mode on the GPU (cuBLAS products, the mode's fused cell kernel) forward and
    backward, both directions, with finished sequences."""
    from fastdl.cuda import ops
    cp, cpu, rng = _cp(), backend._C, np.random.default_rng(4)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    T, B, I, H = 7, 9, 20, 48
    g = {"lstm": 4, "gru": 3}.get(mode, 1)
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(dtype)  # noqa: E731
    args = [f(T, B, I), f(B, H), f(B, H) if mode == "lstm" else None, f(g * H, I), f(g * H, H), f(g * H), f(g * H)]
    dev = [None if a is None else cp.asarray(a) for a in args]
    for ln in (None, rng.integers(1, T + 1, B)):
        for reverse in (False, True):
            want = cpu.rnn_forward(mode, *args, ln, reverse, True)
            got = ops.rnn_forward(mode, *dev, None if ln is None else cp.asarray(ln), reverse, True)
            for u, v in zip(got, want):
                assert (u is None) == (v is None)
                if v is not None:
                    np.testing.assert_allclose(cp.asnumpy(u), v, **tol)
            grads = (f(T, B, H), f(B, H), f(B, H) if mode == "lstm" else None)
            bw = (mode,) + grads + tuple(args) + (want[0], want[3], want[4], want[5], ln, reverse)
            dbw = (mode,) + tuple(None if a is None else cp.asarray(a) for a in grads) + tuple(dev) + (
                got[0], got[3], got[4], got[5], None if ln is None else cp.asarray(ln), reverse)
            for u, v in zip(ops.rnn_backward(*dbw), cpu.rnn_backward(*bw)):
                assert (u is None) == (v is None)
                if v is not None:
                    np.testing.assert_allclose(cp.asnumpy(u), v, **tol)


@gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_attention_equals_the_cpu_kernel(dtype):
    """Scaled dot-product attention on the GPU (a warp per row, online softmax) forward and backward:
    masks shared across heads or per query, causal, dropout with the CPU's mask, a fully masked row,
    heads of 1 to 8 lanes' features, and a long row."""
    from fastdl.cuda import ops
    cp, cpu, rng = _cp(), backend._C, np.random.default_rng(5)
    tol = dict(rtol=2e-4, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-11)
    for B, L, S, E, Ev in ((6, 9, 11, 8, 5), (2, 40, 300, 64, 64), (3, 5, 7, 200, 33)):
        q, k, v, go = ((rng.standard_normal(sh) * 0.5).astype(dtype) for sh in ((B, L, E), (B, S, E), (B, S, Ev),
                                                                                 (B, L, Ev)))
        hidden = np.zeros((2, 1, S), dtype)
        hidden[0, 0, :] = -np.inf  # every key of this slice masked: its rows give 0, no NaN
        for mask, div in ((None, 1), (hidden, 1), (rng.standard_normal((1, L, S)).astype(dtype), 1)):
            for causal, p in ((False, 0.0), (True, 0.3)):
                kw = dict(mask=mask, mask_div=div, is_causal=causal, dropout_p=p, seed=11)
                dkw = dict(kw, mask=None if mask is None else cp.asarray(mask))
                want = cpu.attention_forward(q, k, v, **kw)
                got = ops.attention_forward(cp.asarray(q), cp.asarray(k), cp.asarray(v), **dkw)
                for u, w in zip(got, want):
                    np.testing.assert_allclose(cp.asnumpy(u), w, **tol)
                dev = [cp.asarray(a) for a in (go, q, k, v)] + list(got)
                for u, w in zip(ops.attention_backward(*dev, **dkw), cpu.attention_backward(go, q, k, v, *want, **kw)):
                    np.testing.assert_allclose(cp.asnumpy(u), w, **tol)


@gpu
def test_gradcheck_in_float64_on_the_gpu():
    rng = np.random.default_rng(1)
    x = fastdl.tensor(rng.standard_normal((4, 6))).cuda().requires_grad_()
    w = fastdl.tensor(rng.standard_normal((5, 6))).cuda().requires_grad_()
    t = fastdl.tensor(rng.integers(0, 5, 4)).cuda()

    def f(x, w):
        return nn.functional.cross_entropy((x @ w.T).tanh().log_softmax(dim=1), t, reduction="sum")
    assert fastdl.gradcheck(f, (x, w))


@gpu
def test_lenet5_trains_as_on_the_cpu_and_checkpoints_cross_devices(tmp_path):
    from fastdl import data, datasets, models, train
    (xtr, ytr), (xte, yte) = datasets.mnist_5k()
    xtr, xte = (xtr[:, None] / 255.0).astype(np.float32), (xte[:, None] / 255.0).astype(np.float32)
    acc = {}
    for dev in ("cpu", "cuda"):
        fastdl.manual_seed(0)
        model = models.lenet5(padding=2, activation="relu", pooling="max").to(dev)
        opt = optim.Adam(model.parameters(), lr=2e-3)
        loader = data.DataLoader(data.TensorDataset(xtr, ytr), 64, shuffle=True, seed=0)
        for _ in range(2):
            for xb, yb in loader:
                opt.zero_grad()
                nn.functional.cross_entropy(model(xb.to(dev)), yb.to(dev)).backward()
                opt.step()
        out = train.predict(model.cpu(), xte)
        acc[dev] = float((out.argmax(1) == yte).mean())
        if dev == "cuda":
            fastdl.save({"sd": model.to("cuda").state_dict()}, tmp_path / "ck.npz")
            back = models.lenet5(padding=2, activation="relu", pooling="max")
            back.load_state_dict(fastdl.load(tmp_path / "ck.npz")["sd"])
            np.testing.assert_allclose(train.predict(back, xte[:100]), train.predict(model.cpu(), xte[:100]), rtol=1e-5)
    assert acc["cuda"] > 0.9 and abs(acc["cuda"] - acc["cpu"]) < 0.02, acc
