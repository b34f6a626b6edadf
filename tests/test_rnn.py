"""Recurrent layers and embeddings: native vs reference, gradcheck, PyTorch semantics, variable lengths."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
import fastdl.functional as F
from fastdl import nn
from helpers import check_op, each_build

G = {"rnn_tanh": 1, "rnn_relu": 1, "gru": 3, "lstm": 4}


def _flat(o, h, c):
    parts = [o.reshape(-1), h.reshape(-1)] + ([c.reshape(-1)] if c is not None else [])
    return fastdl.cat(parts)


@pytest.mark.parametrize("mode", sorted(G))
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("lengths", [None, np.array([4, 1, 3])])
def test_rnn_layer(rng, mode, reverse, lengths):
    T, B, I, H = 4, 3, 3, 2
    g = G[mode]
    args = [rng.standard_normal((T, B, I)), rng.standard_normal((B, H)), rng.standard_normal((g * H, I)) * 0.7,
            rng.standard_normal((g * H, H)) * 0.7, rng.standard_normal(g * H), rng.standard_normal(g * H)]
    if mode == "lstm":
        args.append(rng.standard_normal((B, H)))

    def fn(x, h0, wi, wh, bi, bh, c0=None):
        return _flat(*F.rnn_layer(mode, x, h0, c0, wi, wh, bi, bh, lengths, reverse))
    check_op(fn, *args)


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_rnn_layer_without_bias(rng, mode):
    g = G[mode]
    args = [rng.standard_normal((3, 2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((g * 4, 3)) * 0.5,
            rng.standard_normal((g * 4, 4)) * 0.5]
    c0 = rng.standard_normal((2, 4)) if mode == "lstm" else None
    check_op(lambda x, h, wi, wh: _flat(*F.rnn_layer(mode, x, h, None if c0 is None else c0.astype(x.dtype), wi, wh)),
             *args)


def test_variable_lengths_are_exact(rng):
    """A padded batch with lengths equals running each sequence alone on its own length."""
    m = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
    lengths = np.array([6, 2, 4])
    x = rng.standard_normal((6, 3, 3)).astype(np.float32)
    x[:, 1][2:] = 99.0  # garbage in the padding must not matter
    x[:, 2][4:] = -99.0
    out, (h, c) = m(x, lengths=lengths)
    for b, n in enumerate(lengths):
        o1, (h1, c1) = m(x[:n, b:b + 1])
        np.testing.assert_allclose(out.data[:n, b], o1.data[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.data[n:, b], 0)
        np.testing.assert_allclose(h.data[:, b], h1.data[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.data[:, b], c1.data[:, 0], rtol=1e-5, atol=1e-6)
    # and the padding gets no gradient
    xt = fastdl.tensor(x, requires_grad=True)
    o, _ = m(xt, lengths=lengths)
    o.sum().backward()
    assert np.all(xt.grad.data[2:, 1] == 0) and np.all(xt.grad.data[4:, 2] == 0)


def test_packed_sequence_api(rng):
    seqs = [rng.standard_normal((n, 3)).astype(np.float32) for n in (5, 2, 3)]
    padded = nn.utils.pad_sequence(seqs, batch_first=True)
    assert padded.shape == (3, 5, 3)
    packed = nn.utils.pack_padded_sequence(padded, [5, 2, 3], batch_first=True)
    gru = nn.GRU(3, 4, batch_first=True)
    out, h = gru(packed)
    unpacked, lengths = nn.utils.pad_packed_sequence(out, batch_first=True)
    assert unpacked.shape == (3, 5, 4) and lengths.tolist() == [5, 2, 3]
    np.testing.assert_allclose(h.data[0, 1], unpacked.data[1, 1], rtol=1e-6)


def test_module_names_shapes_and_cells(rng):
    m = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    names = [n for n, _ in m.named_parameters()]
    assert names[:4] == ["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"]
    assert "weight_ih_l1_reverse" in names and m.weight_ih_l1.shape == (16, 8)
    x = fastdl.tensor(rng.standard_normal((5, 2, 3)).astype(np.float32))
    out, (h, c) = m(x)
    assert out.shape == (5, 2, 8) and h.shape == (4, 2, 4) and c.shape == (4, 2, 4)
    out, h = nn.GRU(3, 4, batch_first=True)(x)  # (B=5, T=2, F=3)
    assert out.shape == (5, 2, 4) and h.shape == (1, 5, 4)  # h_n stays (layers*dirs, B, H)
    out, h = nn.RNN(3, 4)(x[:, 0])  # unbatched (T, F)
    assert out.shape == (5, 4) and h.shape == (1, 4)
    cell = nn.LSTMCell(3, 4)
    h1, c1 = cell(x[0])
    assert h1.shape == (2, 4)
    assert nn.GRUCell(3, 4)(x[0], h1).shape == (2, 4) and nn.RNNCell(3, 4)(x[0, 0]).shape == (4,)


def test_gradient_flows_to_initial_states(rng):
    m = nn.GRU(2, 3, num_layers=2)
    h0 = fastdl.tensor(rng.standard_normal((2, 4, 3)).astype(np.float32), requires_grad=True)
    out, h = m(rng.standard_normal((5, 4, 2)).astype(np.float32), h0)
    (out.sum() + h.sum()).backward()
    assert h0.grad is not None and np.abs(h0.grad.data).sum() > 0


def test_rnn_bad_input():
    m = nn.LSTM(3, 4)
    with pytest.raises(ValueError, match="input_size 3"):
        m(np.zeros((2, 2, 5), np.float32))
    with pytest.raises(ValueError, match="h0 has shape"):
        m(np.zeros((2, 2, 3), np.float32), (np.zeros((1, 3, 4), np.float32), np.zeros((1, 3, 4), np.float32)))
    with pytest.raises(TypeError, match="tuple"):
        m(np.zeros((2, 2, 3), np.float32), np.zeros((1, 2, 4), np.float32))
    with pytest.raises(ValueError, match="lengths"):
        m(np.zeros((2, 2, 3), np.float32), lengths=np.array([3, 1]))
    with pytest.raises(ValueError, match="lengths"):
        m(np.zeros((2, 2, 3), np.float32), lengths=np.array([1, 0]))
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")


# ------------------------------------------------------------------ embeddings
def test_embedding(rng):
    w = rng.standard_normal((7, 4))
    idx = np.array([[0, 6, 3], [3, 3, 1]])
    check_op(lambda w: F.embedding(idx, w), w, expected=lambda w: w[idx])
    # padding_idx blocks its row's gradient on purpose (as PyTorch), so no numerical check there
    check_op(lambda w: F.embedding(idx, w, padding_idx=3), w, expected=lambda w: w[idx], gradcheck=False)
    emb = nn.Embedding(7, 4, padding_idx=3)
    assert np.all(emb.weight.data[3] == 0)
    emb(idx).sum().backward()
    assert np.all(emb.weight.grad.data[3] == 0)
    np.testing.assert_allclose(emb.weight.grad.data[0], 1)
    with pytest.raises(IndexError, match="out of range"):
        emb(np.array([7]))
    with pytest.raises(TypeError, match="integers"):
        emb(np.array([1.0]))


# ------------------------------------------------------------------ against PyTorch
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("given_state", [False, True])
def test_against_torch(rng, kind, layers, bidirectional, batch_first, given_state):
    torch = pytest.importorskip("torch")
    tm = getattr(torch.nn, kind)(4, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    om = getattr(nn, kind)(4, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first)
    om.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((3, 6, 4)).astype(np.float32)
    nd = layers * (2 if bidirectional else 1)
    hx = None
    if given_state:
        h0 = rng.standard_normal((nd, 3 if batch_first else 6, 5)).astype(np.float32)
        hx = (h0, h0 * 0.5) if kind == "LSTM" else h0
    tx = torch.from_numpy(x).requires_grad_(True)
    thx = None if hx is None else (tuple(torch.from_numpy(h).requires_grad_(True) for h in hx) if kind == "LSTM"
                                   else torch.from_numpy(hx).requires_grad_(True))
    ox = fastdl.tensor(x, requires_grad=True)
    ohx = None if hx is None else (tuple(fastdl.tensor(h, requires_grad=True) for h in hx) if kind == "LSTM"
                                   else fastdl.tensor(hx, requires_grad=True))
    to, th = tm(tx, thx)
    oo, oh = om(ox, ohx)
    np.testing.assert_allclose(oo.data, to.detach().numpy(), rtol=1e-4, atol=1e-5)
    if kind == "LSTM":
        tl = to.sum() + (th[0] ** 2).sum() + (th[1] * 3).sum()
        ol = oo.sum() + (oh[0] ** 2).sum() + (oh[1] * 3).sum()
    else:
        tl, ol = to.sum() + (th ** 2).sum(), oo.sum() + (oh ** 2).sum()
    tl.backward()
    ol.backward()
    np.testing.assert_allclose(ox.grad.data, tx.grad.numpy(), rtol=1e-4, atol=1e-5)
    for name, p in om.named_parameters():
        np.testing.assert_allclose(p.grad.data, dict(tm.named_parameters())[name].grad.numpy(), rtol=1e-3, atol=1e-5,
                                   err_msg=name)
    if given_state:
        tg = thx[0].grad if kind == "LSTM" else thx.grad
        og = ohx[0].grad if kind == "LSTM" else ohx.grad
        np.testing.assert_allclose(og.data, tg.numpy(), rtol=1e-4, atol=1e-5)


def test_lengths_against_torch_packed(rng):
    torch = pytest.importorskip("torch")
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    tm = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    om = nn.LSTM(3, 4, num_layers=2, bidirectional=True)
    om.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    x = rng.standard_normal((5, 3, 3)).astype(np.float32)
    lengths = np.array([5, 2, 4])
    tout, (th, tc) = tm(pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths), enforce_sorted=False))
    tout, _ = pad_packed_sequence(tout, total_length=5)
    oout, (oh, oc) = om(x, lengths=lengths)
    np.testing.assert_allclose(oout.data, tout.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(oh.data, th.detach().numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(oc.data, tc.detach().numpy(), rtol=1e-4, atol=1e-5)


def test_cells_against_torch(rng):
    torch = pytest.importorskip("torch")
    for kind in ("LSTMCell", "GRUCell", "RNNCell"):
        tc, oc = getattr(torch.nn, kind)(3, 4), getattr(nn, kind)(3, 4)
        oc.load_state_dict({k: v.detach().numpy() for k, v in tc.state_dict().items()})
        x = rng.standard_normal((2, 3)).astype(np.float32)
        t_out, o_out = tc(torch.from_numpy(x)), oc(x)
        if kind == "LSTMCell":
            t_out, o_out = t_out[1], o_out[1]
        np.testing.assert_allclose(o_out.data, t_out.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_tbptt_and_charlm_sampling():
    from fastdl import data, models, optim
    from fastdl.nn.utils import detach_state
    import pydoc_data.topics as topics
    text = " ".join(list(topics.topics.values())[:20])[:6000]
    vocab = models.CharVocab.from_texts([text])
    stream = data.batchify(vocab.encode(text, boundaries=False), 8)
    fastdl.manual_seed(0)
    lm = models.CharLM(len(vocab), 16, 48)
    opt = optim.Adam(lm.parameters(), lr=5e-3)
    state, losses = None, []
    windows = list(data.tbptt_batches(stream, 25))
    assert all(x.shape == y.shape for x, y in windows)
    np.testing.assert_array_equal(windows[0][1][:, :-1], windows[0][0][:, 1:])
    for _ in range(2):
        for x, y in windows:
            opt.zero_grad()
            logits, state = lm(x, detach_state(state))  # carry the state, cut the graph
            loss = F.cross_entropy(logits.reshape(-1, len(vocab)), y.reshape(-1))
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert state[0].requires_grad and not state[0].is_leaf  # the carried state is part of the last graph...
    cut = detach_state(state)
    assert cut[0].is_leaf and not cut[0].requires_grad  # ...until detached for the next window
    np.testing.assert_array_equal(cut[1].data, state[1].data)
    s = lm.sample(vocab, n=3, temperature=0.8, top_k=5, max_len=20)
    assert len(s) == 3 and all(len(t) <= 20 for t in s)
    with pytest.raises(ValueError, match="temperature"):
        lm.sample(vocab, temperature=0)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("layers,bidirectional,batch_first", [(1, False, False), (2, True, False), (2, False, True),
                                                              (1, True, True)])
def test_modules_native_vs_reference(rng, kind, layers, bidirectional, batch_first):
    """Every layer/direction/layout combination through both backends (the oracle when PyTorch is absent)."""
    fastdl.manual_seed(0)
    m = getattr(nn, kind)(3, 4, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first).double()
    x = rng.standard_normal((5, 3, 3))
    lengths = np.array([3, 2, 1, 3, 2]) if batch_first else np.array([5, 2, 4])
    nd = layers * (2 if bidirectional else 1)
    h0 = rng.standard_normal((nd, 5 if batch_first else 3, 4))
    results = []
    for backend in ("native", "reference"):
        fastdl.set_backend(backend)
        m.zero_grad()
        xt = fastdl.tensor(x, requires_grad=True)
        ht = fastdl.tensor(h0, requires_grad=True)
        hx = (ht, ht * 0.5) if kind == "LSTM" else ht
        out, state = m(xt, hx, lengths=lengths)
        h = state[0] + state[1] if kind == "LSTM" else state
        (out.sum() + (h * h).sum()).backward()
        results.append([out.data, h.data, xt.grad.data, ht.grad.data] + [p.grad.data for p in m.parameters()])
    fastdl.set_backend("native")
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-11)


def test_sequence_cross_entropy(rng):
    logits = rng.standard_normal((2, 4, 5))
    targets = rng.integers(0, 5, (2, 4))
    lengths = np.array([4, 2])
    loss = F.sequence_cross_entropy(logits, targets, lengths)
    keep = F.sequence_mask(lengths)
    flat = logits[keep]
    want = F.cross_entropy(flat, targets[keep]).item()
    assert loss.item() == pytest.approx(want, rel=1e-12)
    x = fastdl.tensor(logits, requires_grad=True)
    F.sequence_cross_entropy(x, targets, lengths).backward()
    assert np.all(x.grad.data[1, 2:] == 0) and np.any(x.grad.data[1, :2] != 0)


def _forward_matches(got, want, msg):
    """The native forward's six results (None where the reference has None) against the reference's."""
    for name, g, v in zip(("out", "h_n", "c_n", "gates", "cells", "hn_linear"), got, want):
        if v is None:
            assert g is None, name
        else:
            np.testing.assert_allclose(g, v, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(v).max()), err_msg=f"{name}, {msg}")


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("H,B,I", [(16, 1, 5), (48, 7, 16), (32, 33, 5), (64, 9, 64), (32, 16, 5), (48, 32, 5),
                                   (16, 80, 5), (32, 100, 16), (16, 3, 37), (32, 16, 21)])
def test_packed_forward(rng, mode, H, B, I):
    """float32 with H a multiple of the SIMD width runs the packed path (packed W_hh, gates per block of
    units, one region per step; BPTT by blocks of rows on the packed W_hh): forward and backward against
    the reference, with lengths, both directions, with and without the saved arrays, under every build
    this CPU has.  An LSTM or GRU whose batch fills whole vectors (16, 32, 80, 100) takes the
    batch-along-vectors forward (groups of at most four vectors on AVX-512, two on AVX2): one group or
    several, some padded (five and seven vectors of 16; ten and thirteen of 8).  An input width that is a
    multiple of the SIMD width (16, 64) has BPTT compute dx step by step too, on W_ih's packed columns.
    Input widths of 21 and 37 pack W_ih's rows in whole blocks of 16 and a remainder."""
    from fastdl import _C
    from fastdl import reference as R
    G = {"lstm": 4, "gru": 3}.get(mode, 1)
    T = 6
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    x, h0, c0 = f(T, B, I), f(B, H), f(B, H)
    wi, wh, bi, bh = f(G * H, I), f(G * H, H), f(G * H), f(G * H)
    lengths = rng.integers(1, T + 1, B)
    c0 = c0 if mode == "lstm" else None

    def check(msg):
        for reverse in (False, True):
            for ln in (None, lengths):
                want = R.rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, ln, reverse)
                got = _C.rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, ln, reverse)
                _forward_matches(got, want, msg)
                dout, dhn = f(T, B, H), f(B, H)
                dcn = f(B, H) if mode == "lstm" else None
                bw = (mode, dout, dhn, dcn, x, h0, c0, wi, wh, bi, bh, want[0], want[3], want[4], want[5], ln,
                      reverse)
                for name, g, v in zip(("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"),
                                      _C.rnn_backward(*bw), R.rnn_backward(*bw)):
                    if v is None:
                        assert g is None, name
                    else:
                        np.testing.assert_allclose(g, v, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(v).max()),
                                                   err_msg=f"{name}, {msg}")
                nodout = (bw[0], None) + bw[2:]  # only h_n (and c_n) used: no output gradient
                for g, v in zip(_C.rnn_backward(*nodout), R.rnn_backward(*nodout)):
                    if v is not None:
                        np.testing.assert_allclose(g, v, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(v).max()))
                lean = _C.rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, ln, reverse, False)
                assert lean[3] is None and lean[4] is None and lean[5] is None
                for g, v in zip(lean[:3], got[:3]):
                    if v is not None:
                        np.testing.assert_array_equal(g, v)
            # without biases (the GRU's b_hn is then absent from its hidden path)
            want = R.rnn_forward(mode, x, h0, c0, wi, wh, None, None, lengths, False)
            for name, g, v in zip(("out", "h_n", "c_n", "gates", "cells", "hn_linear"),
                                  _C.rnn_forward(mode, x, h0, c0, wi, wh, None, None, lengths, False), want):
                if v is not None:
                    np.testing.assert_allclose(g, v, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(v).max()),
                                               err_msg=f"{name}, {msg}, no bias")
    each_build(check)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
