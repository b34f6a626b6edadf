"""Adagrad, Adadelta, Adamax, NAdam, RAdam (native fused kernel vs its NumPy twin vs PyTorch), LBFGS,
and the schedulers, each checked against PyTorch's trajectory."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import optim
from fastdl.optim import lr_scheduler as L

torch = pytest.importorskip("torch")


def _grad_fn(p, k):
    """A gradient that depends on the parameters and the step (so trajectories can drift apart)."""
    return np.sin(p * (1 + 0.1 * k)) + 0.3 * p ** 3 - 0.05 * k * np.cos(p)


OPTS = [
    ("Adagrad", dict(lr=0.1)), ("Adagrad", dict(lr=0.05, lr_decay=0.01, weight_decay=0.1,
                                                initial_accumulator_value=0.2, maximize=True)),
    ("Adadelta", dict()), ("Adadelta", dict(lr=0.5, rho=0.8, eps=1e-5, weight_decay=0.05)),
    ("Adamax", dict()), ("Adamax", dict(lr=0.01, betas=(0.8, 0.99), weight_decay=0.1, maximize=True)),
    ("NAdam", dict()), ("NAdam", dict(lr=0.01, momentum_decay=0.01, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict()), ("RAdam", dict(lr=0.01, betas=(0.7, 0.9), weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
]


def _trajectory(make, p0, steps, backend=None):
    p = fastdl.tensor(p0.copy(), requires_grad=True)
    opt = make([p])
    if backend:
        fastdl.set_backend(backend)
    try:
        for k in range(steps):
            p.grad = fastdl.Tensor(_grad_fn(p.data, k).astype(p0.dtype))
            opt.step()
    finally:
        fastdl.set_backend("native")
    return p.data


@pytest.mark.parametrize("i", range(len(OPTS)))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adaptive_optimizers_follow_pytorch(i, dtype):
    name, kw = OPTS[i]
    p0 = np.random.default_rng(i).standard_normal((5, 7)).astype(dtype)
    steps = 150
    ours = _trajectory(lambda ps: getattr(optim, name)(ps, **kw), p0, steps)
    ref = _trajectory(lambda ps: getattr(optim, name)(ps, **kw), p0, steps, backend="reference")
    tp = torch.tensor(p0.copy(), requires_grad=True)
    topt = getattr(torch.optim, name)([tp], **kw)
    for k in range(steps):
        tp.grad = torch.from_numpy(_grad_fn(tp.detach().numpy(), k).astype(dtype))
        topt.step()
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(ours, tp.detach().numpy(), **tol, err_msg=f"{name} vs PyTorch")
    np.testing.assert_allclose(ours, ref, **tol, err_msg=f"{name} native vs reference")


def test_adaptive_kernel_checks():
    from fastdl import _C, reference
    p = np.ones(4, np.float32)
    for table in (_C, reference):
        with pytest.raises(ValueError, match="unknown optimizer kind 'adam'"):
            table.adaptive_step("adam", p, p, p.copy(), p.copy(), 0.1, 0.9, 0.99, 1e-8, 0, False, False, 1, 0, 0)
        with pytest.raises(ValueError, match="needs state_b"):
            table.adaptive_step("adamax", p, p, p.copy(), None, 0.1, 0.9, 0.99, 1e-8, 0, False, False, 1, 0, 0)
        with pytest.raises(ValueError, match="step must be"):
            table.adaptive_step("radam", p, p, p.copy(), p.copy(), 0.1, 0.9, 0.99, 1e-8, 0, False, False, 0, 0, 0)
        with pytest.raises(ValueError, match="beta2 in"):
            table.adaptive_step("nadam", p, p, p.copy(), p.copy(), 0.1, 0.9, 1.0, 1e-8, 0, False, False, 1, 0, 0.5)
        with pytest.raises(ValueError, match="lr must be finite"):
            table.adaptive_step("adagrad", p, p, p.copy(), None, np.nan, 0, 0, 1e-8, 0, False, False, 1, 0, 0)
        with pytest.raises(TypeError, match="state_a has dtype float64"):
            table.adaptive_step("adagrad", p, p, np.zeros(4), None, 0.1, 0, 0, 1e-8, 0, False, False, 1, 0, 0)
        with pytest.raises(ValueError, match="state_b has shape"):
            table.adaptive_step("adadelta", p, p, p.copy(), np.ones((2, 2), np.float32), 1.0, 0.9, 0, 1e-6, 0, False,
                                False, 1, 0, 0)
    with pytest.raises(ValueError, match="betas"):
        optim.NAdam([fastdl.zeros(2, requires_grad=True)], betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="rho"):
        optim.Adadelta([fastdl.zeros(2, requires_grad=True)], rho=1.5)


def test_optimizer_state_dict_round_trip():
    p0 = np.random.default_rng(1).standard_normal(6).astype(np.float32)
    for name in ("Adagrad", "Adadelta", "Adamax", "NAdam", "RAdam"):
        p = fastdl.tensor(p0.copy(), requires_grad=True)
        opt = getattr(optim, name)([p], lr=0.01)
        for k in range(3):
            p.grad = fastdl.Tensor(_grad_fn(p.data, k))
            opt.step()
        q = fastdl.tensor(p.data.copy(), requires_grad=True)
        opt2 = getattr(optim, name)([q], lr=0.01)
        opt2.load_state_dict(opt.state_dict())
        for k in range(3, 6):
            p.grad = fastdl.Tensor(_grad_fn(p.data, k))
            q.grad = fastdl.Tensor(_grad_fn(q.data, k))
            opt.step()
            opt2.step()
        np.testing.assert_array_equal(p.data, q.data, err_msg=name)


def _rosenbrock(x):
    return ((1 - x[:-1]) ** 2).sum() + 100 * ((x[1:] - x[:-1] ** 2) ** 2).sum()


def _bowl(x):
    """Convex and curved: the fixed-step runs stay well conditioned (on Rosenbrock they are chaotic, and
    1e-16 reassociation differences grow to 1e-7 within a few dozen steps)."""
    c = fastdl.tensor(np.array([1.0, 3.0, 0.5, 2.0])) if isinstance(x, fastdl.Tensor) else \
        torch.tensor([1.0, 3.0, 0.5, 2.0], dtype=torch.float64)
    return (c * (x - 1) ** 2).sum() + 0.1 * (x ** 4).sum() + (x[0] * x[1]) ** 2


@pytest.mark.parametrize("kw,f", [(dict(), _bowl), (dict(line_search_fn="strong_wolfe"), _rosenbrock),
                                  (dict(line_search_fn="strong_wolfe", history_size=2), _bowl),
                                  (dict(lr=0.5, history_size=3, max_iter=7), _bowl)])
def test_lbfgs_follows_pytorch(kw, f):
    x0 = np.array([-1.2, 1.0, -0.5, 0.8])
    x, tx = fastdl.tensor(x0.copy(), requires_grad=True), torch.tensor(x0.copy(), requires_grad=True)
    opt, topt = optim.LBFGS([x], **kw), torch.optim.LBFGS([tx], **kw)

    def closure():
        opt.zero_grad()
        loss = f(x)
        loss.backward()
        return loss

    def tclosure():
        topt.zero_grad()
        loss = f(tx)
        loss.backward()
        return loss
    for _ in range(4):
        a, b = opt.step(closure), topt.step(tclosure)
        np.testing.assert_allclose(float(a), b.item(), rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(x.data, tx.detach().numpy(), rtol=1e-8, atol=1e-10)
    st, tst = opt.state[id(x)], topt.state[tx]
    assert st["func_evals"] == tst["func_evals"] and st["n_iter"] == tst["n_iter"]
    if f is _rosenbrock:
        assert float(_rosenbrock(x)) < 1e-3  # converged to (1, 1, 1, 1)


def test_lbfgs_errors():
    x = fastdl.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="closure"):
        optim.LBFGS([x]).step()
    with pytest.raises(ValueError, match="line_search_fn"):
        optim.LBFGS([x], line_search_fn="armijo")
    with pytest.raises(ValueError, match="parameter groups"):
        optim.LBFGS([{"params": [x]}, {"params": [fastdl.zeros(1, requires_grad=True)]}])


# ------------------------------------------------------------------ schedulers
def _run(make_opt, make_sched, steps, lib, metric_fn=None, epoch_fn=None):
    if lib == "torch":
        p = torch.zeros(2, requires_grad=True)
        opt = make_opt(torch.optim, [p])
    else:
        p = fastdl.zeros(2, requires_grad=True)
        opt = make_opt(optim, [p])
    s = make_sched(torch.optim.lr_scheduler if lib == "torch" else L, opt)
    lrs, moms = [], []
    for k in range(steps):
        lrs.append([g["lr"] for g in opt.param_groups])
        moms.append([g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups])
        opt.step()
        if epoch_fn is not None:
            s.step(epoch_fn(k))
        else:
            s.step()
    return np.array(lrs, dtype=float), moms


SGD = lambda O, ps: O.SGD(ps, lr=0.1, momentum=0.9)  # noqa: E731
ADAM = lambda O, ps: O.Adam(ps, lr=0.01)  # noqa: E731

SCHEDS = {
    "one_cycle": (SGD, lambda S, o: S.OneCycleLR(o, max_lr=1.0, total_steps=120), 120),
    "one_cycle_adam_linear": (ADAM, lambda S, o: S.OneCycleLR(o, max_lr=0.1, epochs=4, steps_per_epoch=30,
                                                              anneal_strategy="linear", pct_start=0.25), 120),
    "one_cycle_3phase": (SGD, lambda S, o: S.OneCycleLR(o, max_lr=0.5, total_steps=30, three_phase=True,
                                                        div_factor=10, final_div_factor=100), 30),  # short on purpose
    "cyclic": (SGD, lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=4), 120),
    "cyclic_tri2": (SGD, lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=3, step_size_down=5,
                                                 mode="triangular2"), 120),
    "cyclic_exp_adam": (ADAM, lambda S, o: S.CyclicLR(o, 0.001, 0.01, step_size_up=5, mode="exp_range", gamma=0.97,
                                                      base_momentum=0.8, max_momentum=0.95), 120),
    "cyclic_no_momentum": (lambda O, ps: O.SGD(ps, lr=0.1), lambda S, o: S.CyclicLR(o, 0.01, 0.1, step_size_up=2,
                                                                                      cycle_momentum=False), 12),
    "warm_restarts": (SGD, lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=5, eta_min=0.001), 120),
    "warm_restarts_mult": (SGD, lambda S, o: S.CosineAnnealingWarmRestarts(o, T_0=3, T_mult=2), 120),
    "linear": (SGD, lambda S, o: S.LinearLR(o, start_factor=0.25, total_iters=60), 110),
    "linear_down": (SGD, lambda S, o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=8), 12),
    "constant": (SGD, lambda S, o: S.ConstantLR(o, factor=0.5, total_iters=4), 10),
    "polynomial": (SGD, lambda S, o: S.PolynomialLR(o, total_iters=90, power=2.0), 110),
    "multiplicative": (SGD, lambda S, o: S.MultiplicativeLR(o, lambda e: 0.99 if e % 2 else 0.995), 110),
    "multistep": (SGD, lambda S, o: S.MultiStepLR(o, [2, 5, 5, 9, 60], 0.5), 110),
    "sequential": (SGD, lambda S, o: S.SequentialLR(o, [S.LinearLR(o, 0.1, total_iters=4), S.ExponentialLR(o, 0.8)],
                                                     milestones=[4]), 110),
    "sequential_3": (SGD, lambda S, o: S.SequentialLR(o, [S.ConstantLR(o, 0.5, total_iters=2),
                                                          S.CosineAnnealingLR(o, 6), S.StepLR(o, 2, 0.5)],
                                                       milestones=[3, 9]), 16),
    "chained": (SGD, lambda S, o: S.ChainedScheduler([S.LinearLR(o, 0.2, total_iters=5), S.ExponentialLR(o, 0.97)]),
                110),
    "chained_cos": (SGD, lambda S, o: S.ChainedScheduler([S.ConstantLR(o, 0.5, total_iters=3),
                                                          S.CosineAnnealingLR(o, 25, 0.01)]), 110),
}


@pytest.mark.parametrize("name", sorted(SCHEDS))
def test_schedulers_follow_pytorch(name):
    make_opt, make_sched, steps = SCHEDS[name]
    ours, our_m = _run(make_opt, make_sched, steps, "fastdl")
    theirs, their_m = _run(make_opt, make_sched, steps, "torch")
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.array(our_m, dtype=float), np.array(their_m, dtype=float), rtol=1e-12)


def test_warm_restarts_fractional_epochs_and_errors():
    for T_mult in (1, 2):
        ours, _ = _run(SGD, lambda S, o: S.CosineAnnealingWarmRestarts(o, 4, T_mult), 30, "fastdl",
                       epoch_fn=lambda k: k / 3 + 0.1)
        theirs, _ = _run(SGD, lambda S, o: S.CosineAnnealingWarmRestarts(o, 4, T_mult), 30, "torch",
                         epoch_fn=lambda k: k / 3 + 0.1)
        np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    p = fastdl.zeros(1, requires_grad=True)
    with pytest.raises(ValueError, match="total_steps"):
        L.OneCycleLR(optim.SGD([p], lr=0.1), max_lr=1.0)
    s = L.OneCycleLR(optim.SGD([p], lr=0.1, momentum=0.9), max_lr=1.0, total_steps=2)
    s.step()
    s.step()
    with pytest.raises(ValueError, match="beyond total_steps"):
        s.step()
    with pytest.raises(ValueError, match="momentum"):
        L.CyclicLR(optim.Adagrad([p]), 0.01, 0.1)
    with pytest.raises(ValueError, match="milestones"):
        o = optim.SGD([p], lr=0.1)
        L.SequentialLR(o, [L.ConstantLR(o), L.ExponentialLR(o, 0.9)], milestones=[])


def test_reduce_on_plateau_is_a_scheduler_and_states_round_trip(tmp_path):
    p = fastdl.zeros(1, requires_grad=True)
    o = optim.SGD([p], lr=0.1)
    assert isinstance(L.ReduceLROnPlateau(o), L.LRScheduler)
    o = optim.SGD([p], lr=0.1, momentum=0.9)
    s = L.OneCycleLR(o, max_lr=1.0, total_steps=20)
    for _ in range(5):
        s.step()
    fastdl.save(s.state_dict(), tmp_path / "s.npz")
    o2 = optim.SGD([fastdl.zeros(1, requires_grad=True)], lr=0.1, momentum=0.9)
    s2 = L.OneCycleLR(o2, max_lr=1.0, total_steps=20)
    s2.load_state_dict(fastdl.load(tmp_path / "s.npz"))
    s.step()
    s2.step()
    assert s.get_last_lr() == s2.get_last_lr()
