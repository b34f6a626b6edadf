"""The engine is device-agnostic: run on ``array_api_strict`` arrays (a storage type that offers only the
array API standard), with a kernel table made of the NumPy reference twins on host copies, the engine,
a small CNN and an LSTM training step and every optimizer give the results of the CPU run.  NumPy is
made unable to read the strict arrays, so any ``np.`` call left on tensor data fails here."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import backend, nn, optim, reference

xps = pytest.importorskip("array_api_strict")
Array = type(xps.asarray(0.0))


def _to_numpy(a):
    return np.from_dlpack(a)


def _from_numpy(h, index=None):
    return xps.asarray(np.asarray(h))


@pytest.fixture
def strict(monkeypatch):
    """The "strict" device, registered for one test; NumPy cannot convert its arrays meanwhile."""
    def refuse(self, *a, **k):
        raise TypeError("NumPy touched an array_api_strict array: an np. call on tensor data")
    monkeypatch.setattr(Array, "__array__", refuse)
    monkeypatch.setattr(Array, "__buffer__", refuse)
    table = backend.host_table(reference, _to_numpy, _from_numpy)
    backend.register_device(backend.ArrayBackend("strict", xps, table, _from_numpy, _to_numpy))
    fastdl.set_backend("reference")  # the CPU twin of the run: the same kernels
    yield fastdl.device("strict")
    backend.unregister_device("strict")


def _host(t):
    return _to_numpy(t.data) if isinstance(t.data, Array) else np.asarray(t.data)


def _check_on_device(tensors):
    for t in tensors:
        assert isinstance(t.data, Array), f"a tensor of shape {t.shape} left the device"


def test_device_api(strict):
    x = fastdl.tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3))
    assert x.device == "cpu" and str(x.device) == "cpu"
    y = x.to(strict)
    assert isinstance(y.data, Array) and y.device == strict and y.shape == (2, 3) and y.dtype == np.float32
    np.testing.assert_array_equal(_host(y), x.numpy())
    np.testing.assert_array_equal(y.cpu().numpy(), x.numpy())
    with pytest.raises(RuntimeError, match="expected all tensors on one device, got cpu and strict"):
        x + y
    with pytest.raises(RuntimeError, match="expected all (arrays|tensors) on one device, got cpu and strict"):
        fastdl.tensor(np.ones((3, 2), np.float32)) @ y


def test_engine_ops_and_gradients(strict):
    rng = np.random.default_rng(0)
    a0 = rng.standard_normal((3, 4)).astype(np.float32)
    b0 = rng.standard_normal((4,)).astype(np.float32)

    def run(dev):
        a = fastdl.tensor(a0).to(dev).requires_grad_()
        b = fastdl.tensor(b0).to(dev).requires_grad_()
        y = ((a * b + 1).exp().log() - a / (b * b + 1)).tanh().sigmoid()
        z = (y @ a.T).relu().sum(dim=1, keepdim=True) * y.mean(dim=0)
        w = z.reshape(-1)[2:7].sum() + (a ** 2).max() + (a.transpose(0, 1).abs() + 1).sqrt().sum()
        w = w + z.softmax(dim=1).sum() + y.var() + a[1].sum() + a[:, 1:3].abs().sum()
        w.backward()
        return w, a.grad, b.grad, [y, z]
    got, want = run(strict), run("cpu")
    _check_on_device([got[0], got[1], got[2], *got[3]])
    for g, w in zip(got[:3], want[:3]):
        np.testing.assert_allclose(_host(g), _host(w), rtol=1e-5, atol=1e-6)


def _train(model_fn, x0, y0, loss_fn, dev, steps=2, opt_fn=None):
    fastdl.manual_seed(0)
    model = model_fn().to(dev)
    opt = (opt_fn or (lambda p: optim.SGD(p, lr=0.1, momentum=0.9)))(model.parameters())
    x, y = fastdl.tensor(x0).to(dev), fastdl.tensor(y0).to(dev)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        assert loss.device == dev
        loss.backward()
        opt.step()
        losses.append(float(loss.cpu().item()))
    return model, opt, losses


def _same_training(model_fn, x0, y0, loss_fn, dev, **kw):
    m1, o1, l1 = _train(model_fn, x0, y0, loss_fn, dev, **kw)
    m0, _, l0 = _train(model_fn, x0, y0, loss_fn, "cpu", **kw)
    _check_on_device(list(m1.parameters()) + [p.grad for p in m1.parameters()])
    for st in o1.state.values():
        _check_on_device([v for v in st.values() if isinstance(v, fastdl.Tensor)])
        assert not any(isinstance(v, np.ndarray) and v.ndim for v in st.values()), "optimizer state on the host"
    np.testing.assert_allclose(l1, l0, rtol=1e-5)
    for (n, p1), p0 in zip(m1.named_parameters(), m0.parameters()):
        np.testing.assert_allclose(_host(p1), _host(p0), rtol=1e-5, atol=1e-6, err_msg=n)
    return m1


def test_cnn_training_step(strict):
    rng = np.random.default_rng(1)
    x0 = rng.standard_normal((4, 1, 12, 12)).astype(np.float32)
    y0 = rng.integers(0, 3, 4)
    _same_training(lambda: nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 4, 3),
                                         nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16, 3)),
                   x0, y0, nn.CrossEntropyLoss(), strict)


class _LSTMNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.LSTM(5, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_lstm_training_step(strict):
    rng = np.random.default_rng(2)
    x0 = rng.standard_normal((3, 6, 5)).astype(np.float32)
    y0 = rng.standard_normal((3, 2)).astype(np.float32)
    _same_training(_LSTMNet, x0, y0, nn.MSELoss(), strict)


OPTIMIZERS = {
    "sgd": lambda p: optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    "adam": lambda p: optim.Adam(p, lr=0.01, amsgrad=True),
    "adamw": lambda p: optim.AdamW(p, lr=0.01),
    "rmsprop": lambda p: optim.RMSprop(p, lr=0.01, momentum=0.5, centered=True),
    "adagrad": lambda p: optim.Adagrad(p, lr=0.1),
    "adadelta": lambda p: optim.Adadelta(p),
    "adamax": lambda p: optim.Adamax(p, lr=0.01),
    "nadam": lambda p: optim.NAdam(p, lr=0.01),
    "radam": lambda p: optim.RAdam(p, lr=0.01),
}


def test_lbfgs_on_the_device(strict):
    """L-BFGS (its vectors on the host, the parameters on the device) takes the CPU run's steps."""
    rng = np.random.default_rng(5)
    x0, y0 = rng.standard_normal((8, 3)).astype(np.float32), rng.standard_normal((8, 1)).astype(np.float32)
    res = {}
    for dev in (strict, "cpu"):
        fastdl.manual_seed(0)
        m = nn.Linear(3, 1).to(dev)
        opt = optim.LBFGS(m.parameters(), lr=0.5, max_iter=5, line_search_fn="strong_wolfe")
        x, y = fastdl.tensor(x0).to(dev), fastdl.tensor(y0).to(dev)

        def closure():
            opt.zero_grad()
            loss = ((m(x) - y) ** 2).mean()
            loss.backward()
            return loss
        for _ in range(2):
            opt.step(closure)
        loss = closure()  # a one-element tensor on the device as a Python number
        assert isinstance(float(loss), float) and bool(loss > 0) in (True, False) and int(loss * 0) == 0
        assert all(isinstance(p.data, Array) for p in m.parameters()) or dev == "cpu"
        res[str(dev)] = [_host(p) for p in m.parameters()]
    for a, b in zip(res["strict"], res["cpu"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer(strict, name):
    rng = np.random.default_rng(3)
    x0 = rng.standard_normal((6, 4)).astype(np.float32)
    y0 = rng.integers(0, 3, 6)
    _same_training(lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3)), x0, y0, nn.CrossEntropyLoss(),
                   strict, steps=3, opt_fn=OPTIMIZERS[name])


