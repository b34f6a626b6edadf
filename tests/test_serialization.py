"""Checkpoints: round trips, atomic writes, refusal of bad files."""
from __future__ import annotations

import io
import json
import os
import pickle
import zipfile

import numpy as np
import pytest

import fastdl
from fastdl import nn, optim


def test_round_trip_nested(tmp_path):
    obj = {"a": np.arange(5, dtype=np.int16), "t": fastdl.tensor(np.ones((2, 2), np.float64)),
           "nested": {"x": np.float32(1.5), 3: [1, 2.5, "s", None, True], "tup": (0.1, float("nan"))},
           "lr": 1e-3, "name": "mlp"}
    p = tmp_path / "ck.npz"
    fastdl.save(obj, p)
    back = fastdl.load(p)
    assert back["a"].dtype == np.int16 and back["a"].tolist() == [0, 1, 2, 3, 4]
    assert isinstance(back["t"], fastdl.Tensor) and back["t"].dtype == np.float64
    assert back["nested"][3] == [1, 2.5, "s", None, True]
    assert back["nested"]["x"] == 1.5 and back["lr"] == 1e-3 and back["name"] == "mlp"
    assert back["nested"]["tup"][0] == 0.1 and np.isnan(back["nested"]["tup"][1])
    assert isinstance(back["nested"]["tup"], tuple)


def test_model_and_optimizer_state(tmp_path):
    m = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    opt = optim.SGD(m.parameters(), lr=0.1, momentum=0.9)
    m(fastdl.tensor(np.ones((2, 3), np.float32))).sum().backward()
    opt.step()
    fastdl.save({"model": m.state_dict(), "opt": opt.state_dict()}, tmp_path / "c.npz")
    ck = fastdl.load(tmp_path / "c.npz")
    m2 = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    m2.load_state_dict(ck["model"])
    opt2 = optim.SGD(m2.parameters(), lr=0.5)
    opt2.load_state_dict(ck["opt"])
    for a, b in zip(m.parameters(), m2.parameters()):
        np.testing.assert_array_equal(a.data, b.data)
    assert opt2.param_groups[0]["lr"] == 0.1
    np.testing.assert_array_equal(opt2.state_dict()["state"][0]["momentum_buffer"],
                                  opt.state_dict()["state"][0]["momentum_buffer"])


def test_truncated_file_refused(tmp_path):
    p = tmp_path / "ck.npz"
    fastdl.save({"w": np.ones(1000)}, p)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match="truncated|corrupt|not a"):
        fastdl.load(p)


def test_foreign_and_pickle_files_refused(tmp_path):
    np.savez(tmp_path / "plain.npz", w=np.ones(3))
    with pytest.raises(ValueError, match="not a fastdl checkpoint"):
        fastdl.load(tmp_path / "plain.npz")
    (tmp_path / "p.pkl").write_bytes(pickle.dumps({"w": [1, 2]}))
    with pytest.raises(ValueError):
        fastdl.load(tmp_path / "p.pkl")
    np.savez(tmp_path / "obj.npz", __fastdl__=np.frombuffer(b'{"format":"fastdl-checkpoint","root":1}', np.uint8),
             a0=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError):
        fastdl.load(tmp_path / "obj.npz")
    np.save(tmp_path / "bare.npy", np.ones(3))
    with pytest.raises(ValueError, match="bare"):
        fastdl.load(tmp_path / "bare.npy")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError):
        fastdl.load(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError):
        fastdl.load(tmp_path / "missing.npz")


def test_interrupted_save_keeps_last_good_file(tmp_path, monkeypatch):
    p = tmp_path / "ck.npz"
    fastdl.save({"w": np.zeros(3)}, p)

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(np, "savez", boom)
    with pytest.raises(KeyboardInterrupt):
        fastdl.save({"w": np.ones(3)}, p)
    monkeypatch.undo()
    np.testing.assert_array_equal(fastdl.load(p)["w"], np.zeros(3))
    assert [f for f in os.listdir(tmp_path)] == ["ck.npz"]  # no temp file left behind


def test_unsupported_values_rejected(tmp_path):
    with pytest.raises(TypeError, match="cannot save"):
        fastdl.save({"f": lambda: 0}, tmp_path / "x.npz")
    with pytest.raises(TypeError, match="mapping"):
        fastdl.save([1, 2], tmp_path / "x.npz")
    assert not (tmp_path / "x.npz").exists()


def _npz(path, manifest, **arrays):
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    meta = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    np.savez(path, __fastdl__=meta, **arrays)


def test_malformed_checkpoints_raise_value_error(tmp_path):
    """Hand-made bad files: each a ValueError naming the problem, never KeyError, RecursionError or a
    huge allocation."""
    base = {"format": "fastdl-checkpoint", "version": 1}
    cases = {
        "missing array": dict(root={"$m": [["w", {"$a": "a99"}]]}),
        "several tags": dict(root={"$a": "a0", "$l": []}),
        "bad number": dict(root={"$f": "not a float"}),
        "bad mapping": dict(root={"$m": [["w"]]}),
        "no root": dict(),
    }
    manifests = {name: {**base, **extra} for name, extra in cases.items()}
    manifests["deep"] = json.dumps(base)[:-1] + ', "root": ' + '{"$l": [' * 5000 + '{"$l": []}' + "]}" * 5000 + "}"
    for name, manifest in manifests.items():
        p = tmp_path / f"{name.replace(' ', '_')}.npz"
        _npz(p, manifest, a0=np.zeros(3))
        with pytest.raises(ValueError, match="load:"):
            fastdl.load(p)
    # an array whose header declares terabytes but holds 24 bytes
    p = tmp_path / "huge.npz"
    fastdl.save({"w": np.zeros(3)}, p)
    with zipfile.ZipFile(p) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)})
    members["a0.npy"] = buf.getvalue() + np.zeros(3).tobytes()
    with zipfile.ZipFile(p, "w") as z:
        for n, data in members.items():
            z.writestr(n, data)
    with pytest.raises(ValueError, match="declares shape"):
        fastdl.load(p)


def test_interrupted_saves_leave_no_temporaries(tmp_path):
    dead = tmp_path / ".tmp-fastdl-999999999-abc.npz"  # a writer that no longer exists
    dead.write_bytes(b"partial")
    mine = tmp_path / f".tmp-fastdl-{os.getpid()}-xyz.npz"  # a save in progress (this process)
    mine.write_bytes(b"partial")
    fastdl.save({"w": np.ones(2)}, tmp_path / "ck.npz")
    assert not dead.exists() and mine.exists()
    assert np.array_equal(fastdl.load(tmp_path / "ck.npz")["w"], np.ones(2))
