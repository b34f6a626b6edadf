"""The activations, losses, padding/resizing, layers and containers PyTorch users reach for: native
against the NumPy reference (check_op: forward, gradients, gradcheck) and PyTorch as the oracle."""
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
X = np.concatenate([R.standard_normal(40) * 3, [-3.0, 3.0, 0.0, -20.5, 25.0, 1e-3]]).reshape(2, 23)

ACTS = [  # (fastdl call, torch call)
    (lambda x: F.leaky_relu(x, 0.2), lambda x: TF.leaky_relu(x, 0.2)),
    (lambda x: F.elu(x, 0.7), lambda x: TF.elu(x, 0.7)),
    (F.selu, TF.selu),
    (lambda x: F.celu(x, 1.5), lambda x: TF.celu(x, 1.5)),
    (F.gelu, TF.gelu),
    (lambda x: F.gelu(x, approximate="tanh"), lambda x: TF.gelu(x, approximate="tanh")),
    (F.silu, TF.silu),
    (F.mish, TF.mish),
    (F.softplus, TF.softplus),
    (lambda x: F.softplus(x, 2.0, 3.0), lambda x: TF.softplus(x, 2.0, 3.0)),
    (lambda x: F.hardtanh(x, -0.5, 2.0), lambda x: TF.hardtanh(x, -0.5, 2.0)),
    (F.relu6, TF.relu6),
    (F.hardsigmoid, TF.hardsigmoid),
    (F.hardswish, TF.hardswish),
    (F.logsigmoid, TF.logsigmoid),
    (F.softsign, TF.softsign),
    (F.tanhshrink, TF.tanhshrink),
    (lambda x: F.glu(x[:, :22], 1), lambda x: TF.glu(x[:, :22], 1)),
]


def _vs_torch(fn_f, fn_t, *arrays, rtol=1e-10, atol=1e-12, grad_inputs=None):
    ft = [fastdl.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    tt = [torch.tensor(a, requires_grad=a.dtype.kind == "f") for a in arrays]
    of, ot = fn_f(*ft), fn_t(*tt)
    np.testing.assert_allclose(of.data, ot.detach().numpy(), rtol=rtol, atol=atol)
    seed = np.random.default_rng(7).standard_normal(of.shape)
    of.backward(seed)
    ot.backward(torch.tensor(seed))
    for i, (a, b) in enumerate(zip(ft, tt)):
        if (grad_inputs is None or i in grad_inputs) and b.grad is not None:
            np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=rtol, atol=atol, err_msg=f"grad {i}")


@pytest.mark.parametrize("k", range(len(ACTS)))
def test_activations_native_reference_and_pytorch(k):
    fn_f, fn_t = ACTS[k]
    x = X + 1e-4  # away from the kinks, for gradcheck
    check_op(fn_f, x)
    hard_sigmoid = fn_f is F.hardsigmoid  # PyTorch's hardsigmoid slope is 1/6 rounded to float, even in float64
    _vs_torch(fn_f, fn_t, X, rtol=1e-7 if hard_sigmoid else 1e-9, atol=1e-12)


def test_activation_kernel_checks_and_nan():
    from fastdl import _C, reference
    for table in (_C, reference):
        x = np.array([np.nan, 1.0], np.float32)
        for kind in reference.elementwise.ACTIVATIONS:
            a, b = (1.0, 2.0)
            assert np.isnan(table.activation_forward(x, kind, a, b)[0]), kind
            assert np.isnan(table.activation_backward(np.ones(2, np.float32), x, kind, a, b)[0]), kind
        with pytest.raises(ValueError, match="unknown activation kind 'swish'"):
            table.activation_forward(x, "swish")
        with pytest.raises(ValueError, match="min\\) <= beta"):
            table.activation_forward(x, "hardtanh", 1.0, -1.0)
        with pytest.raises(ValueError, match="nonzero"):
            table.activation_forward(x, "softplus", 0.0, 20.0)
        with pytest.raises(TypeError, match="kind must be a string"):
            table.activation_forward(x, 3)
        with pytest.raises(TypeError):
            table.activation_forward(np.array([1, 2]), "silu")
        with pytest.raises(ValueError, match="shape"):
            table.activation_backward(np.ones(3, np.float32), x, "silu")


def test_prelu_matches_pytorch():
    x = R.standard_normal((3, 4, 5))
    for n in (1, 4):
        m, tm = nn.PReLU(n, dtype=np.float64), torch.nn.PReLU(n).double()
        with torch.no_grad():
            tm.weight.copy_(torch.tensor(R.random(n)))
        m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
        _vs_torch(lambda t: m(t), lambda t: tm(t), x)
        np.testing.assert_allclose(m.weight.grad.data, tm.weight.grad.numpy(), rtol=1e-10)
    check_op(lambda t, w: F.prelu(t, w), x, R.random(4))


