"""ONNX export: the exported file, run in onnxruntime, gives fastdl's outputs (1e-5 relative in float32),
for the zoo models, recurrent and attention layers, a dynamic batch axis; unsupported ops are named."""
from __future__ import annotations

import numpy as np
import pytest

import fastdl
import fastdl.onnx
from fastdl import models, nn

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
R = np.random.default_rng(0)


def _flat(o, out):
    if isinstance(o, (tuple, list)):
        for a in o:
            _flat(a, out)
    elif o is not None:
        out.append(o.data if isinstance(o, fastdl.Tensor) else np.asarray(o))
    return out


def _roundtrip(tmp_path, model, *xs, dynamic_axes=None, input_names=None, output_names=None, check_with=None):
    mode = model.training
    path = fastdl.onnx.export(model, xs, tmp_path / "m.onnx", dynamic_axes=dynamic_axes, input_names=input_names,
                              output_names=output_names)
    assert model.training == mode  # the mode is restored
    model.eval()
    sess = ort.InferenceSession(str(path))
    for inputs in [xs] + ([check_with] if check_with else []):
        want = _flat(model(*[fastdl.tensor(x) for x in inputs]), [])
        got = sess.run(None, {i.name: x for i, x in zip(sess.get_inputs(), inputs)})
        assert len(got) == len(want)
        for a, b in zip(want, got):
            assert a.shape == b.shape
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    return onnx.load(str(path))


def _img(*shape):
    return R.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("name,build,shape", [
    ("lenet5", lambda: models.lenet5(10), (2, 1, 32, 32)),
    ("lenet5_relu_max", lambda: models.lenet5(10, activation="relu", pooling="max", padding=2), (2, 1, 28, 28)),
    ("alexnet", lambda: models.alexnet(10, small_input=True, hidden=64), (2, 3, 32, 32)),
    ("vgg16_bn", lambda: models.vgg16_bn(10, hidden=32, avgpool_size=1), (1, 3, 32, 32)),
    ("resnet18", lambda: models.resnet18(10, small_input=True, width=16), (2, 3, 32, 32)),
    ("resnet50", lambda: models.resnet50(10, small_input=True, width=8), (2, 3, 32, 32)),
    ("googlenet", lambda: models.googlenet(10, small_input=True), (1, 3, 32, 32)),
    ("mlp", lambda: models.mlp(20, (16, 8), 3, dropout=0.5), (4, 20)),
])
def test_zoo_models_run_in_onnxruntime(tmp_path, name, build, shape):
    fastdl.manual_seed(0)
    m = build()
    bn = [mod for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)]
    for mod in bn:  # non-trivial running statistics
        mod.running_mean.data[:] = R.standard_normal(mod.running_mean.shape) * 0.1
        mod.running_var.data[:] = R.random(mod.running_var.shape) + 0.5
    proto = _roundtrip(tmp_path, m, _img(*shape))
    init_names = {i.name for i in proto.graph.initializer}
    assert set(dict(m.named_parameters())) <= init_names  # parameters keep their state-dict names


def test_dynamic_batch_axis(tmp_path):
    m = models.resnet18(10, small_input=True, width=8)
    proto = _roundtrip(tmp_path, m, _img(2, 3, 32, 32), dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                       check_with=(_img(5, 3, 32, 32),))
    dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(12, 4), nn.GELU(), nn.Linear(4, 2), nn.LogSoftmax(1))
    _roundtrip(tmp_path, mlp, _img(3, 3, 4), dynamic_axes={"input": [0], "output": [0]}, check_with=(_img(7, 3, 4),))


@pytest.mark.parametrize("act", [nn.LeakyReLU(0.1), nn.ELU(), nn.SELU(), nn.CELU(0.5), nn.GELU(), nn.GELU("tanh"),
                                 nn.SiLU(), nn.Mish(), nn.Softplus(), nn.Softplus(2.0), nn.Hardtanh(-0.5, 0.7),
                                 nn.ReLU6(), nn.Hardsigmoid(), nn.Hardswish(), nn.PReLU(4), nn.Tanh(), nn.Sigmoid(),
                                 nn.Softmax(1), nn.LogSigmoid()])
def test_activations_export(tmp_path, act):
    m = nn.Sequential(nn.Conv2d(3, 4, 3, padding="same"), act, nn.AvgPool2d(2), nn.BatchNorm2d(4), nn.Flatten())
    _roundtrip(tmp_path, m, _img(2, 3, 6, 6) * 3)


