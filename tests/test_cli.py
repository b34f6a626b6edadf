"""The command line as a user meets it: one-line errors with exit codes, --debug tracebacks, quiet pipes,
validation split and a single test score, predictions for image files, training curves."""
from __future__ import annotations

import subprocess
import sys
import tempfile

import numpy as np
import pytest

import fastdl
from fastdl import models
from fastdl.cli import MODELS
from helpers import run_cli


def _checkpoint(tmp_path):
    path = tmp_path / "mlp.npz"
    fastdl.manual_seed(0)
    m = models.mlp(784, (256, 128), 10, dropout=0.2)
    fastdl.save({"model": "mlp", "config": MODELS["mlp"], "state_dict": m.state_dict()}, path)
    return path


@pytest.mark.parametrize("args,code,message", [
    (("evaluate", "/nonexistent/ck.npz"), 1, "no such checkpoint"),
    (("predict", "/nonexistent/ck.npz"), 1, "no such checkpoint"),
    (("train", "--epochs", "0"), 2, "expected a positive integer"),
    (("train", "--lr", "-1"), 2, "expected a positive finite number"),
    (("train", "--batch-size", "many"), 2, "expected a positive integer"),
    (("train", "--val-split", "1.5"), 2, "fraction"),
    (("train", "--model", "gpt"), 2, "invalid choice"),
    (("train", "--save", "/nonexistent/dir/w.npz"), 1, "not a writable folder"),
    (("demo", "char-lm", "--text", "/nonexistent.txt"), 1, "No such file"),
])
def test_user_errors_are_one_line(args, code, message):
    res = run_cli(*args)
    assert res.returncode == code, (res.returncode, res.stderr)
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
    if code == 1:
        assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_debug_shows_the_traceback(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"junk")
    res = run_cli("--debug", "evaluate", str(tmp_path / "junk.npz"))
    assert res.returncode != 0 and "Traceback" in res.stderr


def test_a_closed_pipe_ends_quietly():
    cmd = f"{sys.executable} -m fastdl info | head -1"
    res = subprocess.run(cmd, shell=True, capture_output=True, text=True, cwd=tempfile.gettempdir(), timeout=120)
    assert res.stdout.startswith("fastdl ") and res.stderr == "", res.stderr
    p = subprocess.run([sys.executable, "-c", "import sys, fastdl.cli as c; sys.stdout.close(); "
                        "sys.exit(c.main(['info']))"], capture_output=True, text=True, cwd=tempfile.gettempdir())
    assert "Traceback" not in p.stderr


def test_predict_reads_image_files(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    ck = _checkpoint(tmp_path)
    (x, _), _ = fastdl.datasets.mnist_5k()
    Image.fromarray(x[0]).resize((56, 56)).save(tmp_path / "digit.png")  # larger, light on dark
    Image.fromarray(255 - x[1]).save(tmp_path / "paper.jpg")  # dark ink on light paper
    res = run_cli("predict", str(ck), str(tmp_path / "digit.png"), str(tmp_path / "paper.jpg"))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 2 and all("predicted" in ln and "p=" in ln for ln in lines)
    (tmp_path / "fake.png").write_text("not an image")
    res = run_cli("predict", str(ck), str(tmp_path / "fake.png"))
    assert res.returncode == 1 and "cannot read" in res.stderr and "Traceback" not in res.stderr
    res = run_cli("predict", str(ck), "--count", "3")
    assert res.returncode == 0 and len(res.stdout.strip().splitlines()) == 3


def test_predict_images_match_the_test_digits(tmp_path):
    """A test digit saved as PNG is classified as the built-in digit is (the same preprocessing)."""
    Image = pytest.importorskip("PIL.Image")
    from fastdl.cli import _read_digit
    (_, _), (xte, _) = fastdl.datasets.mnist_5k()
    Image.fromarray(xte[3]).save(tmp_path / "t.png")
    np.testing.assert_allclose(_read_digit(str(tmp_path / "t.png")), xte[3].astype(np.float32), atol=1.0)


@pytest.mark.slow
def test_train_validates_on_a_split_and_tests_once(tmp_path):
    res = run_cli("train", "--model", "mlp", "--epochs", "2", "--no-progress", "--save", str(tmp_path / "w.npz"),
                  "--plot", str(tmp_path / "curves.png"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    assert "3600 train / 400 validation / 1000 test" in out
    assert out.count("test accuracy") == 1 and "val_accuracy" in out
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "curves.png").stat().st_size > 5000
    except ImportError:
        assert "matplotlib" in res.stderr


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    from fastdl.train import History
    h = History()
    for e in range(3):
        h.append(e, {"loss": 1.0 / (e + 1), "val_loss": 1.2 / (e + 1), "accuracy": 0.5 + 0.1 * e,
                     "val_accuracy": 0.45 + 0.1 * e, "lr": 0.1 * 0.5 ** e})
    assert h.plot(tmp_path / "h.png") == str(tmp_path / "h.png")
    assert (tmp_path / "h.png").stat().st_size > 5000
    with pytest.raises(ValueError, match="nothing to plot"):
        History().plot(tmp_path / "e.png")