@pytest.mark.parametrize("T,B,I,H", [(1, 1, 5, 16), (2, 2, 37, 10), (5, 3, 16, 33), (4, 4, 300, 64), (16, 1, 20, 24)])
def test_short_calls_at_small_batches(rng, mode, T, B, I, H):
    """A short float32 call at a batch of one to four (T B <= 16: a step of generation) takes its products
    from W's rows as they are (rows_dot: blocks of rows against one to four inputs, lanes summed by a
    transpose, the last k and rows one by one), split over the threads for the larger ones: forward
    against the reference under every build, at 1 and 3 threads, with lengths, both directions."""
    from fastdl import _C
    from fastdl import reference as R
    g = G[mode]
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    x, h0, c0 = f(T, B, I), f(B, H), f(B, H) if mode == "lstm" else None
    wi, wh, bi, bh = f(g * H, I), f(g * H, H), f(g * H), f(g * H)
    lengths = rng.integers(1, T + 1, B)

    def check(msg):
        for reverse in (False, True):
            for ln in (None, lengths):
                for b in ((bi, bh), (None, None)):
                    _forward_matches(_C.rnn_forward(mode, x, h0, c0, wi, wh, *b, ln, reverse),
                                     R.rnn_forward(mode, x, h0, c0, wi, wh, *b, ln, reverse), msg)
    each_build(check, threads=(1, 3))