LOSSES = [
    ("l1", lambda a, b: F.l1_loss(a, b), lambda a, b: TF.l1_loss(a, b)),
    ("smooth_l1", lambda a, b: F.smooth_l1_loss(a, b, beta=0.5), lambda a, b: TF.smooth_l1_loss(a, b, beta=0.5)),
    ("smooth_l1_sum", lambda a, b: F.smooth_l1_loss(a, b, "sum"), lambda a, b: TF.smooth_l1_loss(a, b, reduction="sum")),
    ("huber", lambda a, b: F.huber_loss(a, b, delta=0.7), lambda a, b: TF.huber_loss(a, b, delta=0.7)),
    ("huber_none", lambda a, b: F.huber_loss(a, b, "none"), lambda a, b: TF.huber_loss(a, b, reduction="none")),
    ("soft_margin", lambda a, b: F.soft_margin_loss(a, b.sign().detach()),
     lambda a, b: TF.soft_margin_loss(a, b.sign().detach())),
    ("poisson", lambda a, b: F.poisson_nll_loss(a, b.abs()), lambda a, b: TF.poisson_nll_loss(a, b.abs())),
    ("poisson_full", lambda a, b: F.poisson_nll_loss(a.abs(), b.abs() * 3, log_input=False, full=True),
     lambda a, b: TF.poisson_nll_loss(a.abs(), b.abs() * 3, log_input=False, full=True)),
    ("gaussian", lambda a, b: F.gaussian_nll_loss(a, b, (a * b).abs() + 0.1),
     lambda a, b: TF.gaussian_nll_loss(a, b, (a * b).abs() + 0.1)),
    ("cosine_similarity", lambda a, b: F.cosine_similarity(a, b), lambda a, b: TF.cosine_similarity(a, b)),
    ("cosine_similarity_0", lambda a, b: F.cosine_similarity(a, b, dim=0),
     lambda a, b: TF.cosine_similarity(a, b, dim=0)),
    ("normalize", lambda a, b: F.normalize(a) * b, lambda a, b: TF.normalize(a) * b),
    ("normalize_p1", lambda a, b: F.normalize(a, p=1, dim=0) * b, lambda a, b: TF.normalize(a, p=1, dim=0) * b),
    ("pairwise", lambda a, b: F.pairwise_distance(a, b), lambda a, b: TF.pairwise_distance(a, b)),
]


@pytest.mark.parametrize("name", [c[0] for c in LOSSES])
def test_losses_match_pytorch(name):
    _, fn_f, fn_t = next(c for c in LOSSES if c[0] == name)
    a, b = R.standard_normal((6, 5)), R.standard_normal((6, 5))
    _vs_torch(fn_f, fn_t, a, b)


def test_probability_losses_match_pytorch():
    p, t = R.random((5, 4)) * 0.98 + 0.01, R.random((5, 4))
    w = R.random((5, 4))
    _vs_torch(lambda a: F.binary_cross_entropy(a, t), lambda a: TF.binary_cross_entropy(a, torch.tensor(t)), p)
    _vs_torch(lambda a: F.binary_cross_entropy(a, t, weight=w, reduction="sum"),
              lambda a: TF.binary_cross_entropy(a, torch.tensor(t), weight=torch.tensor(w), reduction="sum"), p)
    edge = np.array([0.0, 1.0, 0.5])
    np.testing.assert_allclose(F.binary_cross_entropy(fastdl.tensor(edge), np.array([1.0, 0.0, 1.0]), reduction="none").data,
                               TF.binary_cross_entropy(torch.tensor(edge), torch.tensor([1.0, 0.0, 1.0]).double(),
                                                       reduction="none").numpy())
    logp = np.log(R.dirichlet(np.ones(4), 5))
    q = R.dirichlet(np.ones(4), 5)
    q[0, 1] = 0.0
    for red in ("mean", "sum", "batchmean", "none"):
        with warnings.catch_warnings():  # PyTorch warns that 'mean' is not the KL divergence
            warnings.simplefilter("ignore")
            _vs_torch(lambda a: F.kl_div(a, q, red), lambda a: TF.kl_div(a, torch.tensor(q), reduction=red), logp)
    _vs_torch(lambda a: F.kl_div(a, np.log(q + 0.1), "sum", log_target=True),
              lambda a: TF.kl_div(a, torch.tensor(np.log(q + 0.1)), reduction="sum", log_target=True), logp)
    with pytest.raises(ValueError, match="probabilities"):
        F.binary_cross_entropy(fastdl.tensor([1.5]), [1.0])


