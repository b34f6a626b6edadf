"""Modules, state dicts, layers, initialisation."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import init, nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(8, 3, bias=False)
        self.register_buffer("steps", np.zeros((), np.int64))

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_registration_and_names():
    m = Net()
    assert [n for n, _ in m.named_parameters()] == ["fc1.weight", "fc1.bias", "fc2.weight"]
    assert list(m.state_dict()) == ["steps", "fc1.weight", "fc1.bias", "fc2.weight"]  # own entries first, as PyTorch
    assert m.fc1.weight.shape == (8, 4) and m.fc2.bias is None
    assert [n for n, _ in m.named_modules()] == ["", "fc1", "act", "fc2"]
    assert len(list(m.children())) == 3
    assert m.num_parameters() == 8 * 4 + 8 + 3 * 8


def test_train_eval_propagate():
    m = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    m.eval()
    assert not m[1].training
    m.train()
    assert m[1].training


def test_state_dict_round_trip_and_copy():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    x = fastdl.tensor(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    np.testing.assert_array_equal(a(x).data, b(x).data)
    sd = a.state_dict()
    sd["fc1.weight"][:] = 0  # a copy: the model is untouched
    assert np.abs(a.fc1.weight.data).sum() > 0


def test_load_state_dict_strict_and_shapes():
    m = Net()
    sd = m.state_dict()
    del sd["fc1.bias"]
    sd["extra"] = np.zeros(1)
    with pytest.raises(KeyError, match="fc1.bias.*extra"):
        m.load_state_dict(sd)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["fc1.bias"] and unexpected == ["extra"]
    sd = m.state_dict()
    before = m.fc1.weight.data.copy()
    sd["fc1.weight"] = np.ones((8, 4))
    sd["fc2.weight"] = np.zeros((2, 2))
    with pytest.raises(ValueError, match="fc2.weight"):
        m.load_state_dict(sd)
    np.testing.assert_array_equal(m.fc1.weight.data, before)  # nothing half-loaded


def test_load_casts_to_module_dtype_and_to_double():
    m = Net()
    sd = {k: v.astype(np.float64) for k, v in m.state_dict().items()}
    m.load_state_dict(sd)
    assert m.fc1.weight.dtype == np.float32
    m.double()
    assert m.fc1.weight.dtype == np.float64 and m.steps.dtype == np.int64
    y = m(fastdl.tensor(np.ones((2, 4))))
    assert y.dtype == np.float64
    m.float()
    assert m.fc2.weight.dtype == np.float32


def test_requires_grad_freeze():
    m = Net()
    m.fc1.requires_grad_(False)
    x = fastdl.tensor(np.ones((2, 4), np.float32))
    m(x).sum().backward()
    assert m.fc1.weight.grad is None and m.fc2.weight.grad is not None
    assert m.num_parameters(trainable_only=True) == 24


def test_linear_init_bounds_like_pytorch():
    lin = nn.Linear(100, 50)
    b = 1 / np.sqrt(100)
    assert np.abs(lin.weight.data).max() <= b and np.abs(lin.bias.data).max() <= b
    assert lin.weight.data.std() > 0.8 * b / np.sqrt(3)


def test_sequential_api():
    s = nn.Sequential(nn.Linear(3, 4), nn.Tanh())
    s.append(nn.Linear(4, 2))
    assert len(s) == 3 and isinstance(s[-1], nn.Linear) and len(s[:2]) == 2
    assert [n for n, _ in s.named_parameters()][-1] == "2.bias"
    assert s(fastdl.tensor(np.ones((5, 3), np.float32))).shape == (5, 2)
    assert "Linear(in_features=3" in repr(s)


def test_linear_bad_input():
    with pytest.raises(ValueError, match="expected input"):
        nn.Linear(3, 2)(fastdl.tensor(np.ones((4, 5), np.float32)))
    with pytest.raises(ValueError, match=">= 0"):
        nn.Linear(-1, 2)


def test_flatten_softmax_modules():
    x = fastdl.tensor(np.random.default_rng(0).standard_normal((2, 3, 4)))
    assert nn.Flatten()(x).shape == (2, 12)
    np.testing.assert_allclose(nn.Softmax(dim=1)(x).data.sum(axis=1), 1)
    np.testing.assert_allclose(np.exp(nn.LogSoftmax(dim=-1)(x).data).sum(-1), 1)
    assert nn.Dropout(keep_prob=0.8).p == pytest.approx(0.2)


def test_losses_modules(rng):
    x = fastdl.tensor(rng.standard_normal((5, 3)))
    t = rng.integers(0, 3, 5)
    assert nn.CrossEntropyLoss(reduction="sum")(x, t).item() == pytest.approx(
        fastdl.functional.cross_entropy(x, t, reduction="sum").item())
    assert nn.MSELoss()(x, np.zeros((5, 3))).item() == pytest.approx((x.data ** 2).mean())
    with pytest.raises(ValueError, match="reduction"):
        nn.MSELoss(reduction="avg")


@pytest.mark.parametrize("fn,var", [
    (init.he_normal_, lambda fi, fo: 2 / fi),
    (init.he_uniform_, lambda fi, fo: 2 / fi),
    (init.lecun_normal_, lambda fi, fo: 1 / fi),  # the curriculum's "Xavier"
    (init.lecun_uniform_, lambda fi, fo: 1 / fi),
    (init.xavier_normal_, lambda fi, fo: 2 / (fi + fo)),  # PyTorch's meaning
    (init.xavier_uniform_, lambda fi, fo: 2 / (fi + fo)),
    (init.glorot_normal_, lambda fi, fo: 2 / (fi + fo)),
    (init.glorot_uniform_, lambda fi, fo: 2 / (fi + fo)),
])
def test_init_variances(fn, var):
    w = nn.Parameter(np.empty((400, 300), np.float32))
    fn(w)
    # 120k samples: the sample variance is within ~1% of the target
    assert w.data.var() == pytest.approx(var(300, 400), rel=0.03)
    assert abs(w.data.mean()) < 0.01 * np.sqrt(var(300, 400)) * 10


def test_init_conv_fans_and_constants():
    w = nn.Parameter(np.empty((64, 16, 3, 3), np.float32))
    init.he_normal_(w)
    assert w.data.var() == pytest.approx(2 / (16 * 9), rel=0.05)
    init.zeros_(w)
    assert not w.data.any()
    init.ones_(w)
    assert (w.data == 1).all()
    with pytest.raises(ValueError, match="2 dimensions"):
        init.he_normal_(nn.Parameter(np.empty(3, np.float32)))


def test_he_keeps_activation_scale_tiny_init_collapses():
    rng = np.random.default_rng(0)
    x = fastdl.tensor(rng.standard_normal((500, 256)).astype(np.float32))

    def last_std(initf):
        h = x
        for _ in range(10):
            lin = nn.Linear(256, 256)
            initf(lin.weight)
            init.zeros_(lin.bias)
            h = lin(h).relu()
        return float(h.data.std())
    he = last_std(init.he_normal_)
    tiny = last_std(lambda w: init.normal_(w, 0, 0.01))
    assert 0.3 < he < 3 and tiny < 1e-6