@pytest.mark.parametrize("mode", ["lstm", "gru"])
def test_packed_cells_at_extremes(rng, mode):
    """The fused cells' own sigmoid and tanh (exp of -|x| by a shifter and a polynomial, a reciprocal
    estimate and a Newton step, per SIMD build) over pre-activations up to +-200 (saturated gates,
    arguments past exp's float32 range) match float64 to float32 rounding, forward and backward, and a
    NaN in one row's input makes that row's outputs NaN and leaves the other rows finite."""
    from fastdl import _C
    from fastdl import reference as R
    G = {"lstm": 4, "gru": 3}[mode]
    T, B, I, H = 3, 32, 8, 32
    x = rng.uniform(-1, 1, (T, B, I)).astype(np.float32)
    wi = (rng.standard_normal((G * H, I)) * np.geomspace(0.01, 60, G * H)[:, None]).astype(np.float32)
    wh = (rng.standard_normal((G * H, H)) * 0.3).astype(np.float32)
    h0, c0 = np.zeros((B, H), np.float32), (rng.standard_normal((B, H)) * 3).astype(np.float32)
    c0 = c0 if mode == "lstm" else None
    want64 = R.rnn_forward(mode, *(a if a is None else a.astype(np.float64) for a in (x, h0, c0, wi, wh)),
                           None, None, None, False)
    xn = x.copy()
    xn[1, 5, 0] = np.nan

    def check(msg):
        got = _C.rnn_forward(mode, x, h0, c0, wi, wh, None, None, None, False)
        for name, g, v in zip(("out", "h_n", "c_n"), got[:3], want64[:3]):
            if v is not None:
                np.testing.assert_allclose(g, v, rtol=1e-5, atol=2e-5 * max(1.0, np.abs(v).max()),
                                           err_msg=f"{name}, {msg}")
        dout = rng.standard_normal((T, B, H)).astype(np.float32)
        bw = (mode, dout, None, None, x, h0, c0, wi, wh, None, None, got[0], got[3], got[4], got[5], None, False)
        for name, g, v in zip(("dx", "dh0", "dc0", "dw_ih", "dw_hh"), _C.rnn_backward(*bw), R.rnn_backward(*bw)):
            if v is not None:
                np.testing.assert_allclose(g, v, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(v).max()),
                                           err_msg=f"{name}, {msg}")
        out = _C.rnn_forward(mode, xn, h0, c0, wi, wh, None, None, None, False)[0]
        assert np.isnan(out[1:, 5]).all(), msg
        assert np.isfinite(np.delete(out, 5, axis=1)).all() and np.isfinite(out[0]).all(), msg
    each_build(check)