def test_cross_entropy_weights_soft_targets_and_pos_weight():
    x = R.standard_normal((6, 4))
    t = np.array([0, 3, 1, -100, 2, 3])
    w = R.random(4) + 0.2
    for eps in (0.0, 0.1):
        for red in ("mean", "sum", "none"):
            _vs_torch(lambda a: F.cross_entropy(a, t, weight=w, reduction=red, label_smoothing=eps),
                      lambda a: TF.cross_entropy(a, torch.tensor(t), weight=torch.tensor(w), reduction=red,
                                                 label_smoothing=eps), x)
    probs = R.dirichlet(np.ones(4), 6)
    for kw in ({}, {"label_smoothing": 0.2}, {"weight": w}):
        tkw = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        _vs_torch(lambda a: F.cross_entropy(a, probs, **kw), lambda a: TF.cross_entropy(a, torch.tensor(probs), **tkw), x)
    img = R.standard_normal((2, 3, 4, 5))
    ti = R.integers(0, 3, (2, 4, 5))
    _vs_torch(lambda a: F.cross_entropy(a, ti, weight=w[:3]),
              lambda a: TF.cross_entropy(a, torch.tensor(ti), weight=torch.tensor(w[:3])), img)
    y = (R.random((6, 4)) > 0.5).astype(np.float64)
    pw, ew = R.random(4) * 3, R.random((6, 4))
    _vs_torch(lambda a: F.binary_cross_entropy_with_logits(a, y, pos_weight=pw),
              lambda a: TF.binary_cross_entropy_with_logits(a, torch.tensor(y), pos_weight=torch.tensor(pw)), x * 5)
    _vs_torch(lambda a: F.binary_cross_entropy_with_logits(a, y, weight=ew, pos_weight=pw, reduction="sum"),
              lambda a: TF.binary_cross_entropy_with_logits(a, torch.tensor(y), weight=torch.tensor(ew),
                                                            pos_weight=torch.tensor(pw), reduction="sum"), x)
    m = nn.CrossEntropyLoss(weight=w.astype(np.float32))
    tm = torch.nn.CrossEntropyLoss(weight=torch.tensor(w, dtype=torch.float32))
    xf = x.astype(np.float32)
    assert abs(m(fastdl.tensor(xf), t).item() - tm(torch.tensor(xf), torch.tensor(t)).item()) < 1e-5
    with pytest.raises(ValueError, match="one value per class"):
        F.cross_entropy(fastdl.tensor(x), t, weight=w[:3])


def test_embedding_and_ranking_losses_match_pytorch():
    a, b = R.standard_normal((5, 3)), R.standard_normal((5, 3))
    y = np.array([1, -1, 1, -1, -1])
    for margin in (0.0, 0.3):
        _vs_torch(lambda p, q: F.cosine_embedding_loss(p, q, y, margin),
                  lambda p, q: TF.cosine_embedding_loss(p, q, torch.tensor(y), margin), a, b)
    _vs_torch(lambda p, q: F.margin_ranking_loss(p[:, 0], q[:, 0], y, 0.2),
              lambda p, q: TF.margin_ranking_loss(p[:, 0], q[:, 0], torch.tensor(y).double(), 0.2), a, b)
    _vs_torch(lambda p: F.hinge_embedding_loss(p, np.sign(b)), lambda p: TF.hinge_embedding_loss(p, torch.tensor(np.sign(b))),
              a)


@pytest.mark.parametrize("mode", ["constant", "reflect", "replicate", "circular"])
def test_pad_matches_pytorch(mode):
    x = R.standard_normal((2, 3, 4, 5))
    for p in [(2, 1, 1, 3), (0, 0, 2, 0)]:
        _vs_torch(lambda t: F.pad(t, p, mode=mode), lambda t: TF.pad(t, p, mode=mode), x)
    _vs_torch(lambda t: F.pad(t, (1, 2), mode=mode), lambda t: TF.pad(t, (1, 2), mode=mode), x[0])
    if mode == "constant":
        _vs_torch(lambda t: F.pad(t, (-1, 2, 1, -2), value=0.5), lambda t: TF.pad(t, (-1, 2, 1, -2), value=0.5), x)
        _vs_torch(lambda t: F.pad(t, (1, 1, 1, 1, 1, 1)), lambda t: TF.pad(t, (1, 1, 1, 1, 1, 1)), x)
    check_op(lambda t: F.pad(t, (1, 2), mode=mode), x)


@pytest.mark.parametrize("case", [dict(size=(7, 9), mode="nearest"), dict(scale_factor=2, mode="nearest"),
                                  dict(size=(3, 2), mode="nearest"), dict(size=(7, 9), mode="bilinear"),
                                  dict(size=(7, 9), mode="bilinear", align_corners=True),
                                  dict(scale_factor=0.5, mode="bilinear"), dict(scale_factor=1.5, mode="bilinear")])
