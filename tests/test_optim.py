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


# ------------------------------------------------------------------ Adam family
def adam_twin(p, steps, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False, decoupled=False):
    """Adam/AdamW from the paper's formulas as PyTorch documents them (float64)."""
    b1, b2 = betas
    p = p.copy()
    m = np.zeros_like(p)
    v = np.zeros_like(p)
    vmax = np.zeros_like(p)
    for k in range(steps):
        g = _grad_fn(p, k)
        if weight_decay and decoupled:
            p = p * (1 - lr * weight_decay)
        elif weight_decay:
            g = g + weight_decay * p
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        t = k + 1
        vmax = np.maximum(vmax, v) if amsgrad else v
        p = p - lr / (1 - b1 ** t) * m / (np.sqrt(vmax) / np.sqrt(1 - b2 ** t) + eps)
    return p


def rmsprop_twin(p, steps, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
    p = p.copy()
    s = np.zeros_like(p)
    ga = np.zeros_like(p)
    b = np.zeros_like(p)
    for k in range(steps):
        g = _grad_fn(p, k) + weight_decay * p
        s = alpha * s + (1 - alpha) * g * g
        if centered:
            ga = alpha * ga + (1 - alpha) * g
            denom = np.sqrt(s - ga * ga) + eps
        else:
            denom = np.sqrt(s) + eps
        if momentum:
            b = momentum * b + g / denom
            p = p - lr * b
        else:
            p = p - lr * g / denom
    return p


ADAM_CASES = [dict(lr=1e-2), dict(lr=1e-2, betas=(0.8, 0.99), eps=1e-6), dict(lr=1e-2, weight_decay=0.1),
              dict(lr=1e-2, amsgrad=True), dict(lr=3e-3, weight_decay=0.05, amsgrad=True)]


@pytest.mark.parametrize("kw", ADAM_CASES)
@pytest.mark.parametrize("cls", ["Adam", "AdamW"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_adam_trajectory(kw, cls, dtype):
    p0 = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    got = run(getattr(optim, cls), p0, 300, **kw)
    want = adam_twin(p0.astype(np.float64), 300, decoupled=cls == "AdamW",
                     **({"weight_decay": 1e-2} if cls == "AdamW" and "weight_decay" not in kw else {}), **kw)
    np.testing.assert_allclose(got, want, rtol=1e-9 if dtype == np.float64 else 1e-3,
                               atol=1e-9 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("kw", [dict(), dict(alpha=0.9, eps=1e-6), dict(momentum=0.9), dict(centered=True),
                                dict(centered=True, momentum=0.5, weight_decay=0.1)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_rmsprop_trajectory(kw, dtype):
    p0 = np.random.default_rng(0).standard_normal((4, 5)).astype(dtype)
    got = run(optim.RMSprop, p0, 300, lr=1e-3, **kw)
    want = rmsprop_twin(p0.astype(np.float64), 300, lr=1e-3, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-9 if dtype == np.float64 else 1e-3,
                               atol=1e-9 if dtype == np.float64 else 1e-4)


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
                                  lambda ps: optim.Adam(ps, lr=1e-2, amsgrad=True),
                                  lambda ps: optim.AdamW(ps, lr=1e-2),
                                  lambda ps: optim.RMSprop(ps, lr=1e-3, centered=True, momentum=0.5)])
def test_native_and_reference_optimizers_agree(make):
    p0 = np.random.default_rng(3).standard_normal((6, 7)).astype(np.float32)
    out = []
    for backend in ("native", "reference"):
        fastdl.set_backend(backend)
        p = fastdl.tensor(p0.copy(), requires_grad=True)
        opt = make([p])
        for k in range(50):
            p.grad = fastdl.Tensor(_grad_fn(p.data, k).astype(np.float32))
            opt.step()
        out.append(p.data)
    fastdl.set_backend("native")
    np.testing.assert_allclose(out[0], out[1], rtol=1e-6, atol=1e-6)


def test_adam_state_dict_resume_and_layout():
    p0 = np.random.default_rng(4).standard_normal(5)
    full = run(optim.Adam, p0, 30, lr=1e-2, amsgrad=True)
    p = fastdl.tensor(p0.copy(), requires_grad=True)
    opt = optim.Adam([p], lr=1e-2, amsgrad=True)
    for k in range(10):
        p.grad = fastdl.Tensor(_grad_fn(p.data, k))
        opt.step()
    sd = opt.state_dict()
    assert set(sd["state"][0]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"} and sd["state"][0]["step"] == 10
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    q = fastdl.tensor(p.data.copy(), requires_grad=True)
    opt2 = optim.Adam([q], lr=1e-2, amsgrad=True)
    opt2.load_state_dict(sd)
    for k in range(10, 30):
        q.grad = fastdl.Tensor(_grad_fn(q.data, k))
        opt2.step()
    np.testing.assert_array_equal(q.data, full)


def test_frozen_parameters_are_skipped():
    a = fastdl.tensor(np.ones(3), requires_grad=True)
    b = fastdl.tensor(np.ones(3), requires_grad=True)
    opt = optim.Adam([a, b], lr=0.1)
    (a * b).sum().backward()
    b.requires_grad_(False)
    opt.step()
    assert not np.allclose(a.data, 1) and np.allclose(b.data, 1)


def test_adam_bad_arguments():
    p = fastdl.tensor(np.ones(2), requires_grad=True)
    with pytest.raises(ValueError, match="betas"):
        optim.Adam([p], betas=(1.0, 0.9))
    with pytest.raises(ValueError, match="alpha"):
        optim.RMSprop([p], alpha=1.5)


def test_kernels_refuse_copies_of_state():
    p = np.ones(4, np.float32)
    with pytest.raises(TypeError, match="exp_avg has dtype float64"):
        fastdl._C.adam_step(p, p, np.zeros(4), np.zeros(4, np.float32), None, 0.1, 0.9, 0.99, 1e-8, 0, False, False, 1)
    with pytest.raises(ValueError, match="C-contiguous"):
        fastdl._C.sgd_step(p, p, np.zeros(8, np.float32)[::2], 0.1, 0.9, 0, 0, False, False, False)
    with pytest.raises(ValueError, match="step must be"):
        fastdl._C.adam_step(p, p, p.copy(), p.copy(), None, 0.1, 0.9, 0.99, 1e-8, 0, False, False, 0)


def test_against_torch_optimizers():
    torch = pytest.importorskip("torch")
    p0 = np.random.default_rng(5).standard_normal((3, 4)).astype(np.float32)
    cases = [(optim.Adam, torch.optim.Adam, dict(lr=1e-2, weight_decay=0.01, amsgrad=True)),
             (optim.AdamW, torch.optim.AdamW, dict(lr=1e-2)),
             (optim.RMSprop, torch.optim.RMSprop, dict(lr=1e-3, momentum=0.9, centered=True)),
             (optim.SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01))]
    for ours_cls, theirs_cls, kw in cases:
        p = fastdl.tensor(p0.copy(), requires_grad=True)
        tp = torch.tensor(p0.copy(), requires_grad=True)
        ours, theirs = ours_cls([p], **kw), theirs_cls([tp], **kw)
        for k in range(200):
            g = _grad_fn(p.data, k).astype(np.float32)
            p.grad = fastdl.Tensor(g)
            tp.grad = torch.from_numpy(_grad_fn(tp.detach().numpy(), k).astype(np.float32))
            ours.step()
            theirs.step()
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=ours_cls.__name__)


# ------------------------------------------------------------------ schedules and averages
def _lrs(sched_factory, epochs=12, lr=0.1):
    p = fastdl.tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([p], lr=lr)
    s = sched_factory(opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(epochs - 1):
        opt.step()
        s.step()
        out.append(opt.param_groups[0]["lr"])
    assert s.get_last_lr() == [out[-1]]
    return np.array(out)


def test_schedules_follow_formulas():
    from fastdl.optim import lr_scheduler as L
    e = np.arange(12)
    np.testing.assert_allclose(_lrs(lambda o: L.StepLR(o, 3, 0.5)), 0.1 * 0.5 ** (e // 3))
    np.testing.assert_allclose(_lrs(lambda o: L.MultiStepLR(o, [2, 5], 0.1)),
                               0.1 * 0.1 ** ((e >= 2).astype(int) + (e >= 5)))
    np.testing.assert_allclose(_lrs(lambda o: L.ExponentialLR(o, 0.9)), 0.1 * 0.9 ** e)
    np.testing.assert_allclose(_lrs(lambda o: L.LambdaLR(o, lambda k: 1 / np.sqrt(k + 1))), 0.1 / np.sqrt(e + 1))
    np.testing.assert_allclose(_lrs(lambda o: L.CosineAnnealingLR(o, 10, 0.001)),
                               0.001 + (0.1 - 0.001) * (1 + np.cos(np.pi * e / 10)) / 2)
    np.testing.assert_allclose(_lrs(lambda o: L.InverseTimeDecay(o, 1.0)), 0.1 / (1 + e))
    np.testing.assert_allclose(_lrs(lambda o: L.InverseTimeDecay(o, 0.5, decay_steps=4, staircase=True)),
                               0.1 / (1 + 0.5 * (e // 4)))


def test_schedules_match_torch():
    torch = pytest.importorskip("torch")
    from fastdl.optim import lr_scheduler as L
    T = torch.optim.lr_scheduler
    pairs = [(lambda o: L.StepLR(o, 3, 0.5), lambda o: T.StepLR(o, 3, 0.5)),
             (lambda o: L.CosineAnnealingLR(o, 7, 0.01), lambda o: T.CosineAnnealingLR(o, 7, 0.01)),
             (lambda o: L.ExponentialLR(o, 0.8), lambda o: T.ExponentialLR(o, 0.8))]
    for ours, theirs in pairs:
        tp = torch.zeros(1, requires_grad=True)
        to = torch.optim.SGD([tp], lr=0.1)
        ts = theirs(to)
        want = [to.param_groups[0]["lr"]]
        for _ in range(11):
            to.step()
            ts.step()
            want.append(to.param_groups[0]["lr"])
        np.testing.assert_allclose(_lrs(ours), want, rtol=1e-12)


def test_reduce_on_plateau_and_scheduler_state():
    from fastdl.optim import lr_scheduler as L
    p = fastdl.tensor(np.ones(1), requires_grad=True)
    opt = optim.SGD([p], lr=1.0)
    s = L.ReduceLROnPlateau(opt, factor=0.5, patience=1)
    for m in [5, 4, 4, 4, 4, 4]:
        s.step(m)
    assert opt.param_groups[0]["lr"] == 0.25
    st = L.StepLR(opt, 2)
    st.step()
    d = st.state_dict()
    assert d["last_epoch"] == 1 and "optimizer" not in d


def test_ewa_and_bias_correction():
    x = np.array([10.0, 20.0, 30.0])
    v = fastdl.ewa(x, 0.9, bias_correction=False)
    np.testing.assert_allclose(v, [1.0, 0.9 * 1 + 2, 0.9 * 2.9 + 3])
    vc = fastdl.ewa(x, 0.9)
    np.testing.assert_allclose(vc, v / (1 - 0.9 ** np.arange(1, 4)))
    assert vc[0] == pytest.approx(10.0)  # bias correction removes the start-up bias
    np.testing.assert_allclose(fastdl.ewa(np.full(50, 7.0), 0.98), 7.0)


def test_exponential_moving_average_of_weights():
    p = fastdl.tensor(np.zeros(3), requires_grad=True)
    ema = optim.ExponentialMovingAverage([p], decay=0.5)
    for val in (4.0, 8.0):
        p.data = np.full(3, val)
        ema.update()
    np.testing.assert_allclose(ema.shadow[0], 0.5 * (0.5 * 0 + 0.5 * 4) + 0.5 * 8)
    with ema.average_parameters():
        np.testing.assert_allclose(p.data, 5.0)
    np.testing.assert_allclose(p.data, 8.0)
