"""The engine's graph nodes: one node for an op with several outputs, no gradient work for the
outputs nothing used, retained gradients; the training loader's state; the plain-loop conv."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
import fastdl.functional as F
from fastdl import _C, data, nn
from fastdl import reference as R
from fastdl.tensor import _results


def two_outputs(x):
    """(2x, x^2) from one node; records the gradients its backward was given."""
    seen = []

    def bw(grads):
        seen.append(grads)
        g2, gsq = grads
        total = 0
        if g2 is not None:
            total = total + 2 * g2
        if gsq is not None:
            total = total + 2 * x.data * gsq
        return (total,)
    a, b = _results((2 * x.data, x.data * x.data), (x,), bw)
    return a, b, seen


def test_one_node_for_several_outputs():
    x = fastdl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a, b, seen = two_outputs(x)
    assert a._node is b._node and (a._index, b._index) == (0, 1)
    (a.sum() + b.sum()).backward()
    np.testing.assert_allclose(x.grad.data, 2 + 2 * x.data)
    assert len(seen) == 1  # both outputs' gradients reached the node together, once


def test_unused_outputs_get_no_gradient_array():
    x = fastdl.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a, b, seen = two_outputs(x)
    (b * 3).sum().backward()
    assert seen[0][0] is None and seen[0][1] is not None
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_retain_grad_of_one_output():
    x = fastdl.tensor([1.0, 2.0], requires_grad=True)
    a, b, _ = two_outputs(x)
    b.retain_grad()
    (a.sum() + (5 * b).sum()).backward()
    np.testing.assert_allclose(b.grad.data, [5.0, 5.0])
    assert a.grad is None


@pytest.mark.parametrize("mode,use", [(m, u) for m in ("lstm", "gru", "rnn_tanh") for u in ("out", "h", "c")
                                      if u != "c" or m == "lstm"])
def test_rnn_layer_partial_use(rng, monkeypatch, mode, use):
    """Backward through only some of (out, h_n, c_n) equals backward with zero gradients for the rest,
    and the kernel is handed None, not zeros, for the unused ones."""
    T, B, I, H = 4, 3, 5, 6
    G = {"lstm": 4, "gru": 3, "rnn_tanh": 1}[mode]
    arrays = [rng.standard_normal(s) for s in ((T, B, I), (B, H), (B, H), (G * H, I), (G * H, H), (G * H,), (G * H,))]
    calls = []
    real = _C.rnn_backward

    def spy(*args, **kw):
        calls.append(args[1:4])
        return real(*args, **kw)
    monkeypatch.setattr(_C, "rnn_backward", spy)

    def grads(which):
        ts = [fastdl.tensor(a, requires_grad=True) for a in arrays]
        x, h0, c0, wi, wh, bi, bh = ts
        out, h, c = F.rnn_layer(mode, x, h0, c0 if mode == "lstm" else None, wi, wh, bi, bh)
        picked = {"out": out, "h": h, "c": c}
        loss = sum((picked[k] * picked[k]).sum() for k in which)
        loss.backward()
        return [t.grad.data if t.grad is not None else np.zeros_like(t.data) for t in ts]
    got = grads([use])
    dout, dhn, dcn = calls[-1]
    assert (dout is None) == (use != "out") and (dhn is None) == (use != "h")
    assert mode != "lstm" or (dcn is None) == (use != "c")
    # the same through the reference kernel with explicit zero gradients for the unused outputs
    x, h0, c0, wi, wh, bi, bh = arrays
    c0r = c0 if mode == "lstm" else None
    out, hn, cn, gates, cells, hnl = R.rnn_forward(mode, x, h0, c0r, wi, wh, bi, bh, None, False)
    z = {"out": np.zeros_like(out), "h": np.zeros_like(hn), "c": None if cn is None else np.zeros_like(cn)}
    z[use] = 2 * {"out": out, "h": hn, "c": cn}[use]
    dx, dh0, dc0, dwi, dwh, dbi, dbh = R.rnn_backward(mode, z["out"], z["h"], z["c"], x, h0, c0r, wi, wh, bi, bh,
                                                      out, gates, cells, hnl, None, False)
    want = [dx, dh0, dc0 if mode == "lstm" else np.zeros_like(c0), dwi, dwh, dbi, dbh]
    for name, g, w in zip(("x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"), got, want):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-10, err_msg=name)


def test_lstm_module_h_n_only(rng):
    """nn.LSTM's h_n alone drives the loss (a many-to-one model): gradients match PyTorch's layout of use."""
    m = nn.LSTM(3, 4).double()
    x = fastdl.tensor(rng.standard_normal((5, 2, 3)), requires_grad=True)
    _, (h, _) = m(x)
    h.sum().backward()
    g_h_only = x.grad.data.copy()
    x.grad = None
    out, (h, c) = m(x)
    (h.sum() + 0 * out.sum() + 0 * c.sum()).backward()
    np.testing.assert_allclose(g_h_only, x.grad.data, rtol=1e-12, atol=1e-12)


def test_dataloader_state_round_trip():
    ds = data.TensorDataset(np.arange(10.0))
    a = data.DataLoader(ds, batch_size=3, shuffle=True, seed=7)
    next(iter(a))
    state = a.state_dict()
    first = [b[0].data.tolist() for b in a]
    b = data.DataLoader(ds, batch_size=3, shuffle=True, seed=99)
    b.load_state_dict(state)
    assert [t[0].data.tolist() for t in b] == first
    with pytest.raises(ValueError, match="state_dict"):
        b.load_state_dict({"nope": 1})


CONV = [  # n, c, k, h, w, kh, kw, stride, padding (t, l, b, r), dilation, groups, bias
    (2, 3, 4, 7, 6, 3, 2, (1, 1), (0, 0, 0, 0), (1, 1), 1, True),
    (1, 4, 6, 9, 8, 3, 3, (2, 3), (1, 2, 0, 1), (2, 1), 2, False),
    (3, 2, 2, 5, 5, 1, 1, (2, 2), (1, 1, 1, 1), (1, 1), 2, True),
]


@pytest.mark.parametrize("case", CONV)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_plain_loop_convolution(rng, case, dtype):
    """conv_naive.cpp, selected for every call, against the reference."""
    n, c, k, h, w_, kh, kw, stride, pad, dil, g, has_bias = case
    x, w = rng.standard_normal((n, c, h, w_)).astype(dtype), rng.standard_normal((k, c // g, kh, kw)).astype(dtype)
    b = rng.standard_normal(k).astype(dtype) if has_bias else None
    args = (stride, pad, dil, g)
    want_y = R.conv2d_forward(x, w, b, *args)
    gy = rng.standard_normal(want_y.shape).astype(dtype)
    want = (want_y,) + tuple(R.conv2d_backward(gy, x, w, *args))
    assert not _C.conv_naive()
    try:
        assert _C.conv_naive(True)
        got = (_C.conv2d_forward(x, w, b, *args),) + tuple(_C.conv2d_backward(gy, x, w, *args))
    finally:
        _C.conv_naive(False)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for name, u, v in zip(("y", "gx", "gw", "gb"), got, want):
        np.testing.assert_allclose(u, v, err_msg=name, **tol)