def test_state_dict_save_and_load_across_devices(strict, tmp_path):
    fastdl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ref = model.state_dict()
    model.to(strict)
    sd = model.state_dict()  # NumPy copies, from the device
    assert all(type(v) is np.ndarray for v in sd.values())
    for k in ref:
        np.testing.assert_array_equal(sd[k], ref[k])
    fastdl.save({"w": model[0].weight, "sd": sd}, tmp_path / "m.npz")
    back = fastdl.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back["w"].numpy(), ref["0.weight"])
    other = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)).to(strict)
    other.load_state_dict(back["sd"])  # loads onto the device the model is on
    assert all(isinstance(p.data, Array) for p in other.parameters())
    np.testing.assert_array_equal(other.cpu().state_dict()["0.bias"], ref["0.bias"])
    assert other[0].weight.device == "cpu"


def test_gradcheck_on_the_device(strict):
    rng = np.random.default_rng(4)
    x = fastdl.tensor(rng.standard_normal((3, 4))).to(strict).requires_grad_()
    w = fastdl.tensor(rng.standard_normal((2, 4))).to(strict).requires_grad_()
    t = fastdl.tensor(np.array([0, 1, 1])).to(strict)

    def f(x, w):
        return nn.functional.cross_entropy((x @ w.T).tanh(), t, reduction="sum") + (x * x).sum()
    assert fastdl.gradcheck(f, (x, w))
    assert isinstance(x.data, Array) and isinstance(w.data, Array)  # put back as they were


