"""Interchange: the safetensors format both ways with the reference implementation (the ``safetensors``
package) and PyTorch, malformed files refused, and the permissions of saved files."""
from __future__ import annotations

import os
import struct

import numpy as np
import pytest

import fastdl
from fastdl import models

st_numpy = pytest.importorskip("safetensors.numpy")


def test_round_trip_with_the_reference_implementation(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"w": rng.standard_normal((3, 4)).astype(np.float32), "d": rng.standard_normal(5),
              "h": rng.standard_normal((2, 2)).astype(np.float16), "i": rng.integers(-9, 9, (4,)),
              "u": rng.integers(0, 255, (2, 3)).astype(np.uint8), "b": rng.random(3) > 0.5,
              "i32": np.arange(3, dtype=np.int32), "empty": np.zeros((0, 4), np.float32), "scalar": np.float64(2.5)}
    arrays["scalar"] = np.asarray(arrays["scalar"])
    fastdl.save(arrays, tmp_path / "a.safetensors", metadata={"format": "np"})
    back = st_numpy.load_file(str(tmp_path / "a.safetensors"))
    assert set(back) == set(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and np.array_equal(back[k], v), k
    st_numpy.save_file(arrays, str(tmp_path / "b.safetensors"))
    ours = fastdl.load(tmp_path / "b.safetensors")
    for k, v in arrays.items():
        assert ours[k].dtype == v.dtype and np.array_equal(ours[k], v), k
    from safetensors import safe_open
    with safe_open(str(tmp_path / "a.safetensors"), "np") as f:
        assert f.metadata() == {"format": "np"}


def test_module_state_dicts_and_tensors(tmp_path):
    m = models.lenet5(10)
    fastdl.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = models.lenet5(10)
    m2.load_state_dict(fastdl.load(tmp_path / "m.safetensors"))
    x = fastdl.randn(2, 1, 32, 32)
    m.eval(), m2.eval()
    np.testing.assert_array_equal(m(x).data, m2(x).data)
    fastdl.save({"t": fastdl.ones(2, 3)}, tmp_path / "t.safetensors")
    assert fastdl.load(tmp_path / "t.safetensors")["t"].shape == (2, 3)
    with pytest.raises(TypeError, match="only arrays"):
        fastdl.save({"opt": {"lr": 0.1}}, tmp_path / "o.safetensors")
    with pytest.raises(TypeError, match="metadata"):
        fastdl.save({"a": np.zeros(1)}, tmp_path / "o.safetensors", metadata={"n": 1})


def _torch_resnet18(torch, num_classes=10):
    """torchvision's ResNet-18, layer for layer (names and layout), without torchvision."""
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + idt)

    class ResNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            chans, cin = [64, 128, 256, 512], 64
            for i, c in enumerate(chans):
                s = 1 if i == 0 else 2
                setattr(self, f"layer{i + 1}", nn.Sequential(Block(cin, c, s), Block(c, c, 1)))
                cin = c
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, num_classes)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))
    return ResNet()


def test_pytorch_resnet18_from_safetensors_gives_the_same_logits(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    torch.manual_seed(0)
    tm = _torch_resnet18(torch)
    with torch.no_grad():  # non-trivial running statistics
        for mod in tm.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    tm.eval()
    st_torch.save_file(tm.state_dict(), str(tmp_path / "resnet18.safetensors"))
    m = models.resnet18(10)
    m.load_state_dict(fastdl.load(tmp_path / "resnet18.safetensors"))
    m.eval()
    x = np.random.default_rng(1).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        want = tm(torch.tensor(x)).numpy()
    np.testing.assert_allclose(m(fastdl.tensor(x)).data, want, rtol=1e-4, atol=1e-4)
    fastdl.save(m.state_dict(), tmp_path / "back.safetensors")  # and back into PyTorch
    tm2 = _torch_resnet18(torch)
    tm2.load_state_dict(st_torch.load_file(str(tmp_path / "back.safetensors")))
    tm2.eval()
    with torch.no_grad():
        np.testing.assert_allclose(tm2(torch.tensor(x)).numpy(), want, rtol=1e-6, atol=1e-6)


def _write(path, header: bytes, data: bytes = b""):
    path.write_bytes(struct.pack("<Q", len(header)) + header + data)


@pytest.mark.parametrize("case,match", [
    ("short", "no safetensors header"), ("huge_header", "truncated or not a safetensors"),
    ("bad_json", "corrupt safetensors header"), ("not_object", "not a JSON object"),
    ("bad_dtype", "dtype 'F8_E4M3'"), ("bad_shape", "malformed shape"), ("bad_offsets", "malformed data_offsets"),
    ("short_data", "truncated or corrupt"), ("overlap", "overlaps another"), ("extra_key", "malformed entry")])
def test_malformed_safetensors_are_refused(tmp_path, case, match):
    p = tmp_path / "bad.safetensors"
    entry = lambda dt="F32", shape=(2,), offs=(0, 8): ('{"dtype":"%s","shape":%s,"data_offsets":[%d,%d]}'  # noqa: E731
                                                       % (dt, list(shape), *offs))
    if case == "short":
        p.write_bytes(b"\x01\x00")
    elif case == "huge_header":
        p.write_bytes(struct.pack("<Q", 10 ** 12) + b"{}")
    elif case == "bad_json":
        _write(p, b"{nope")
    elif case == "not_object":
        _write(p, b"[1, 2]")
    elif case == "bad_dtype":
        _write(p, ('{"a":%s}' % entry("F8_E4M3", (2,), (0, 2))).encode(), b"\0" * 2)
    elif case == "bad_shape":
        _write(p, b'{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,8]}}', b"\0" * 8)
    elif case == "bad_offsets":
        _write(p, ('{"a":%s}' % entry(offs=(8, 0))).encode(), b"\0" * 8)
    elif case == "short_data":
        _write(p, ('{"a":%s}' % entry(shape=(1000,), offs=(0, 4000))).encode(), b"\0" * 8)
    elif case == "overlap":
        _write(p, ('{"a":%s,"b":%s}' % (entry(), entry())).encode(), b"\0" * 8)
    elif case == "extra_key":
        _write(p, b'{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}', b"\0" * 8)
    with pytest.raises(ValueError, match=match):
        fastdl.load(p)


def test_kernels_take_any_native_float_descriptor():
    a = np.frombuffer(np.ones(4, np.float32).tobytes(), dtype="<f4").reshape(2, 2)  # equal, not the same object
    np.testing.assert_array_equal(fastdl._C.matmul(a, a), np.full((2, 2), 2, np.float32))
    with pytest.raises(TypeError, match="float32 or float64"):
        fastdl._C.matmul(a.astype(">f4"), a)


def test_saved_files_follow_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        fastdl.save({"a": np.zeros(2)}, tmp_path / "c.npz")
        fastdl.save({"a": np.zeros(2)}, tmp_path / "c.safetensors")
    finally:
        os.umask(old)
    for name in ("c.npz", "c.safetensors"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == 0o640, name
