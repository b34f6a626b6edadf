"""Conv1d, transposed convolutions, 1-D and adaptive max pooling, GroupNorm, EmbeddingBag and the Transformer
layers: PyTorch's weights loaded, outputs and gradients compared with PyTorch, gradcheck in float64."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import fastdl
import fastdl.nn.functional as F
from fastdl import nn
from helpers import check_op

torch = pytest.importorskip("torch")
TF = torch.nn.functional
R = np.random.default_rng(0)


def _load(m, tm):
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    assert list(m.state_dict()) == list(tm.state_dict())


def _compare(m, tm, *inputs, kwargs=None, tkwargs=None, rtol=1e-10, atol=1e-12, grads=True):
    """Same weights, same inputs: outputs, input gradients and parameter gradients agree."""
    kwargs, tkwargs = kwargs or {}, tkwargs if tkwargs is not None else (kwargs or {})
    ft = [fastdl.tensor(a, requires_grad=a.dtype.kind == "f" and grads) for a in inputs]
    tt = [torch.tensor(a, requires_grad=a.dtype.kind == "f" and grads) for a in inputs]
    y, ty = m(*ft, **kwargs), tm(*tt, **tkwargs)
    y, ty = (y[0], ty[0]) if isinstance(y, tuple) else (y, ty)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=rtol, atol=atol)
    if not grads:
        return
    seed = R.standard_normal(y.shape)
    y.backward(seed)
    ty.backward(torch.tensor(seed))
    for a, b in zip(ft, tt):
        if b.grad is not None:
            np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=rtol, atol=atol)
    tparams = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        if tparams[name].grad is not None:
            np.testing.assert_allclose(p.grad.data, tparams[name].grad.numpy(), rtol=rtol, atol=atol, err_msg=name)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1), dict(padding="same", dilation=2),
                                dict(groups=2, bias=False), dict(padding="valid", stride=3)])
def test_conv1d_matches_pytorch(kw):
    m, tm = nn.Conv1d(4, 6, 3, dtype=np.float64, **kw), torch.nn.Conv1d(4, 6, 3, **kw).double()
    _load(m, tm)
    _compare(m, tm, R.standard_normal((2, 4, 11)))
    assert repr(m).startswith("Conv1d(4, 6, kernel_size=(3,)")


@pytest.mark.parametrize("kw", [dict(), dict(stride=2), dict(stride=2, padding=1, output_padding=1),
                                dict(stride=(2, 3), padding=(0, 1), dilation=(1, 2), groups=2),
                                dict(stride=3, output_padding=2, bias=False)])
def test_conv_transpose2d_matches_pytorch(kw):
    m = nn.ConvTranspose2d(4, 6, (3, 2), dtype=np.float64, **kw)
    tm = torch.nn.ConvTranspose2d(4, 6, (3, 2), **kw).double()
    assert m.weight.shape == tuple(tm.weight.shape)
    _load(m, tm)
    _compare(m, tm, R.standard_normal((2, 4, 5, 6)))
    args = {k: v for k, v in kw.items() if k != "bias"}
    check_op(lambda x, w: F.conv_transpose2d(x, w, **args), R.standard_normal((1, 4, 3, 4)),
             R.standard_normal((4, 6 // args.get("groups", 1), 3, 2)))


def test_conv_transpose1d_and_pools_match_pytorch():
    m, tm = nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1, dtype=np.float64), \
        torch.nn.ConvTranspose1d(3, 4, 3, stride=2, padding=1, output_padding=1).double()
    _load(m, tm)
    _compare(m, tm, R.standard_normal((2, 3, 7)))
    x = R.standard_normal((2, 3, 13))
    for ours, theirs in [(nn.MaxPool1d(3), torch.nn.MaxPool1d(3)), (nn.MaxPool1d(3, 2, 1), torch.nn.MaxPool1d(3, 2, 1)),
                         (nn.MaxPool1d(2, dilation=2, ceil_mode=True), torch.nn.MaxPool1d(2, dilation=2, ceil_mode=True)),
                         (nn.AvgPool1d(4, 3, 2), torch.nn.AvgPool1d(4, 3, 2)),
                         (nn.AvgPool1d(3, 2, 1, count_include_pad=False), torch.nn.AvgPool1d(3, 2, 1, count_include_pad=False)),
                         (nn.AdaptiveAvgPool1d(5), torch.nn.AdaptiveAvgPool1d(5)),
                         (nn.AdaptiveMaxPool1d(4), torch.nn.AdaptiveMaxPool1d(4))]:
        _compare(ours, theirs, x)
    v, i = F.max_pool1d(fastdl.tensor(x), 3, return_indices=True)
    tv, ti = TF.max_pool1d(torch.tensor(x), 3, return_indices=True)
    assert np.array_equal(i.data, ti.numpy())


@pytest.mark.parametrize("size", [(3, 4), 2, (5, None), (7, 9)])
def test_adaptive_max_pool2d_matches_pytorch(size):
    x = R.standard_normal((2, 3, 7, 9))
    x[0, 0, 1, 1] = np.nan
    m, tm = nn.AdaptiveMaxPool2d(size, return_indices=True), torch.nn.AdaptiveMaxPool2d(size, return_indices=True)
    (y, i), (ty, ti) = m(fastdl.tensor(x)), tm(torch.tensor(x))
    np.testing.assert_array_equal(y.data, ty.numpy())
    np.testing.assert_array_equal(i.data, ti.numpy())
    finite = R.standard_normal((2, 3, 7, 9))
    _compare(nn.AdaptiveMaxPool2d(size), torch.nn.AdaptiveMaxPool2d(size), finite)
    check_op(lambda t: F.adaptive_max_pool2d(t, size), finite[:1])


def test_group_norm_matches_pytorch():
    for groups, shape, affine in [(2, (3, 4, 5, 6), True), (4, (2, 4, 7), True), (1, (2, 6, 3, 3), False),
                                  (6, (2, 6, 4), True)]:
        m = nn.GroupNorm(groups, shape[1], affine=affine, dtype=np.float64)
        tm = torch.nn.GroupNorm(groups, shape[1], affine=affine).double()
        if affine:
            with torch.no_grad():
                tm.weight.copy_(torch.tensor(R.standard_normal(shape[1])))
                tm.bias.copy_(torch.tensor(R.standard_normal(shape[1])))
        _load(m, tm)
        _compare(m, tm, R.standard_normal(shape) * 3 + 1, rtol=1e-9, atol=1e-11)
    check_op(lambda x, w, b: F.group_norm(x, 2, w, b), R.standard_normal((2, 4, 3)), R.standard_normal(4),
             R.standard_normal(4))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)


@pytest.mark.parametrize("mode", ["sum", "mean", "max"])
def test_embedding_bag_matches_pytorch(mode):
    w0 = R.standard_normal((10, 4))
    for padding_idx in (None, 2):
        m = nn.EmbeddingBag(10, 4, mode=mode, padding_idx=padding_idx, dtype=np.float64)
        tm = torch.nn.EmbeddingBag(10, 4, mode=mode, padding_idx=padding_idx).double()
        with torch.no_grad():
            tm.weight.copy_(torch.tensor(w0))
        _load(m, tm)
        flat = np.array([1, 2, 4, 5, 4, 3, 2, 9, 2, 2])
        offsets = np.array([0, 2, 2, 5, 8])  # the second bag is empty
        _compare(m, tm, flat, offsets)
        _compare(m, tm, R.integers(0, 10, (3, 4)))
    if mode == "sum":
        idx, psw = R.integers(0, 10, (3, 4)), R.standard_normal((3, 4))
        for padding_idx in (None, 2):
            m = nn.EmbeddingBag(10, 4, mode="sum", padding_idx=padding_idx, dtype=np.float64)
            tm = torch.nn.EmbeddingBag(10, 4, mode="sum", padding_idx=padding_idx).double()
            _load(m, tm)
            pf, pt = fastdl.tensor(psw, requires_grad=True), torch.tensor(psw, requires_grad=True)
            _compare(m, tm, idx, kwargs=dict(per_sample_weights=pf), tkwargs=dict(per_sample_weights=pt))
            np.testing.assert_allclose(pf.grad.data, pt.grad.numpy(), rtol=1e-10)


def test_embedding_bag_errors():
    m = nn.EmbeddingBag(5, 2)
    with pytest.raises(ValueError, match="needs offsets"):
        m(np.array([1, 2]))
    with pytest.raises(IndexError, match="outside"):
        m(np.array([[1, 5]]))
    with pytest.raises(ValueError, match="offsets must start at 0"):
        m(np.array([1, 2, 3]), np.array([1, 2]))
    with pytest.raises(ValueError, match="only supported for mode='sum'"):
        m(np.array([[1, 2]]), per_sample_weights=fastdl.ones(1, 2))


def _masks(L, S, B):
    causal = torch.triu(torch.ones(L, L, dtype=torch.bool), 1)
    kpm = torch.zeros(B, S, dtype=torch.bool)
    kpm[1, -2:] = True
    return causal, kpm


@pytest.mark.parametrize("kw", [dict(), dict(norm_first=True), dict(activation="gelu", batch_first=True),
                                dict(bias=False, layer_norm_eps=1e-6)])
def test_transformer_layers_match_pytorch(kw):
    torch.manual_seed(0)
    d, h, ff = 8, 2, 16
    enc = nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, dtype=np.float64, **kw)
    tenc = torch.nn.TransformerEncoderLayer(d, h, ff, dropout=0.0, **kw).double()
    _load(enc, tenc)
    bf = kw.get("batch_first", False)
    B, L, S = 3, 5, 6
    shape = (B, S, d) if bf else (S, B, d)
    causal, kpm = _masks(S, S, B)
    x = R.standard_normal(shape)
    _compare(enc, tenc, x)
    _compare(enc, tenc, x, kwargs=dict(src_mask=fastdl.tensor(causal.numpy())), tkwargs=dict(src_mask=causal))
    _compare(enc, tenc, x, kwargs=dict(src_key_padding_mask=fastdl.tensor(kpm.numpy())),
             tkwargs=dict(src_key_padding_mask=kpm))
    dec = nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, dtype=np.float64, **kw)
    tdec = torch.nn.TransformerDecoderLayer(d, h, ff, dropout=0.0, **kw).double()
    _load(dec, tdec)
    tcausal, _ = _masks(L, L, B)
    tgt = R.standard_normal((B, L, d) if bf else (L, B, d))
    _compare(dec, tdec, tgt, x, kwargs=dict(tgt_mask=fastdl.tensor(tcausal.numpy()),
                                            memory_key_padding_mask=fastdl.tensor(kpm.numpy())),
             tkwargs=dict(tgt_mask=tcausal, memory_key_padding_mask=kpm))
    _compare(dec, tdec, tgt, x, kwargs=dict(tgt_is_causal=True, tgt_mask=fastdl.tensor(tcausal.numpy())),
             tkwargs=dict(tgt_is_causal=True, tgt_mask=tcausal))


def test_transformer_matches_pytorch_and_loads_both_ways():
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PyTorch's note on nested tensors and batch_first
        tm = torch.nn.Transformer(8, 2, 2, 2, 16, dropout=0.0).double()
    m = nn.Transformer(8, 2, 2, 2, 16, dropout=0.0, dtype=np.float64)
    assert [(k, v.shape) for k, v in m.state_dict().items()] == [(k, tuple(v.shape)) for k, v in tm.state_dict().items()]
    _load(m, tm)
    src, tgt = R.standard_normal((6, 2, 8)), R.standard_normal((4, 2, 8))
    mask = nn.Transformer.generate_square_subsequent_mask(4, dtype="float64")
    np.testing.assert_array_equal(mask.data, torch.nn.Transformer.generate_square_subsequent_mask(4).double().numpy())
    _compare(m, tm, src, tgt, kwargs=dict(tgt_mask=mask), tkwargs=dict(tgt_mask=torch.tensor(mask.data)))
    m2 = nn.Transformer(8, 2, 2, 2, 16, dropout=0.0, dtype=np.float64)
    tm.load_state_dict({k: torch.tensor(v) for k, v in m2.state_dict().items()})  # and back into PyTorch
    _compare(m2, tm, src, tgt, grads=False)
    w = nn.Transformer(16, 2, 1, 1, 32).encoder.layers[0].linear1.weight.data
    assert abs(w.std() - np.sqrt(2 / (16 + 32) / 3) * np.sqrt(3)) < 0.02  # Glorot-uniform, as PyTorch


def test_transformer_trains_and_drops_out():
    fastdl.manual_seed(0)
    m = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.5, batch_first=True)
    x = fastdl.randn(4, 5, 8)
    a, b = m(x), m(x)
    assert not np.allclose(a.data, b.data)  # dropout active in training
    m.eval()
    np.testing.assert_array_equal(m(x).data, m(x).data)
    m = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True)
    head = nn.Linear(8, 1)
    opt = fastdl.optim.Adam(list(m.parameters()) + list(head.parameters()), lr=1e-2)
    target = fastdl.tensor(np.random.default_rng(0).standard_normal((4, 5, 1)).astype(np.float32))
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = F.mse_loss(head(m(x)), target)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    with pytest.raises(ValueError, match="activation"):
        nn.TransformerEncoderLayer(8, 2, activation="swish")