@pytest.mark.parametrize("B", [16, 48, 64, 80])
def test_lstm_step_tiles(rng, B):
    """The AVX-512 build's fused LSTM step (a tile holds up to three units' four gates: both products
    into its accumulators, then the cell on them): hidden sizes that do not split into whole tiles
    (32 and 16 units: tiles of two and three), one to five vectors of the batch (groups of one to four
    vectors: 80 columns are two groups, of two and three), with lengths, both directions and the saved
    gates and cells, against the reference at 1, 2 and 3 threads: at 2 threads 64 and 80 columns go a
    group to each thread, while 16 and 48 columns (one group), and every batch at 3 threads, split each
    step's units between the threads (a wrong gate in the two-unit tiles alone fails every case)."""
    from fastdl import _C
    from fastdl import reference as R
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    T = 5
    for I, H in ((7, 32), (16, 16)):
        x, h0, c0 = f(T, B, I), f(B, H), f(B, H)
        wi, wh, bi, bh = f(4 * H, I), f(4 * H, H), f(4 * H), f(4 * H)
        lengths = rng.integers(1, T + 1, B)

        def check(msg):
            for reverse in (False, True):
                for ln in (None, lengths):
                    want = R.rnn_forward("lstm", x, h0, c0, wi, wh, bi, bh, ln, reverse)
                    got = _C.rnn_forward("lstm", x, h0, c0, wi, wh, bi, bh, ln, reverse)
                    _forward_matches(got, want, f"{msg}, I={I} H={H}, reverse {reverse}, lengths {ln is not None}")
        each_build(check, threads=(1, 2, 3))


