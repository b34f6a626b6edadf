"""Optimizers: trajectories against twins written from PyTorch's documented rules."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import optim


def _grad_fn(p, k):
    """A deterministic, parameter-dependent gradient (a quadratic bowl plus a drift)."""
    return 0.5 * p + np.sin(np.arange(p.size).reshape(p.shape) + k)


def sgd_twin(p, steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
    p = p.copy()
    buf = None
    for k in range(steps):
        g = _grad_fn(p, k) + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def run(opt_cls, p0, steps, **kw):
    p = fastdl.tensor(p0.copy(), requires_grad=True)
    opt = opt_cls([p], **kw)
    for k in range(steps):
        opt.zero_grad()
        p.grad = fastdl.Tensor(_grad_fn(p.data, k))
        opt.step()
    return p.data


@pytest.mark.parametrize("kw", [
    dict(lr=0.1), dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.9, nesterov=True), dict(lr=0.02, momentum=0.5, weight_decay=0.1),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sgd_trajectory(kw, dtype):
    p0 = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    got = run(optim.SGD, p0, 300, **kw)
    want = sgd_twin(p0.astype(np.float64), 300, **kw)
    assert got.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-10 if dtype == np.float64 else 2e-4,
                               atol=1e-10 if dtype == np.float64 else 2e-5)


def test_curriculum_momentum_mapping():
    """v = beta v + (1 - beta) dW; W -= alpha v  ==  SGD(lr=alpha (1 - beta), momentum=beta)."""
    alpha, beta = 0.1, 0.9
    p = np.random.default_rng(1).standard_normal(6)
    w, v = p.copy(), np.zeros(6)
    for k in range(100):
        v = beta * v + (1 - beta) * _grad_fn(w, k)
        w = w - alpha * v
    got = run(optim.SGD, p, 100, lr=alpha * (1 - beta), momentum=beta)
    np.testing.assert_allclose(got, w, rtol=1e-12)


def test_state_dict_resume_is_exact():
    p0 = np.random.default_rng(2).standard_normal(5)
    full = run(optim.SGD, p0, 40, lr=0.05, momentum=0.9)
    p = fastdl.tensor(p0.copy(), requires_grad=True)
    opt = optim.SGD([p], lr=0.05, momentum=0.9)
    for k in range(20):
        p.grad = fastdl.Tensor(_grad_fn(p.data, k))
        opt.step()
    sd = opt.state_dict()
    assert sd["param_groups"][0]["params"] == [0] and "momentum_buffer" in sd["state"][0]
    q = fastdl.tensor(p.data.copy(), requires_grad=True)
    opt2 = optim.SGD([q], lr=1.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == 0.05
    for k in range(20, 40):
        q.grad = fastdl.Tensor(_grad_fn(q.data, k))
        opt2.step()
    np.testing.assert_array_equal(q.data, full)


def test_param_groups_and_skipping():
    a = fastdl.tensor(np.ones(2), requires_grad=True)
    b = fastdl.tensor(np.ones(2), requires_grad=True)
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = fastdl.Tensor(np.ones(2))
    opt.step()  # b has no grad: skipped
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 1.0)
    assert opt.param_groups[1]["lr"] == 1.0 and opt.param_groups[0]["momentum"] == 0.0


def test_sgd_bad_arguments():
    p = fastdl.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="Tensors"):
        optim.SGD([np.ones(2)], lr=0.1)


def test_optimizer_trains_a_model():
    fastdl.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 3)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5]) + 0.3).astype(np.float32)[:, None]
    m = fastdl.nn.Linear(3, 1)
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    for _ in range(200):
        opt.zero_grad()
        loss = fastdl.functional.mse_loss(m(x), y)
        loss.backward()
        opt.step()
    np.testing.assert_allclose(m.weight.data.ravel(), [1.0, -2.0, 0.5], atol=1e-3)
    np.testing.assert_allclose(m.bias.data, [0.3], atol=1e-3)
