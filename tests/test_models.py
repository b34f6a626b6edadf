"""The CNN model zoo: published parameter counts, a training step on small inputs, LeNet-5 on digits."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
from fastdl import models, nn, optim

COUNTS = {"lenet5": 61_706, "alexnet": 61_100_840, "vgg16": 138_357_544, "resnet18": 11_689_512,
          "resnet34": 21_797_672, "resnet50": 25_557_032, "googlenet": 6_624_904}


@pytest.mark.parametrize("name", sorted(COUNTS))
def test_published_parameter_counts(name):
    assert getattr(models, name)().num_parameters() == COUNTS[name]


def test_vgg16_bn_and_inception_module_shapes():
    assert models.vgg16_bn().num_parameters() == 138_365_992  # torchvision's vgg16_bn
    m = models.inception_module(192, 64, 96, 128, 16, 32, 32)
    y = m(fastdl.tensor(np.zeros((1, 192, 8, 8), np.float32)))
    assert y.shape == (1, 256, 8, 8) and m.branch3[1].conv.weight.shape == (32, 16, 5, 5)


def test_torchvision_names():
    sd = models.resnet18().state_dict()
    assert "layer2.0.downsample.0.weight" in sd and "layer1.1.bn2.running_var" in sd and "fc.bias" in sd
    assert "inception4e.branch4.1.bn.num_batches_tracked" in models.googlenet().state_dict()
    assert list(models.alexnet().state_dict())[:2] == ["features.0.weight", "features.0.bias"]


SMALL = {
    "lenet5": lambda: models.lenet5(10),
    "alexnet": lambda: models.alexnet(5, small_input=True, hidden=64),
    "vgg16": lambda: models.vgg16(5, hidden=64, avgpool_size=1),
    "vgg16_bn": lambda: models.vgg16_bn(5, hidden=64, avgpool_size=1),
    "resnet18": lambda: models.resnet18(5, small_input=True, width=16),
    "resnet50": lambda: models.resnet50(5, small_input=True, width=8),
    "googlenet": lambda: models.googlenet(5, small_input=True),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_model_trains_a_step_on_small_inputs(name):
    fastdl.manual_seed(0)
    model = SMALL[name]()
    cin = 1 if name == "lenet5" else 3
    x = fastdl.tensor(np.random.default_rng(0).standard_normal((4, cin, 32, 32)).astype(np.float32))
    y = np.array([0, 1, 2, 3])
    opt = optim.Adam(model.parameters(), lr=1e-3)
    before = {k: v.copy() for k, v in model.state_dict().items()}
    losses = []
    for _ in range(2):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.isfinite(losses).all()
    assert all(p.grad is not None for p in model.parameters())
    changed = [k for k, v in model.state_dict().items() if not np.array_equal(v, before[k])]
    assert len(changed) > len(before) // 2
    model.eval()
    assert model(x).shape == (4, 10 if name == "lenet5" else 5)


def test_full_size_forward_224():
    m = models.resnet18(7)
    m.eval()
    assert m(np.zeros((1, 3, 224, 224), np.float32)).shape == (1, 7)


def test_seq2seq_padding_beam_and_greedy():
    import fastdl
    from fastdl.models import Seq2Seq
    fastdl.manual_seed(0)
    m = Seq2Seq(12, 9, embed_dim=8, enc_hidden=6, dec_hidden=10, attn_dim=5, pad_id=0, dtype=np.float64)
    rng = np.random.default_rng(0)
    a, b = rng.integers(1, 12, 5), rng.integers(1, 12, 3)
    src = np.zeros((2, 5), np.int64)
    src[0], src[1, :3] = a, b
    tin, tout = rng.integers(1, 9, (2, 4)), rng.integers(1, 9, (2, 4))
    both = m(src, [5, 3], tin).numpy()
    alone = m(b[None], [3], tin[1:]).numpy()
    np.testing.assert_allclose(both[1], alone[0], atol=1e-12)  # padding changes nothing
    loss = m.loss(src, [5, 3], tin, tout)
    loss.backward()
    assert all(p.grad is not None for n, p in m.named_parameters() if not n.startswith("src_embed"))
    toks, w = m.greedy(src, [5, 3], bos=1, eos=2, max_len=6)
    assert toks.shape == (2, 6) and w.shape == (2, 6, 5)
    np.testing.assert_allclose(w.sum(-1), 1.0)
    assert np.all(w[1, :, 3:] == 0)  # no attention on padding
    (best, _), = m.beam(b, bos=1, eos=2, beam_width=1, max_len=6)
    g = list(toks[1])
    assert best == (g[:g.index(2)] if 2 in g else g)  # width 1 is greedy
    with pytest.raises(ValueError, match="lengths must be in"):
        m(src, [6, 3], tin)
