"""Attention: native kernels against the NumPy reference, gradcheck, PyTorch as a second oracle,
masks, causal blocks, dropout, long sequences and bad input."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import _C, nn
from fastdl import functional as F
from fastdl import reference as R
from helpers import check_op, each_build


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _kernel_pair(rng, dt, B, L, S, E, Ev, causal, mask_kind, p):
    q, k = rng.standard_normal((B, L, E)).astype(dt), rng.standard_normal((B, S, E)).astype(dt)
    v = rng.standard_normal((B, S, Ev)).astype(dt)
    mask, div = None, 1
    if mask_kind == "full":
        mask = np.where(rng.random((1, L, S)) < 0.3, -np.inf, rng.standard_normal((1, L, S))).astype(dt)
    elif mask_kind == "keys":  # (N, 1, S) over N*heads with heads = 2
        mask, div = np.where(rng.random((max(B // 2, 1), 1, S)) < 0.5, -np.inf, 0).astype(dt), 2
    args = (mask, div, causal, None, p, 7)
    out_n, lse_n = _C.attention_forward(q, k, v, *args)
    out_r, lse_r = R.attention_forward(q, k, v, *args)
    tol = dict(rtol=1e-4, atol=2e-5) if dt == np.float32 else dict(rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(out_n, out_r, **tol)
    np.testing.assert_allclose(lse_n, lse_r, **tol)
    g = rng.standard_normal(out_n.shape).astype(dt)
    for a, b in zip(_C.attention_backward(g, q, k, v, out_n, lse_n, *args),
                    R.attention_backward(g, q, k, v, out_r, lse_r, *args)):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=tol["rtol"], atol=tol["atol"] * 10)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("mask_kind", [None, "full", "keys"])
@pytest.mark.parametrize("p", [0.0, 0.3])
def test_kernels_match_reference(rng, dt, causal, mask_kind, p):
    _kernel_pair(rng, dt, 4, 70, 90, 16, 12, causal, mask_kind, p)


@pytest.mark.parametrize("shape", [(2, 130, 1500, 8, 5), (1, 3, 2100, 4, 4), (2, 70, 130, 64, 64), (3, 50, 60, 24, 48), (1, 0, 3, 2, 2), (2, 3, 0, 2, 2),
                                   (2, 3, 4, 0, 3), (2, 3, 4, 3, 0)])
def test_kernels_long_rows_and_empty_sizes(rng, shape):
    """More keys than one block (the online softmax across blocks), and zero-sized dimensions."""
    for causal in (False, True):
        _kernel_pair(rng, np.float32, *shape, causal, "full" if shape[2] else None, 0.0)


def test_sdpa_ops_and_gradcheck(rng):
    q, k, v = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 3, 6, 4)), rng.standard_normal((2, 3, 6, 3))
    check_op(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), q, k, v)
    check_op(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, is_causal=True, scale=0.7), q, k, v)
    m = rng.random((2, 1, 5, 6)) < 0.7
    check_op(lambda a, b, c: F.scaled_dot_product_attention(a, b, c, attn_mask=m), q, k, v)
    # batch broadcast: one key/value set for every head
    check_op(lambda a, b, c: F.scaled_dot_product_attention(a, b, c), q, k[:, :1], v[:1])


def test_masked_softmax_and_additive_ops(rng):
    x = rng.standard_normal((3, 4, 6))
    keep = rng.random((3, 1, 6)) < 0.6
    keep[0, 0] = False  # a row with nothing kept
    check_op(lambda t: F.masked_softmax(t, keep, scale=0.5), x)
    check_op(lambda t: F.masked_softmax(t, keep.transpose(0, 2, 1), dim=1), x.transpose(0, 2, 1))
    qp, kp, v = rng.standard_normal((2, 3, 5)), rng.standard_normal((2, 4, 5)), rng.standard_normal(5)
    check_op(F.additive_attention, qp, kp, v,
             expected=lambda a, b, c: np.tanh(a[:, :, None, :] + b[:, None, :, :]) @ c)
    check_op(F.additive_attention, qp[:, 0], kp, v)
    # the mask broadcasts to x's shape, never beyond it (found by the fuzzer: (1, 4) against a (3, 4) mask)
    with pytest.raises(ValueError, match=r"mask of shape \(3, 4\) does not broadcast to x's \(1, 4\)"):
        F.masked_softmax(x[0, :1, :4], np.ones((3, 4), bool))


def test_fully_masked_rows_give_zeros_and_finite_gradients(rng):
    q = fastdl.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
    k = fastdl.tensor(rng.standard_normal((2, 5, 4)), requires_grad=True)
    v = fastdl.tensor(rng.standard_normal((2, 5, 3)), requires_grad=True)
    m = np.ones((2, 3, 5), bool)
    m[0, 1] = False
    for backend in ("native", "reference"):
        fastdl.set_backend(backend)
        try:
            for t in (q, k, v):
                t.grad = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            assert np.all(out.numpy()[0, 1] == 0) and np.isfinite(out.numpy()).all()
            out.sum().backward()
            assert all(np.isfinite(t.grad.numpy()).all() for t in (q, k, v))
            assert np.all(q.grad.numpy()[0, 1] == 0)
        finally:
            fastdl.set_backend("native")
    w = F.masked_softmax(np.ones((2, 3)), np.zeros((2, 3), bool))
    assert np.all(w.numpy() == 0)


def test_dropout_is_seeded_and_reproducible(rng):
    q, k, v = (rng.standard_normal((2, 4, 8, 8)).astype(np.float32) for _ in range(3))
    fastdl.manual_seed(3)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    fastdl.manual_seed(3)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    c = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5).numpy()
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    full = F.scaled_dot_product_attention(q, k, v).numpy()
    assert not np.allclose(a, full)


def test_thread_count_does_not_change_results(rng):
    q, k, v = (rng.standard_normal((6, 200, 16)).astype(np.float32) for _ in range(3))
    n = fastdl.get_num_threads()
    try:
        fastdl.set_num_threads(1)
        one = _C.attention_forward(q, k, v, None, 1, True, None, 0.2, 5)
        fastdl.set_num_threads(2)
        two = _C.attention_forward(q, k, v, None, 1, True, None, 0.2, 5)
    finally:
        fastdl.set_num_threads(n)
    assert all(np.array_equal(a, b) for a, b in zip(one, two))


def test_sdpa_against_torch(rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    q, k = torch.randn(2, 3, 5, 4, dtype=torch.float64), torch.randn(2, 3, 6, 4, dtype=torch.float64)
    v = torch.randn(2, 3, 6, 7, dtype=torch.float64)
    masks = [None, torch.rand(5, 6) < 0.7, torch.rand(2, 1, 5, 6) < 0.7, torch.randn(1, 3, 1, 6),
             torch.randn(2, 3, 5, 6)]
    for m in masks:
        for causal, scale in ((False, None), (True, 0.3)):
            if causal and m is not None:
                continue
            args = [t.clone().requires_grad_() for t in (q, k, v)]
            want = tf.scaled_dot_product_attention(*args, attn_mask=m, is_causal=causal, scale=scale)
            want.sum().backward()
            mine = [fastdl.tensor(t.detach().numpy(), requires_grad=True) for t in (q, k, v)]
            got = F.scaled_dot_product_attention(*mine, attn_mask=None if m is None else m.numpy(),
                                                 is_causal=causal, scale=scale)
            got.sum().backward()
            np.testing.assert_allclose(got.numpy(), want.detach().numpy(), atol=1e-12)
            for a, b in zip(mine, args):
                np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-12)


MHA_CASES = [dict(), dict(batch_first=True), dict(kdim=6, vdim=5), dict(add_bias_kv=True), dict(bias=False),
             dict(add_zero_attn=True)]


@pytest.mark.parametrize("kw", MHA_CASES, ids=[",".join(c) or "default" for c in MHA_CASES])
def test_multihead_attention_against_torch(rng, kw):
    torch = pytest.importorskip("torch")
    E, H, L, S, N = 8, 2, 4, 5, 3
    torch.manual_seed(0)
    tm = torch.nn.MultiheadAttention(E, H, **kw).double()
    fm = nn.MultiheadAttention(E, H, dtype=np.float64, **kw)
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    assert list(fm.state_dict()) == list(tm.state_dict())
    tm.load_state_dict({k: torch.from_numpy(v) for k, v in fm.state_dict().items()})  # and back
    bf = kw.get("batch_first", False)
    shp = (lambda n, d: (N, n, d)) if bf else (lambda n, d: (n, N, d))
    q, k = rng.standard_normal(shp(L, E)), rng.standard_normal(shp(S, kw.get("kdim", E)))
    v = rng.standard_normal(shp(S, kw.get("vdim", E)))
    kpm = np.zeros((N, S), bool)
    kpm[0, -2:] = True
    am = rng.random((L, S)) < 0.2
    for need, avg in ((True, True), (True, False), (False, True)):
        tq = torch.tensor(q, requires_grad=True)
        to, tw = tm(tq, torch.tensor(k), torch.tensor(v), key_padding_mask=torch.tensor(kpm),
                    attn_mask=torch.tensor(am), need_weights=need, average_attn_weights=avg)
        to.sum().backward()
        fq = fastdl.tensor(q, requires_grad=True)
        fo, fw = fm(fq, k, v, key_padding_mask=kpm, attn_mask=am, need_weights=need, average_attn_weights=avg)
        fo.sum().backward()
        np.testing.assert_allclose(fo.numpy(), to.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(fq.grad.numpy(), tq.grad.numpy(), atol=1e-12)
        assert (fw is None) == (tw is None)
        if need:
            np.testing.assert_allclose(fw.numpy(), tw.detach().numpy(), atol=1e-12)
    if "kdim" not in kw:  # self-attention: one tensor as query, key and value (the fused projection)
        tq = torch.tensor(q, requires_grad=True)
        to, _ = tm(tq, tq, tq, need_weights=False)
        to.sum().backward()
        fq = fastdl.tensor(q, requires_grad=True)
        fo, _ = fm(fq, fq, fq, need_weights=False)
        fo.sum().backward()
        np.testing.assert_allclose(fo.numpy(), to.detach().numpy(), atol=1e-12)
        np.testing.assert_allclose(fq.grad.numpy(), tq.grad.numpy(), atol=1e-12)
        for name, prm in fm.named_parameters():
            np.testing.assert_allclose(prm.grad.numpy(), dict(tm.named_parameters())[name].grad.numpy(), atol=1e-10)


def test_multihead_attention_causal_unbatched_and_float_masks(rng):
    torch = pytest.importorskip("torch")
    tm = torch.nn.MultiheadAttention(8, 4).double()
    fm = nn.MultiheadAttention(8, 4, dtype=np.float64)
    fm.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((5, 8))
    causal = torch.nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    to, tw = tm(*(torch.tensor(x),) * 3, attn_mask=causal, is_causal=True)
    for need in (True, False):
        fo, fw = fm(x, x, x, is_causal=True, need_weights=need)  # no mask needed for the causal hint
        np.testing.assert_allclose(fo.numpy(), to.detach().numpy(), atol=1e-12)
        fo2, _ = fm(x, x, x, attn_mask=causal.numpy(), need_weights=need)
        np.testing.assert_allclose(fo2.numpy(), to.detach().numpy(), atol=1e-12)
        if need:
            np.testing.assert_allclose(fw.numpy(), tw.detach().numpy(), atol=1e-12)


def test_multihead_attention_training_backward_and_dropout(rng):
    fastdl.manual_seed(0)
    m = nn.MultiheadAttention(16, 4, dropout=0.2, batch_first=True)
    x = fastdl.tensor(rng.standard_normal((2, 7, 16)).astype(np.float32), requires_grad=True)
    for need in (True, False):
        out, _ = m(x, x, x, need_weights=need)
        out.sum().backward()
        assert out.shape == (2, 7, 16) and all(p.grad is not None for p in m.parameters())
    m.eval()
    a, _ = m(x, x, x)
    b, _ = m(x, x, x, need_weights=False)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_additive_attention_layer(rng):
    att = nn.AdditiveAttention(6, 4, 5, dtype=np.float64)
    q, keys = rng.standard_normal((3, 6)), rng.standard_normal((3, 7, 4))
    pad = np.zeros((3, 7), bool)
    pad[1, 4:] = True
    ctx, w = att(q, keys, key_padding_mask=pad)
    assert ctx.shape == (3, 4) and w.shape == (3, 7)
    np.testing.assert_allclose(w.numpy().sum(1), 1.0)
    assert np.all(w.numpy()[1, 4:] == 0)
    s = np.tanh((q @ att.query_proj.weight.numpy().T)[:, None] + keys @ att.key_proj.weight.numpy().T
                + att.key_proj.bias.numpy()) @ att.v.numpy()
    s[pad] = -np.inf
    e = np.exp(s - s.max(1, keepdims=True))
    np.testing.assert_allclose(w.numpy(), e / e.sum(1, keepdims=True), atol=1e-12)
    ctx3, w3 = att(rng.standard_normal((3, 2, 6)), keys)
    assert ctx3.shape == (3, 2, 4) and w3.shape == (3, 2, 7)
    fn = lambda qq, kk: att(qq, kk, key_padding_mask=pad)[0]  # noqa: E731
    assert fastdl.gradcheck(fn, [fastdl.tensor(q, requires_grad=True), fastdl.tensor(keys, requires_grad=True)])


@pytest.mark.parametrize("call, err, msg", [
    (lambda: nn.MultiheadAttention(10, 3), ValueError, "divisible by num_heads"),
    (lambda: nn.MultiheadAttention(0, 1), ValueError, "embed_dim must be >= 1"),
    (lambda: nn.MultiheadAttention(8, 2, dropout=1.0), ValueError, "dropout"),
    (lambda: nn.MultiheadAttention(8, 2)(np.ones((3, 2, 6), "f4"), np.ones((3, 2, 8), "f4"),
                                         np.ones((3, 2, 8), "f4")), ValueError, "embed_dim=8"),
    (lambda: nn.MultiheadAttention(8, 2)(*(np.ones((3, 2, 8), "f4"),) * 3, key_padding_mask=np.ones((3, 2), bool)),
     ValueError, "key_padding_mask must have shape"),
    (lambda: nn.MultiheadAttention(8, 2)(*(np.ones((3, 2, 8), "f4"),) * 3, attn_mask=np.ones((2, 3), bool)),
     ValueError, "attn_mask must have shape"),
    (lambda: nn.MultiheadAttention(8, 2)(*(np.ones((3, 2, 8), "f4"),) * 3, attn_mask=np.ones((3, 3), int)),
     TypeError, "boolean or float"),
    (lambda: F.scaled_dot_product_attention(np.ones((2, 3, 4)), np.ones((2, 5, 3)), np.ones((2, 5, 4))),
     ValueError, "key's last dimension"),
    (lambda: F.scaled_dot_product_attention(np.ones((2, 3, 4)), np.ones((2, 5, 4)), np.ones((2, 6, 4))),
     ValueError, "key has 5 positions but value has 6"),
    (lambda: F.scaled_dot_product_attention(np.ones((2, 3, 4)), np.ones((3, 5, 4)), np.ones((3, 5, 4))),
     ValueError, "do not broadcast"),
    (lambda: F.scaled_dot_product_attention(*(np.ones((2, 3, 4)),) * 3, attn_mask=np.ones((4, 3), bool)),
     ValueError, "does not broadcast"),
    (lambda: F.scaled_dot_product_attention(*(np.ones((2, 3, 4)),) * 3, attn_mask=np.ones((3, 3), bool),
                                            is_causal=True), ValueError, "not both"),
    (lambda: F.scaled_dot_product_attention(*(np.ones((2, 3, 4)),) * 3, dropout_p=1.0), ValueError, "dropout_p"),
    (lambda: F.scaled_dot_product_attention(np.ones(4), np.ones((2, 4)), np.ones((2, 4))), ValueError,
     "query must have at least 2"),
    (lambda: F.masked_softmax(np.ones((2, 3)), np.ones((3, 2), bool)), ValueError, "does not broadcast"),
    (lambda: nn.AdditiveAttention(4, 4, 0), ValueError, "hidden_dim"),
    (lambda: nn.AdditiveAttention(4, 4, 3)(np.ones((2, 4)), np.ones((3, 5, 4))), ValueError, "same N"),
])
def test_bad_input_names_the_argument(call, err, msg):
    with pytest.raises(err, match=msg):
        call()


def test_nan_in_gives_nan_out(rng):
    """A NaN key poisons exactly the rows that see it, on both backends, causal or not."""
    q, k = rng.standard_normal((2, 70, 16)).astype(np.float32), rng.standard_normal((2, 90, 16)).astype(np.float32)
    v = rng.standard_normal((2, 90, 8)).astype(np.float32)
    k[0, 5, 3] = np.nan
    for causal in (False, True):
        a, la = _C.attention_forward(q, k, v, None, 1, causal, None, 0.0, 0)
        b, lb = R.attention_forward(q, k, v, None, 1, causal, None, 0.0, 0)
        assert np.array_equal(np.isnan(a), np.isnan(b)) and np.array_equal(np.isnan(la), np.isnan(lb))
        assert np.isnan(a[0, 5:]).all() and not np.isnan(a[1]).any()
        assert np.isnan(a[0, :5]).any() != causal  # causally, rows before key 5 never see it


def _every_build_matches(q, k, v, g, args, out_r, lse_r, grads_r):
    """The native forward (output, log-sum-exp) and backward on every build against given answers."""
    def check(msg):
        out, lse = _C.attention_forward(q, k, v, *args)
        np.testing.assert_allclose(out, out_r, rtol=1e-4, atol=2e-5, err_msg=msg)
        np.testing.assert_allclose(lse, lse_r, rtol=1e-5, atol=1e-4, err_msg=msg)
        for a, b in zip(_C.attention_backward(g, q, k, v, out, lse, *args), grads_r):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=2e-4, err_msg=msg)
    each_build(check)


def test_packed_rows_over_the_whole_exponent_range(rng):
    """Scores that differ by hundreds (scale 8 on E=16: probabilities from 1 down past float32's
    smallest normal, 2^-126, where the packed rows' exponentials give exactly 0), without a mask (the
    rows in base 2) and with -inf in it (base e): every build against the reference evaluated in
    float64 on the same float32 inputs."""
    B, L, S, E, Ev = 2, 37, 300, 16, 8
    q, k = rng.standard_normal((B, L, E)).astype(np.float32), rng.standard_normal((B, S, E)).astype(np.float32)
    v, g = rng.standard_normal((B, S, Ev)).astype(np.float32), rng.standard_normal((B, L, Ev)).astype(np.float32)
    wide = (lambda a: None if a is None else a.astype(np.float64))
    for mask in (None, np.where(rng.random((1, L, S)) < 0.2, -np.inf, 0.0).astype(np.float32)):
        args = (mask, 1, False, 8.0, 0.0, 0)
        out_r, lse_r = R.attention_forward(wide(q), wide(k), wide(v), wide(mask), *args[1:])
        grads_r = R.attention_backward(wide(g), wide(q), wide(k), wide(v), out_r, lse_r, wide(mask), *args[1:])
        assert (lse_r[..., None] - 8.0 * np.einsum("ble,bse->bls", q, k) > 126 * np.log(2)).mean() > 0.3
        _every_build_matches(q, k, v, g, args, out_r, lse_r, grads_r)


def test_masks_of_float32_lowest(rng):
    """Padding masked with float32's lowest finite value (as many libraries do) rather than -inf: a row
    whose keys are all so masked attends uniformly among them (the reference's answer), not to nothing;
    forward and backward on every build, also past one block of keys."""
    B, L, S, E = 2, 20, 1100, 16
    q, k, v = (rng.standard_normal((B, n, E)).astype(np.float32) for n in (L, S, S))
    low = np.finfo(np.float32).min
    mask = np.where(rng.random((1, L, S)) < 0.3, low, 0.0).astype(np.float32)
    mask[0, 3] = low      # a whole row of padding
    mask[0, 5] = -1e30    # and one of another large finite value
    mask[0, 7, :1000] = low
    args = (mask, 1, False, None, 0.0, 0)
    out_r, lse_r = R.attention_forward(q, k, v, *args)
    g = rng.standard_normal(out_r.shape).astype(np.float32)
    grads_r = R.attention_backward(g, q, k, v, out_r, lse_r, *args)
    assert np.abs(out_r[0, 3]).max() > 0 and np.isfinite(lse_r).all()
    _every_build_matches(q, k, v, g, args, out_r, lse_r, grads_r)


@pytest.mark.parametrize("shape", [(4, 70, 90, 16, 12), (2, 130, 1100, 64, 64), (3, 40, 50, 24, 24), (2, 75, 140, 32, 40),
                                   (2, 40, 1040, 16, 8), (3, 9, 7, 8, 8)])
def test_every_packed_width_matches_the_reference(rng, shape):
    """The packed tile path at each vector width this CPU runs (16: AVX-512, 8: AVX2), and the BLAS
    path (width 0), against the reference: masks, causal, dropout, few and many heads, head sizes
    that take one to four vectors of a tile row, key panels of one to four vectors (7 keys; 1040
    keys in blocks of two-vector panels)."""
    def check(msg):
        for causal, mask_kind, p in ((False, None, 0.0), (True, "keys", 0.2), (False, "full", 0.0)):
            _kernel_pair(rng, np.float32, *shape, causal, mask_kind, p)
    each_build(check)
