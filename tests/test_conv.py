"""Convolution, pooling and normalization: native vs reference, gradcheck, PyTorch semantics."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
import fastdl.functional as F
from fastdl import _C, nn
from fastdl import reference as R
from helpers import check_op


def r(rng, *shape):
    return rng.standard_normal(shape)


CONV_CASES = [
    # (N, C, H, W), (K, kh, kw), stride, padding, dilation, groups
    ((1, 1, 5, 5), (1, 3, 3), 1, 0, 1, 1),
    ((2, 3, 7, 6), (4, 3, 2), 1, 1, 1, 1),
    ((2, 4, 9, 9), (6, 3, 3), (2, 1), (1, 2), (2, 1), 2),
    ((3, 4, 5, 5), (4, 3, 3), 1, "same", 1, 4),     # depthwise, same
    ((2, 3, 6, 7), (2, 4, 2), 1, "same", (1, 2), 1),  # even kernel: asymmetric same padding
    ((2, 8, 6, 6), (4, 1, 1), 1, 0, 1, 1),          # pointwise (no im2col)
    ((2, 3, 8, 8), (5, 3, 3), 2, "valid", 1, 1),
    ((33, 2, 4, 4), (3, 2, 2), 1, 0, 1, 1),         # many images: shared out over threads
    ((3, 2, 9, 8), (3, 3, 3), 2, 1, 1, 1),          # stride 2: phase planes; 3 images on 2 threads
    ((2, 22, 5, 6), (3, 3, 2), 1, (1, 0), 1, 1),    # C*kh >= 64: split wide columns, kernel-flip input grad
    ((2, 2, 7, 7), (2, 1, 1), 2, 0, 1, 1),          # strided 1x1 (plain im2col)
]


# Kernel paths the small cases above cannot reach (many images in parallel, split columns for deep
# Cg*kh, strides 2 and 3 over phase planes, bands of output rows): native against the reference.
PATH_CASES = [
    # N, C, K, H, W, kh, kw, stride, padding (t, l, b, r), dilation, groups
    (4, 64, 8, 12, 11, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (5, 64, 6, 9, 9, 3, 2, (1, 1), (0, 1, 2, 0), (2, 1), 2),
    (4, 24, 4, 13, 10, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1),
    (3, 6, 6, 17, 16, 5, 3, (3, 2), (2, 0, 1, 1), (1, 2), 3),
    (2, 32, 8, 70, 70, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),   # several bands per image
    (6, 5, 7, 9, 11, 2, 4, (2, 3), (0, 0, 0, 0), (1, 1), 1),
]


@pytest.mark.parametrize("case", PATH_CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_kernel_paths(rng, case, dtype):
    from fastdl import _C
    from fastdl import reference as R
    n, c, k, h, w_, kh, kw, stride, pad, dil, g = case
    x, w, b = r(rng, n, c, h, w_).astype(dtype), r(rng, k, c // g, kh, kw).astype(dtype), r(rng, k).astype(dtype)
    args = (stride, pad, dil, g)
    want = None
    try:
        for limit in (-1, 0):  # small output planes: the whole batch as one GEMM, and the other paths
            _C.conv_small_plane(limit)
            y = _C.conv2d_forward(x, w, b, *args)
            if want is None:
                gy = r(rng, *y.shape).astype(dtype)
                want = (R.conv2d_forward(x, w, b, *args),) + tuple(R.conv2d_backward(gy, x, w, *args))
            tol = 2e-4 if dtype == np.float32 else 1e-10
            got = (y,) + tuple(_C.conv2d_backward(gy, x, w, *args))
            for name, u, v in zip(("y", "gx", "gw", "gb"), got, want):
                np.testing.assert_allclose(u, v, rtol=tol, atol=tol * np.abs(v).max(), err_msg=f"{name}, limit {limit}")
    finally:
        _C.conv_small_plane(-1)


# The direct float32 kernels (vectorised over output channels; AVX-512 and AVX2 builds; forward,
# weight gradient, and the input gradient when it is the flipped kernel's forward) against the
# reference, under every build this CPU can run and with them off (0: im2col + GEMM).
DIRECT_CASES = [
    # N, C, K, H, W, kh, kw, stride, padding (t, l, b, r), dilation, groups, bias
    (3, 6, 16, 14, 14, 5, 5, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),   # LeNet conv2: kernel-row form, 2 rows a tile
    (2, 5, 16, 11, 40, 3, 3, (2, 1), (1, 1, 1, 1), (1, 1), 1, False),  # kernel-row form, stride along the height
    (2, 4, 32, 9, 37, 3, 3, (2, 2), (1, 0, 1, 1), (1, 1), 1, True),    # two vectors a tile, stride 2, odd width
    (1, 3, 48, 8, 9, 3, 2, (1, 3), (0, 1, 1, 0), (2, 1), 1, True),     # one image: rows over the threads
    (2, 8, 32, 7, 7, 5, 4, (1, 1), (2, 1, 2, 2), (1, 2), 2, True),     # groups, dilation, short rows
    (2, 40, 16, 6, 6, 3, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1, True),    # C >= 32: input grad by the flipped kernel
    # strided, C a multiple of 16: with AVX-512 the input gradient phase by phase (stride-1 correlations)
    (2, 16, 32, 13, 12, 3, 3, (2, 2), (1, 1, 1, 1), (1, 1), 1, True),  # ResNet-like, odd height
    (2, 32, 16, 11, 14, 5, 5, (2, 3), (2, 1, 2, 2), (1, 1), 2, False), # groups, unequal strides
    (1, 16, 16, 9, 15, 3, 5, (1, 2), (1, 2, 1, 2), (1, 1), 1, True),   # a phase in the kernel-row form, one image
    (2, 16, 16, 12, 12, 3, 3, (2, 2), (2, 2, 2, 2), (2, 2), 1, False), # phases no tap reads: not taken
    (1, 16, 16, 8, 8, 3, 3, (2, 2), (2, 2, 2, 2), (1, 1), 1, True),    # a phase would crop gy: not taken
]


@pytest.mark.parametrize("case", DIRECT_CASES)
def test_conv2d_direct_builds(rng, case):
    from fastdl import _C
    from fastdl import reference as R
    n, c, k, h, w_, kh, kw, stride, pad, dil, g, has_bias = case
    x, w = r(rng, n, c, h, w_).astype(np.float32), r(rng, k, c // g, kh, kw).astype(np.float32)
    b = r(rng, k).astype(np.float32) if has_bias else None
    args = (stride, pad, dil, g)
    want_y = R.conv2d_forward(x, w, b, *args)
    gy = r(rng, *want_y.shape).astype(np.float32)
    want = (want_y,) + tuple(R.conv2d_backward(gy, x, w, *args)[:2])
    widths = [cap for cap in (16, 8) if _C.conv_direct_width(cap) == cap] + [0]
    _C.conv_small_plane(0)  # these shapes are for the direct kernels, small output planes included
    try:
        for cap in widths:
            assert _C.conv_direct_width(cap) == cap
            got = (_C.conv2d_forward(x, w, b, *args),) + tuple(_C.conv2d_backward(gy, x, w, *args)[:2])
            for name, u, v in zip(("y", "gx", "gw"), got, want):
                np.testing.assert_allclose(u, v, rtol=1e-4, atol=1e-4 * np.abs(v).max(), err_msg=f"{name}, width {cap}")
    finally:
        _C.conv_direct_width(-1)
        _C.conv_small_plane(-1)


def test_conv2d_same_result_on_one_and_two_threads(rng):
    """Images in parallel (serial BLAS per thread) and one image at a time agree."""
    from fastdl import _C
    x, w, b = r(rng, 4, 16, 10, 10), r(rng, 8, 16, 3, 3), r(rng, 8)
    args = ((1, 1), (1, 1, 1, 1), (1, 1), 1)
    gy = r(rng, 4, 8, 10, 10)
    before = fastdl.get_num_threads()
    out = []
    try:
        for t in (1, 2):
            fastdl.set_num_threads(t)
            out.append((_C.conv2d_forward(x, w, b, *args),) + tuple(_C.conv2d_backward(gy, x, w, *args)))
    finally:
        fastdl.set_num_threads(before)
    for u, v in zip(*out):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


@pytest.fixture(params=[-1, 0], ids=["batch-gemm-small-planes", "per-image-paths"])
def small_plane(request):
    """Small output planes run the whole batch as one GEMM (-1: the default); 0 sends them down the
    per-image paths (direct kernels, wide and split columns) that the small cases are written for."""
    from fastdl import _C
    _C.conv_small_plane(request.param)
    yield request.param
    _C.conv_small_plane(-1)


@pytest.mark.parametrize("xs,ws,stride,padding,dilation,groups", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_conv2d(rng, xs, ws, stride, padding, dilation, groups, bias, small_plane):
    x = r(rng, *xs)
    w = r(rng, ws[0], xs[1] // groups, ws[1], ws[2])
    args = (x, w, r(rng, ws[0])) if bias else (x, w)
    small = x.size <= 300

    def fn(x, w, b=None):
        return F.conv2d(x, w, b, stride, padding, dilation, groups)
    check_op(fn, *args, gradcheck=small)


def test_conv2d_gradcheck_strided_grouped(rng):
    x, w, b = r(rng, 2, 4, 6, 5), r(rng, 4, 2, 3, 2), r(rng, 4)
    check_op(lambda x, w, b: F.conv2d(x, w, b, (2, 1), (1, 0), (1, 2), 2), x, w, b)


def test_conv_output_size_formula():
    for n, f, p, s in [(6, 3, 0, 1), (7, 3, 1, 2), (32, 5, 0, 1), (224, 7, 3, 2), (5, 5, 2, 1)]:
        x = fastdl.tensor(np.zeros((1, 1, n, n), np.float32))
        y = F.conv2d(x, np.zeros((1, 1, f, f), np.float32), stride=s, padding=p)
        assert y.shape[-1] == (n + 2 * p - f) // s + 1 == F.conv_output_size(n, f, s, p)


def test_same_padding_keeps_size():
    for k in (1, 2, 3, 4, 5):
        x = fastdl.tensor(np.zeros((1, 2, 9, 8), np.float32))
        assert F.conv2d(x, np.zeros((3, 2, k, k), np.float32), padding="same").shape == (1, 3, 9, 8)
    assert F.pad_amounts("same", (4, 4), (1, 1)) == (1, 1, 2, 2)


def test_vertical_edge_filter():
    img = np.zeros((1, 1, 6, 6), np.float32)
    img[..., :3] = 10  # bright left half, dark right half
    k = np.array([[1, 0, -1]] * 3, np.float32)[None, None]
    y = F.conv2d(fastdl.tensor(img), k).data[0, 0]
    np.testing.assert_array_equal(y, [[0, 30, 30, 0]] * 4)


def test_conv_bad_arguments():
    x = fastdl.tensor(np.zeros((1, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match="input channels"):
        F.conv2d(x, np.zeros((2, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(x, np.zeros((2, 3, 7, 7), np.float32))
    with pytest.raises(ValueError, match="stride"):
        F.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), stride=0)
    with pytest.raises(ValueError, match="padding"):
        F.conv2d(x, np.zeros((2, 3, 3, 3), np.float32), padding=-1)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(3, 4, 3, stride=2, padding="same")
    with pytest.raises(TypeError, match="dtype"):
        F.conv2d(x, np.zeros((2, 3, 3, 3)))


# ------------------------------------------------------------------ pooling
POOL_CASES = [((2, 2), None, 0, 1, False), ((3, 3), (2, 2), (1, 1), 1, False), ((3, 2), (2, 1), (1, 0), 1, True),
              ((2, 2), (2, 2), 0, 1, True), ((3, 3), (1, 1), (1, 1), (2, 2), False), ((1, 1), (2, 2), 0, 1, False)]


@pytest.mark.parametrize("k,s,p,d,ceil", POOL_CASES)
def test_max_pool2d(rng, k, s, p, d, ceil):
    x = r(rng, 2, 3, 7, 9)
    check_op(lambda t: F.max_pool2d(t, k, s, p, d, ceil), x)


@pytest.mark.parametrize("k,s,p,ceil,cip", [((2, 2), None, 0, False, True), ((3, 3), (2, 2), (1, 1), False, True),
                                            ((3, 3), (2, 2), (1, 1), True, False), ((3, 2), (2, 1), (1, 1), True, True)])
def test_avg_pool2d(rng, k, s, p, ceil, cip):
    check_op(lambda t: F.avg_pool2d(t, k, s, p, ceil, cip), r(rng, 2, 3, 7, 9))


@pytest.mark.parametrize("out", [(1, 1), (3, 5), (7, 9), (4, None)])
def test_adaptive_avg_pool2d(rng, out):
    check_op(lambda t: F.adaptive_avg_pool2d(t, out), r(rng, 2, 3, 7, 9))
    x = fastdl.tensor(r(rng, 2, 3, 7, 9))
    np.testing.assert_allclose(F.global_avg_pool2d(x).data, x.data.mean(axis=(2, 3)))


def test_max_pool_nan_and_gradient_routing():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, np.nan, 1.0]]]], np.float32)
    t = fastdl.tensor(x, requires_grad=True)
    y = F.max_pool2d(t, 2)
    assert y.data[0, 0, 0, 0] == 5 and np.isnan(y.data[0, 0, 0, 1])
    F.max_pool2d(fastdl.tensor(np.nan_to_num(x, nan=-1.0), requires_grad=True), 2)
    t2 = fastdl.tensor(np.nan_to_num(x, nan=-1.0), requires_grad=True)
    F.max_pool2d(t2, 2).sum().backward()
    np.testing.assert_array_equal(t2.grad.data[0, 0], [[0, 1, 1, 0], [0, 0, 0, 0]])


@pytest.mark.parametrize("width", [14, 16, 17, 37, 56])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_rows_ties_and_nans(rng, dtype, width):
    """The vectorised 2x2/2 rows (8 outputs at a time, the last 8 of a row overlapping the block
    before them; rows under 8 outputs scalar) pick the same value and index as the reference:
    first maximum on ties, the first NaN over numbers.  Widths: 7 outputs (scalar), 8 (one block),
    8 with an odd input width, 18 and 28 (an overlapping last block)."""
    from fastdl import _C
    from fastdl import reference as R
    x = rng.integers(0, 3, (2, 3, 6, width)).astype(dtype)  # small integers: many ties
    x[rng.random(x.shape) < 0.05] = np.nan
    x[0, 0, :2, :16] = np.nan  # windows of NaNs only
    x[0, 1, :, :] = -np.inf
    args = ((2, 2), (2, 2), (0, 0), (1, 1), False)
    y, idx = _C.max_pool2d_forward(x, *args)
    ry, ridx = R.max_pool2d_forward(x, *args)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)


def test_pool_bad_arguments():
    x = fastdl.tensor(np.zeros((1, 1, 4, 4), np.float32))
    with pytest.raises(ValueError, match="half"):
        F.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="stride"):
        F.max_pool2d(x, 2, stride=0)
    with pytest.raises(ValueError, match="larger"):
        F.avg_pool2d(x, 5)


# ------------------------------------------------------------------ normalization
@pytest.mark.parametrize("shape", [(5, 3), (4, 3, 6), (3, 2, 4, 5)])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm(rng, shape, training):
    c = shape[1]
    rm, rv = r(rng, c) * 0.1, np.abs(r(rng, c)) + 0.5

    def fn(x, w, b):
        return F.batch_norm(x, rm.astype(x.dtype), rv.astype(x.dtype), w, b, training, 0.1, 1e-5)
    check_op(fn, r(rng, *shape) * 2 + 1, r(rng, c), r(rng, c))


def test_batch_norm_running_stats_and_modes(rng):
    bn = nn.BatchNorm2d(3)
    x = (r(rng, 8, 3, 4, 4) * 3 + 2).astype(np.float32)
    y = bn(x).data
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0, atol=1e-5)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1, atol=1e-3)
    m = x.mean(axis=(0, 2, 3))
    v = x.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_mean.data, 0.1 * m, rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.data, 0.9 + 0.1 * v, rtol=1e-5)
    assert bn.num_batches_tracked.data == 1
    bn.eval()
    ye = bn(x).data
    np.testing.assert_allclose(ye, (x - bn.running_mean.data[None, :, None, None]) /
                               np.sqrt(bn.running_var.data[None, :, None, None] + 1e-5), rtol=1e-4, atol=1e-5)
    assert bn.num_batches_tracked.data == 1
    cma = nn.BatchNorm1d(3, momentum=None)
    for k in range(3):
        cma(r(rng, 10, 3).astype(np.float32) + k)
    assert cma.num_batches_tracked.data == 3
    with pytest.raises(ValueError, match="more than 1 value"):
        nn.BatchNorm1d(3)(np.ones((1, 3), np.float32))
    with pytest.raises(ValueError, match="4-D"):
        nn.BatchNorm2d(3)(np.ones((2, 3), np.float32))


@pytest.mark.parametrize("shape,ns", [((4, 7), (7,)), ((2, 3, 5), (5,)), ((2, 3, 4), (3, 4))])
def test_layer_norm(rng, shape, ns):
    check_op(lambda x, w, b: F.layer_norm(x, ns, w, b), r(rng, *shape), r(rng, *ns), r(rng, *ns))
    check_op(lambda x: F.layer_norm(x, ns), r(rng, *shape))


# ------------------------------------------------------------------ against PyTorch
@pytest.mark.filterwarnings("ignore:Using padding=.same.:UserWarning")
def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    TF = torch.nn.functional
    x = r(rng, 2, 4, 9, 8).astype(np.float32)
    w = r(rng, 6, 2, 3, 2).astype(np.float32)
    b = r(rng, 6).astype(np.float32)
    for st, pad, dil in [((2, 1), (1, 0), (1, 2)), (1, "same", 1), (1, "valid", 2)]:
        ours = F.conv2d(x, w, b, st, pad, dil, groups=2).data
        theirs = TF.conv2d(torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(b), st, pad, dil, 2).numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    for k, s, p, ceil in [(3, 2, 1, True), (2, 2, 0, False), (3, 1, 1, False)]:
        np.testing.assert_allclose(F.max_pool2d(x, k, s, p, ceil_mode=ceil).data,
                                   TF.max_pool2d(torch.from_numpy(x), k, s, p, ceil_mode=ceil).numpy())
        for cip in (True, False):
            np.testing.assert_allclose(F.avg_pool2d(x, k, s, p, ceil, cip).data,
                                       TF.avg_pool2d(torch.from_numpy(x), k, s, p, ceil, cip).numpy(), rtol=1e-6)
    np.testing.assert_allclose(F.adaptive_avg_pool2d(x, (4, 3)).data,
                               TF.adaptive_avg_pool2d(torch.from_numpy(x), (4, 3)).numpy(), rtol=1e-6)
    # layers with converted state dicts, train and eval
    tm = torch.nn.Sequential(torch.nn.Conv2d(4, 5, 3, padding=1), torch.nn.BatchNorm2d(5), torch.nn.ReLU(),
                             torch.nn.MaxPool2d(2), torch.nn.Flatten(), torch.nn.LayerNorm(80), torch.nn.Linear(80, 3))
    om = nn.Sequential(nn.Conv2d(4, 5, 3, padding=1), nn.BatchNorm2d(5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                       nn.LayerNorm(80), nn.Linear(80, 3))
    om.load_state_dict({k: v.numpy() for k, v in tm.state_dict().items()})
    tx = torch.from_numpy(x).requires_grad_(True)
    fx = fastdl.tensor(x, requires_grad=True)
    yt, yo = tm(tx), om(fx)
    np.testing.assert_allclose(yo.data, yt.detach().numpy(), rtol=1e-4, atol=1e-5)
    yt.sum().backward()
    yo.sum().backward()
    np.testing.assert_allclose(fx.grad.data, tx.grad.numpy(), rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(om[0].weight.grad.data, tm[0].weight.grad.numpy(), rtol=1e-3, atol=1e-4)
    for k, v in tm.state_dict().items():
        np.testing.assert_allclose(om.state_dict()[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    tm.eval()
    om.eval()
    np.testing.assert_allclose(om(x).data, tm(torch.from_numpy(x)).detach().numpy(), rtol=1e-4, atol=1e-5)


def test_max_pool_window_entirely_in_padding():
    """With dilation a window can hold only padding: its maximum is -inf (as PyTorch), its index -1 on
    both backends (PyTorch reports an index outside the window), and its gradient goes nowhere."""
    x = np.array([[[[1.5], [-2.0]]]], np.float32)  # (1, 1, 2, 1)
    args = ((2, 2), (1, 1), (1, 1), (2, 2), False)
    for kern in (_C, R):
        y, idx = kern.max_pool2d_forward(x, *args)
        assert np.all(np.isneginf(y)) and np.all(idx == -1)
        gx = kern.max_pool2d_backward(np.ones_like(y), idx, (2, 1))
        assert np.array_equal(gx, np.zeros_like(x))
    with pytest.raises(IndexError, match="indices out of range"):
        _C.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), np.full((1, 1, 1, 1), -2), (2, 1))
    torch = pytest.importorskip("torch")
    ty = torch.nn.functional.max_pool2d(torch.from_numpy(x), 2, 1, 1, 2)
    assert np.array_equal(ty.numpy(), y)