def test_interpolate_matches_pytorch(case):
    x = R.standard_normal((2, 3, 4, 6))
    _vs_torch(lambda t: F.interpolate(t, **case), lambda t: TF.interpolate(t, **case), x)
    x1 = R.standard_normal((2, 3, 5))
    c1 = dict(case, mode="linear" if case["mode"] == "bilinear" else "nearest")
    if "size" in c1:
        c1["size"] = c1["size"][0]
    _vs_torch(lambda t: F.interpolate(t, **c1), lambda t: TF.interpolate(t, **c1), x1)


def test_dropout2d_and_layers():
    fastdl.manual_seed(0)
    x = fastdl.ones(8, 16, 3, 3)
    y = nn.Dropout2d(0.5)(x).data
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2).all(-1))  # whole channels, kept ones scaled
    assert 0.3 < (per_channel[..., 0] == 0).mean() < 0.7
    d = nn.Dropout2d(0.5).eval()
    assert d(x) is x
    b, tb = nn.Bilinear(3, 4, 2, dtype=np.float64), torch.nn.Bilinear(3, 4, 2).double()
    assert list(b.state_dict()) == list(tb.state_dict()) and b.weight.shape == tuple(tb.weight.shape)
    b.load_state_dict({k: v.detach().numpy() for k, v in tb.state_dict().items()})
    x1, x2 = R.standard_normal((5, 3)), R.standard_normal((5, 4))
    _vs_torch(lambda p, q: b(p, q), lambda p, q: tb(p, q), x1, x2)
    check_op(lambda p, q, w: F.bilinear(p, q, w), x1, x2, R.standard_normal((2, 3, 4)))
    u = nn.Unflatten(1, (2, 6))
    assert u(fastdl.zeros(3, 12)).shape == (3, 2, 6) and "unflattened_size=(2, 6)" in repr(u)


def test_containers_register_like_pytorch():
    md = nn.ModuleDict({"enc": nn.Linear(2, 3), "dec": nn.Linear(3, 2)})
    tmd = torch.nn.ModuleDict({"enc": torch.nn.Linear(2, 3), "dec": torch.nn.Linear(3, 2)})
    assert list(md.state_dict()) == list(tmd.state_dict()) and "enc" in md and len(md) == 2
    md["head"] = nn.Linear(2, 1)
    assert list(md.keys()) == ["enc", "dec", "head"] and len(list(md.parameters())) == 6
    with pytest.raises(TypeError, match="must be a Module"):
        md["x"] = 3
    pl = nn.ParameterList([fastdl.zeros(2), np.ones(3, np.float32)])
    tpl = torch.nn.ParameterList([torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.ones(3))])
    assert list(pl.state_dict()) == list(tpl.state_dict()) and isinstance(pl[1], nn.Parameter) and pl[-1].shape == (3,)
    pl.append(fastdl.zeros(1))
    assert len(pl) == 3 and len(list(pl.parameters())) == 3
    pd = nn.ParameterDict({"a": fastdl.zeros(2)})
    pd["b"] = fastdl.ones(1)
    assert list(pd.state_dict()) == ["a", "b"] and pd["b"].requires_grad

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleDict({"a": nn.Linear(2, 2)})
            self.scales = nn.ParameterList([fastdl.ones(2)])

        def forward(self, x):
            return self.blocks["a"](x) * self.scales[0]

    net = Net()
    net(fastdl.ones(1, 2)).sum().backward()
    assert net.scales[0].grad is not None and list(net.state_dict()) == ["blocks.a.weight", "blocks.a.bias", "scales.0"]


def test_activation_layers_repr_and_errors():
    assert repr(nn.LeakyReLU(0.1)) == "LeakyReLU(negative_slope=0.1)"
    assert repr(nn.GELU(approximate="tanh")) == "GELU(approximate=tanh)" and repr(nn.SiLU()) == "SiLU()"
    with pytest.raises(ValueError, match="approximate"):
        nn.GELU("fast")
    with pytest.raises(ValueError, match="min_val"):
        nn.Hardtanh(2.0, 1.0)
    with pytest.raises(TypeError, match="floating-point"):
        F.gelu(fastdl.tensor([1, 2]))
    with pytest.raises(ValueError, match="per channel"):
        F.prelu(fastdl.zeros(2, 3), fastdl.zeros(2))
    with pytest.raises(ValueError, match="mode"):
        F.pad(fastdl.zeros(2, 3), (1, 1), mode="mirror")
    with pytest.raises(ValueError, match="reflect padding"):
        F.pad(fastdl.zeros(2, 3), (3, 0), mode="reflect")
    with pytest.raises(ValueError, match="exactly one"):
        F.interpolate(fastdl.zeros(1, 1, 2, 2))