@pytest.mark.parametrize("T,B,I,H", [(3, 150, 600, 32), (31, 13, 21, 48), (12, 40, 16, 64)])
def test_weight_gradients_from_panels(rng, T, B, I, H):
    """The merged weight gradient dW = dxw^T [x | h_{t-1}] of an LSTM or simple RNN, whose left operand
    BPTT packs step by step and whose right operand goes straight into the product's panels (AVX-512):
    [x | h] wider than one block of the product's columns (600 + 32 > 512) and not whole vectors wide
    (21 + 48), T B rows over several blocks of K and not a multiple of the eight rows packed at once,
    split over 1, 2 and 3 threads, with and without the input's gradient (then dxw is one step's
    scratch), against the reference."""
    from fastdl import _C
    from fastdl import reference as R
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    for mode, G in (("lstm", 4), ("rnn_tanh", 1)):
        x, h0, c0 = f(T, B, I), f(B, H), f(B, H) if mode == "lstm" else None
        wi, wh, bi, bh = f(G * H, I), f(G * H, H), f(G * H), f(G * H)
        want = R.rnn_forward(mode, x, h0, c0, wi, wh, bi, bh, None, False)
        bw = (mode, f(T, B, H), f(B, H), f(B, H) if mode == "lstm" else None, x, h0, c0, wi, wh, bi, bh, want[0],
              want[3], want[4], want[5], None, False)
        ref = R.rnn_backward(*bw)

        def check(msg):
            for need_input in (True, False):
                got = _C.rnn_backward(*bw, need_input=need_input)
                for name, g, v in zip(("dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"), got, ref):
                    if v is None or (name == "dx" and not need_input):
                        continue
                    np.testing.assert_allclose(g, v, rtol=1e-4, atol=2e-5 * max(1.0, np.abs(v).max()),
                                               err_msg=f"{mode} {name}, need_input {need_input}, {msg}")
        each_build(check, threads=(1, 2, 3))