def test_conv_family_and_norms_export(tmp_path):
    m = nn.Sequential(nn.Conv1d(3, 6, 3, padding=1), nn.ReLU(), nn.MaxPool1d(2), nn.ConvTranspose1d(6, 4, 3, stride=2),
                      nn.LayerNorm(13), nn.AdaptiveAvgPool1d(1), nn.Flatten())
    _roundtrip(tmp_path, m, _img(2, 3, 12))
    m = nn.Sequential(nn.ConvTranspose2d(3, 5, 3, stride=2, padding=1, output_padding=1), nn.Dropout(0.3),
                      nn.Conv2d(5, 4, 3, stride=2, dilation=2, groups=1), nn.AdaptiveAvgPool2d(2))
    _roundtrip(tmp_path, m, _img(2, 3, 8, 8))


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("kw", [dict(), dict(num_layers=2, bidirectional=True), dict(batch_first=True, num_layers=2)])
def test_recurrent_layers_export(tmp_path, kind, kw):
    m = getattr(nn, kind)(5, 7, **kw)
    x = _img(3, 4, 5)
    _roundtrip(tmp_path, m, x)
    dirs = 2 if kw.get("bidirectional") else 1
    h0 = _img(kw.get("num_layers", 1) * dirs, 4 if not kw.get("batch_first") else 3, 7)
    if kind == "LSTM":
        class WithState(nn.Module):
            def __init__(self):
                super().__init__()
                self.rnn = m

            def forward(self, x, h, c):
                return self.rnn(x, (h, c))
        _roundtrip(tmp_path, WithState(), x, h0, h0 * 0.5)
    else:
        _roundtrip(tmp_path, m, x, h0)


def test_char_lm_with_embedding_exports(tmp_path):
    m = models.CharLM(12, embed_dim=8, hidden_size=16)
    tokens = R.integers(0, 12, (4, 6))
    _roundtrip(tmp_path, m, tokens, dynamic_axes={"input": {0: "batch", 1: "time"}},
               check_with=(R.integers(0, 12, (2, 9)),))


def test_attention_and_transformer_export(tmp_path):
    x = _img(3, 5, 8)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    _roundtrip(tmp_path, mha, x, x, x)
    kpm = np.zeros((3, 5), bool)
    kpm[1, -2:] = True

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2, kdim=6, vdim=4)

        def forward(self, q, k, v, pad):
            return self.attn(q, k, v, key_padding_mask=pad, attn_mask=np.triu(np.ones((5, 5), bool), 1))
    _roundtrip(tmp_path, Masked(), _img(5, 3, 8), _img(5, 3, 6), _img(5, 3, 4), kpm)
    for kw in (dict(), dict(norm_first=True, activation="gelu")):
        enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16, batch_first=True, **kw), 2)
        _roundtrip(tmp_path, enc, x, dynamic_axes={"input": {0: "b"}}, check_with=(_img(6, 5, 8),))
    t = nn.Transformer(8, 2, 1, 1, 16)

    class Causal(nn.Module):
        def __init__(self):
            super().__init__()
            self.t = t

        def forward(self, src, tgt):
            return self.t(src, tgt, tgt_mask=nn.Transformer.generate_square_subsequent_mask(tgt.shape[0]))
    _roundtrip(tmp_path, Causal(), _img(6, 2, 8), _img(4, 2, 8))


def test_unsupported_ops_are_named(tmp_path):
    class Odd(nn.Module):
        def forward(self, x):
            return x.cumsum(1)
    with pytest.raises(fastdl.onnx.ExportError, match="cumsum"):
        fastdl.onnx.export(Odd(), _img(2, 3), tmp_path / "x.onnx")

    class Sorted(nn.Module):
        def forward(self, x):
            return x.sort(1).values * 2
    with pytest.raises(fastdl.onnx.ExportError, match="sort"):
        fastdl.onnx.export(Sorted(), _img(2, 3), tmp_path / "x.onnx")
    with pytest.raises(ValueError, match="opset_version"):
        fastdl.onnx.export(nn.ReLU(), _img(2), tmp_path / "x.onnx", opset_version=13)


def test_glue_ops_export(tmp_path):
    class Glue(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)

        def forward(self, x):
            a, b = x.chunk(2, dim=1)
            y = fastdl.cat([b, a], dim=1) * 2 - 1
            z = self.lin(y).permute(1, 0).unsqueeze(0).squeeze(0).t()
            z = z.masked_fill(z > 0.5, 0.5).clamp(-1, 1) / (x.abs() + 1)
            w = fastdl.stack([z, z.exp(), z.maximum(x)], dim=1)[:, 1:, ::2]
            return w.mean(dim=(1, 2)) + w.sum(-1).amax(-1) + (z ** 2).sqrt().reshape(-1, 2, 2)[:, 0, 1], \
                fastdl.where(x > 0, x, x * 0.1).softmax(-1)
    _roundtrip(tmp_path, Glue(), _img(3, 4), dynamic_axes={"input": {0: "b"}}, check_with=(_img(5, 4),))