def test_fit_evaluate_predict_follow_the_model_to_its_device(strict):
    from fastdl import data, train
    rng = np.random.default_rng(5)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    loader = data.DataLoader(data.TensorDataset(x, y), batch_size=8)  # CPU batches
    fastdl.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)).to(strict)
    hist = train.fit(model, nn.CrossEntropyLoss(), optim.Adam(model.parameters(), lr=0.05), loader, epochs=3,
                     val_loader=loader, progress=False)
    assert hist["loss"][-1] < hist["loss"][0] and "val_accuracy" in hist.history
    assert isinstance(model[0].weight.data, Array)
    out = train.predict(model, x)
    assert isinstance(out, np.ndarray) and out.shape == (40, 2)


LAYERS = {
    "batchnorm1d": (lambda: nn.BatchNorm1d(4), (5, 4)),
    "batchnorm2d": (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4)),
    "layernorm": (lambda: nn.LayerNorm(4), (5, 4)),
    "gru": (lambda: nn.GRU(4, 3, batch_first=True), (2, 5, 4)),
    "rnn": (lambda: nn.RNN(4, 3), (5, 2, 4)),
    "multihead_attention": (lambda: nn.MultiheadAttention(4, 2, batch_first=True), (2, 3, 4)),
    "gelu": (lambda: nn.GELU(), (5, 4)),
    "softmax": (lambda: nn.Softmax(dim=1), (5, 4)),
    "adaptive_avg_pool": (lambda: nn.AdaptiveAvgPool2d(1), (2, 3, 4, 4)),
    "bce_with_logits": (lambda: _Loss(lambda x, t: nn.functional.binary_cross_entropy_with_logits(
        x, t, pos_weight=fastdl.tensor(np.full(4, 2.0, np.float32)).to(t.device))), (5, 4)),
    "l1": (lambda: _Loss(nn.L1Loss()), (5, 4)),
    "clamp_max_dim": (lambda: _Loss(lambda x, t: x.clamp(-0.5, 0.5) + x.max(dim=1, keepdim=True)[0] * t), (5, 4)),
    "transformer_encoder_layer": (lambda: nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, batch_first=True),
                                  (2, 3, 8)),
    "transformer_decoder_layer": (lambda: _Pair(nn.TransformerDecoderLayer(8, 2, 16, dropout=0.0, batch_first=True)),
                                  (2, 3, 8)),
    "causal_sdpa": (lambda: _Loss(lambda x, t: nn.functional.scaled_dot_product_attention(x, x * t, x, is_causal=True)),
                    (2, 4, 5)),
    "dropout2d": (lambda: nn.Dropout2d(0.5), (2, 3, 4, 4)),
    "losses": (lambda: _Loss(lambda x, t: nn.SmoothL1Loss()(x, t) + nn.HuberLoss()(x, t) + nn.KLDivLoss(
        reduction="batchmean")(x.log_softmax(1), t.softmax(1)) + nn.functional.nll_loss(
        x.log_softmax(1), fastdl.tensor(np.arange(x.shape[0]) % x.shape[1]).to(x.device))), (5, 4)),
    "tensor_ops": (lambda: _Loss(lambda x, t: x.masked_fill(x > 0.5, 0.5) + fastdl.where(x > 0, x, t) + x.flip(0)
                                 + x.tril() + x.cumsum(1) + x.logsumexp(1, keepdim=True) + x.norm(dim=1, keepdim=True)
                                 + nn.functional.normalize(x) + fastdl.maximum(x, t)), (5, 4)),
    "in_place": (lambda: _Loss(_in_place), (5, 4)),
    "gather_scatter": (lambda: _Loss(_gather_scatter), (5, 4)),
    "sort_topk": (lambda: _Loss(lambda x, t: x.sort(dim=1)[0] * t + x.topk(2, dim=1)[0].sum(1, keepdim=True)), (5, 4)),
    "prod_repeat": (lambda: _Loss(lambda x, t: x.prod(dim=1, keepdim=True) * t + x.repeat(1, 2)[:, 1:5]), (5, 4)),
    "einsum": (lambda: _Loss(lambda x, t: fastdl.einsum("ij,kj->ik", x, t) @ x), (5, 4)),
    "index_arrays": (lambda: _Loss(lambda x, t: x[fastdl.tensor(np.array([0, 2, 2, 4])).to(x.device)] * t[:4]), (5, 4)),
    "weighted_cross_entropy": (lambda: _Loss(lambda x, t: nn.functional.cross_entropy(
        x, fastdl.tensor(np.arange(x.shape[0]) % x.shape[1]).to(x.device),
        weight=fastdl.tensor(np.linspace(0.5, 2, x.shape[1], dtype=np.float32)).to(x.device))), (5, 4)),
    "pad_interpolate": (lambda: _Loss(lambda x, t: nn.functional.pad(x, (1, 2, 0, 1)).sum() + nn.functional.interpolate(
        x, scale_factor=2, mode="nearest").mean() + nn.functional.interpolate(x, size=(6, 6), mode="bilinear",
                                                                              align_corners=False).sum()),
                        (2, 3, 4, 4)),
    "conv_transpose": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1), (2, 3, 4, 4)),
    "prelu": (lambda: nn.PReLU(4), (5, 4)),
    "bilinear": (lambda: _Pair(nn.Bilinear(4, 4, 3)), (5, 4)),
    "adaptive_max_pool": (lambda: nn.AdaptiveMaxPool2d(2), (2, 3, 5, 5)),
    "masked_softmax": (lambda: _Loss(lambda x, t: nn.functional.masked_softmax(x, t > 0.3, dim=0) + nn.functional.masked_softmax(
        x, np.array([True, False, True, True]), dim=1)), (5, 4)),
}