def test_inference_keeps_nothing_for_backward(rng):
    """Under no_grad the layer asks the kernel for no saved arrays; the result is the same."""
    m = nn.LSTM(5, 32)
    x = fastdl.tensor(rng.standard_normal((4, 3, 5)).astype(np.float32))
    out, (h, c) = m(x)
    with fastdl.no_grad():
        out2, (h2, c2) = m(x)
    assert not out2.requires_grad
    np.testing.assert_allclose(out2.data, out.data, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(c2.data, c.data, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("mode", ["lstm", "gru", "rnn_tanh"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_directions_side_by_side(rng, mode, threads):
    """rnn_forward_dirs (a bidirectional layer's two directions in one call, a thread each when there
    are threads enough) gives what rnn_forward gives per direction, exactly, and the reference's."""
    from fastdl import _C
    from fastdl import reference as R
    G = {"lstm": 4, "gru": 3}.get(mode, 1)
    T, B, I, H = 5, 7, 6, 32
    f = lambda *s: (rng.standard_normal(s) * 0.5).astype(np.float32)  # noqa: E731
    x = f(T, B, I)
    dirs = [(f(B, H), f(B, H) if mode == "lstm" else None, f(G * H, I), f(G * H, H), f(G * H), f(G * H), rev)
            for rev in (False, True)]
    before = fastdl.get_num_threads()
    fastdl.set_num_threads(threads)
    try:
        for ln in (None, rng.integers(1, T + 1, B)):
            for save in (True, False):
                got = _C.rnn_forward_dirs(mode, x, dirs, ln, save)
                ref = R.rnn_forward_dirs(mode, x, dirs, ln, save)
                assert len(got) == 2
                for g, d, r in zip(got, dirs, ref):
                    one = _C.rnn_forward(mode, x, *d[:6], ln, d[6], save)
                    for a, b, c in zip(g, one, r):
                        if b is None:
                            assert a is None and c is None
                        else:
                            np.testing.assert_array_equal(a, b)
                            np.testing.assert_allclose(a, c, rtol=1e-4, atol=2e-5)
    finally:
        fastdl.set_num_threads(before)


def test_directions_bad_input(rng):
    from fastdl import _C
    from fastdl import reference as R
    x = np.zeros((2, 3, 4), np.float32)
    good = (np.zeros((3, 8), np.float32), None, np.zeros((8, 4), np.float32), np.zeros((8, 8), np.float32), None,
            None, False)
    for kern in (_C, R):
        with pytest.raises(TypeError, match="directions"):
            kern.rnn_forward_dirs("rnn_tanh", x, "abc", None)
        with pytest.raises(TypeError, match=r"directions\[1\]"):
            kern.rnn_forward_dirs("rnn_tanh", x, [good, good[:6]], None)
        with pytest.raises(ValueError, match="weight_hh"):
            kern.rnn_forward_dirs("rnn_tanh", x, [good, good[:3] + (np.zeros((8, 7), np.float32),) + good[4:]], None)
        assert kern.rnn_forward_dirs("rnn_tanh", x, [], None) == []