def _gather_scatter(x, t):
    idx = fastdl.tensor(np.array([[0, 1], [2, 3], [1, 1], [3, 0], [2, 2]])).to(x.device)
    g = x.gather(1, idx)
    s = fastdl.zeros(x.shape).to(x.device).scatter_add(1, idx, g * t[:, :2])
    r = x.index_select(0, fastdl.tensor(np.array([4, 0, 1])).to(x.device))
    return s + x.scatter(1, idx, t[:, :2]) + r.sum(0)


class _Pair(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x, x * 0.5)


def _in_place(x, t):
    y = x * 1
    y.add_(t).mul_(2).clamp_(-1, 1)
    y[0] = 0.0
    y[1, 1:3] = t[1, 1:3]
    with fastdl.no_grad():
        z = t * 1
        z.zero_().add_(1).fill_(2.0)
    return y * z


class _Loss(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x, fastdl.tensor(np.linspace(0, 1, x.numel(), dtype=np.float32).reshape(x.shape)).to(x.device))


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_more_layers_on_the_device(strict, name):
    make, shape = LAYERS[name]
    x0 = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    res = {}
    for dev in (strict, "cpu"):
        fastdl.manual_seed(0)
        m = make().to(dev)
        x = fastdl.tensor(x0).to(dev).requires_grad_()
        out = m(x, x, x) if name == "multihead_attention" else m(x)
        out = out[0] if isinstance(out, tuple) else out
        assert out.device == dev
        (out * out).sum().backward()
        res[str(dev)] = (_host(out), _host(x.grad), [_host(p.grad) for p in m.parameters()])
    got, want = res["strict"], res["cpu"]
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6)
    for a, b in zip(got[2], want[2]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_clipping_zero_grad_and_gaussian_nll_on_the_device(strict):
    """Gradient clipping (by norm, by value), zero_grad keeping the arrays, and the Gaussian NLL loss
    take their maths from the data's namespace."""
    from fastdl.nn import utils
    res = {}
    for dev in (strict, "cpu"):
        fastdl.manual_seed(0)
        m = nn.Linear(4, 3).to(dev)
        x = fastdl.tensor(np.linspace(-2, 2, 20, dtype=np.float32).reshape(5, 4)).to(dev)
        var = fastdl.tensor(np.linspace(0, 1, 15, dtype=np.float32).reshape(5, 3)).to(dev)
        nn.functional.gaussian_nll_loss(m(x), m(x) * 0.5, var).backward()
        before = utils.clip_grad_norm_(m.parameters(), 0.1)
        after = utils.clip_grad_norm_(m.parameters(), 1e9)
        utils.clip_grad_value_(m.parameters(), 0.01)
        grads = [_host(p.grad) for p in m.parameters()]
        m.zero_grad(set_to_none=False)
        assert all(isinstance(p.grad.data, Array) for p in m.parameters()) or dev == "cpu"
        assert all(not _host(p.grad).any() for p in m.parameters())
        res[str(dev)] = (before, after, grads)
    assert res["strict"][0] == pytest.approx(res["cpu"][0], rel=1e-6) and res["strict"][1] < 0.1 + 1e-6
    for a, b in zip(res["strict"][2], res["cpu"][2]):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_init_equal_and_allclose_keep_to_the_device(strict):
    """nn.init on a parameter already on the device leaves it there (the same draws as the CPU run), and
    equal / allclose compare device tensors."""
    from fastdl.nn import init
    res = {}
    for dev in (strict, "cpu"):
        fastdl.manual_seed(0)
        m = nn.Linear(5, 4).to(dev)
        init.xavier_uniform_(m.weight)
        init.zeros_(m.bias)
        assert isinstance(m.weight.data, Array) or dev == "cpu"
        res[str(dev)] = _host(m.weight)
        assert m.weight.equal(m.weight) and m.weight.allclose(m.weight * 1.0000001)
    np.testing.assert_array_equal(res["strict"], res["cpu"])
    w = nn.Linear(2, 2).to(strict).weight
    for t in (w.new_zeros(3), w.new_ones((2, 2)), w.new_full((1,), 7.0), w.new_tensor([1.0, 2.0])):
        assert isinstance(t.data, Array) and t.dtype == np.float32  # PyTorch's rule: on the tensor's device
