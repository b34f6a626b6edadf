"""The curriculum demos run (shortened) and show what they claim."""
from __future__ import annotations

import numpy as np
import pytest

from fastdl import demos
from helpers import run_cli


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the demos save their pictures in the working folder


def quiet(name):
    lines = []
    res = demos.run(name, quick=True, out=lines.append)
    assert lines, name
    return res, "\n".join(lines)


def test_every_listed_demo_exists():
    assert set(demos.names()) == set(demos.DEMOS)
    with pytest.raises(KeyError, match="unknown demo"):
        demos.run("nope")


PICTURES = {"init": "init_activations.png", "lr-decay": "lr_schedules.png", "tune": "tune_search.png",
            "edges": "edges.png", "optimizers": "optimizers.png", "cnn-zoo": "cnn_feature_maps.png"}


@pytest.mark.parametrize("name", sorted(PICTURES))
def test_demos_save_their_pictures(tmp_path, name):
    """With matplotlib the picture is saved; without it, the demo says how to get it."""
    res, text = quiet(name)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "install matplotlib" in text
        return
    assert (tmp_path / PICTURES[name]).stat().st_size > 5000 and f"saved {PICTURES[name]}" in text


def test_init_demo():
    res, text = quiet("init")
    s = res["std"]
    he, tiny, large = s["He var 2/fan_in"], s["tiny N(0, 0.01^2)"], s["large N(0, 1)"]
    assert 0.3 < he[-1] < 3 and tiny[-1] < 1e-6 and large[-1] > 1e6
    assert s["Xavier var 1/fan_in"][-1] < he[-1] / 10


def test_dropout_demo():
    res, _ = quiet("dropout")
    assert set(res) == {"plain", "dropout 0.5", "L2 1e-2", "dropout 0.5 + L2 1e-2"}
    assert all(0 <= r["test"] <= 1 and r["gap"] == pytest.approx(r["train"] - r["test"]) for r in res.values())


def test_optimizers_demo():
    res, _ = quiet("optimizers")
    loss = res["loss"]
    assert all(v[-1] < v[0] for v in loss.values())
    assert loss["Adam"][-1] < loss["SGD lr 0.01"][-1] and loss["momentum 0.9"][-1] < loss["SGD lr 0.01"][-1]


def test_lr_decay_demo():
    res, _ = quiet("lr-decay")
    np.testing.assert_allclose(res["InverseTimeDecay(1.0)"]["lr"], 0.1 / (1 + np.arange(4)))
    assert res["constant"]["lr"] == [0.1] * 4


def test_tune_demo():
    res, text = quiet("tune")
    assert res["trials"] == 12 and res["round_best"][1] <= res["round_best"][0] + 0.05
    assert 1e-4 <= res["best"]["lr"] <= 1 and 0.9 <= res["best"]["beta"] <= 0.999


def test_transfer_demo():
    res, text = quiet("transfer")
    assert res["pretrain"] > 0.9 and "Measured" in text
    two = res["shots"][2]
    assert two["transfer"] > two["scratch"]  # the curriculum's claim (a large effect at 2 examples per class)


def test_multitask_demo():
    res, _ = quiet("multitask")
    assert 0.3 < res["missing"] < 0.37
    assert all(a > 0.8 for a in res["accuracy"].values())


def test_early_stopping_demo():
    res, _ = quiet("early-stopping")
    assert res["best"] == min(res["val_loss"])
    assert res["restored_val_loss"] == pytest.approx(res["best"], rel=1e-5)
    assert res["epochs_run"] == len(res["val_loss"])


def test_demo_cli_lists():
    out = run_cli("demo", "--list", check=True).stdout
    assert all(n in out for n in demos.DEMOS)


def test_batchnorm_demo():
    res, _ = quiet("batchnorm")
    assert res["with BatchNorm1d"]["loss"][0] < res["without"]["loss"][0]


def test_edges_and_padding_demos():
    res, _ = quiet("edges")
    np.testing.assert_array_equal(res["edge_map"], [[0, 30, 30, 0]] * 4)
    res, _ = quiet("padding")
    assert all(formula == measured for *_, formula, measured in res["rows"])


def test_cnn_zoo_demo():
    res, _ = quiet("cnn-zoo")
    assert all(r["parameters"] == r["published"] and np.isfinite(r["loss"]) for r in res.values())


def test_rnn_shape_demos():
    for name in ("many-to-one", "many-to-many"):
        res, _ = quiet(name)
        assert res["loss"][-1] < res["loss"][0] and res["accuracy"] > res["baseline"]
    res, _ = quiet("one-to-many")
    assert res["loss"][-1] < res["loss"][0] * 0.8


def test_char_lm_demo(tmp_path):
    res, text = quiet("char-lm")
    assert res["loss"][-1] < res["uniform"] - 0.5  # learned something about names
    try:
        import matplotlib  # noqa: F401
        assert (tmp_path / "char_lm_loss.png").stat().st_size > 5000
    except ImportError:
        assert "install matplotlib" in text
    samples = res["samples"][1.0]
    assert len(samples) == 10 and all(set(s) <= set("abcdefghijklmnopqrstuvwxyz") for s in samples)


def test_end_to_end_demo():
    from fastdl.demos.end_to_end import hand_features
    res, text = quiet("end-to-end")
    assert set(res) == {100, 1000} and "Measured" in text
    assert all(0.5 < v["pipeline"] <= 1 and 0.5 < v["end_to_end"] <= 1 for v in res.values())
    assert hand_features(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 196)


def test_date_translation_demo(tmp_path):
    """Four short epochs already translate most held-out dates; the full run (README) reaches the
    issue's >= 95%.  Beam search is checked not to lose to greedy decoding by more than one date."""
    lines = []
    res = demos.run("nmt", quick=True, out=lines.append, heatmap=str(tmp_path / "att.png"),
                    dates=["3rd of march 2001"])
    greedy, beam5 = res["results"]["greedy"], res["results"]["beam5"]
    assert greedy[0] >= 0.8 and beam5[0] >= greedy[0] - 0.005
    assert 0.9 < greedy[1] <= 1.0  # character BLEU
    assert [h["loss"] for h in res["history"]] == sorted(h["loss"] for h in res["history"])[::-1]
    tr = res["translator"]
    assert tr.translate("saturday april 28 1990") == "1990-04-28"
    assert any("'3rd of march 2001'" in line for line in lines)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert res["heatmap"] is None
    else:
        assert (tmp_path / "att.png").stat().st_size > 1000


def test_demo_cli_date_flag():
    out = run_cli("demo", "char-lm", "--date", "1.1.2000")
    assert out.returncode == 2 and "--date applies to date-translation" in out.stderr


def test_date_pairs():
    from fastdl import datasets
    from fastdl.datasets.dates import FORMATS, human_date
    pairs = datasets.date_pairs(500, seed=3)
    assert pairs == datasets.date_pairs(500, seed=3) and pairs != datasets.date_pairs(500, seed=4)
    import datetime
    for h, iso in pairs:
        d = datetime.date.fromisoformat(iso)
        assert 1950 <= d.year <= 2049 and h == h.lower()
    d = datetime.date(1990, 4, 28)
    assert human_date(d, "weekday month d yyyy") == "saturday april 28 1990"
    assert human_date(datetime.date(2019, 11, 10), "dd.mm.yy") == "10.11.19"
    assert human_date(datetime.date(1986, 5, 30), "m/d/yy") == "5/30/86"
    assert human_date(datetime.date(2001, 3, 3), "dth of month yyyy") == "3rd of march 2001"
    assert len(FORMATS) >= 12
    with pytest.raises(ValueError, match="unknown format"):
        datasets.date_pairs(3, formats=["nope"])


def test_word_vectors_demo(tmp_path):
    lines = []
    res = demos.run("word-vectors", quick=True, out=lines.append, png=str(tmp_path / "map.png"), progress=False)
    assert res["loss"][-1] < res["loss"][0] and res["glove_loss"][-1] < res["glove_loss"][0]
    assert res["network"]["network"] == pytest.approx(res["network"]["native"], rel=1e-5)
    assert res["network"]["after"] < res["network"]["network"]
    assert any(line.startswith("nearest neighbours (word2vec)") for line in lines)
    assert len(res["solved"]) == 8
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert res["map"] is None
    else:
        assert (tmp_path / "map.png").stat().st_size > 1000


def test_word_vectors_demo_on_a_file_with_evaluation(tmp_path):
    p = tmp_path / "t.txt"
    p.write_text("\n".join(["the cat sat on the mat", "the dog sat on the log", "a cat and a dog met"] * 40))
    q = tmp_path / "q.txt"
    q.write_text(": animals\ncat dog mat log\ncat zebra dog log\n")
    w = tmp_path / "w.tsv"
    w.write_text("cat\tdog\t8\nmat\tlog\t6\nsat\ton\t2\n")
    lines = []
    res = demos.run("word-vectors", quick=True, out=lines.append, text_path=str(p), analogies=str(q), pairs=str(w),
                    png=None, epochs=2, glove_epochs=2, progress=False)
    assert res["word2vec_analogies"]["total"] == 1 and res["word2vec_analogies"]["oov_ratio"] == 0.5
    assert res["GloVe_pairs"]["pairs"] == 3
    assert any("analogy accuracy" in line for line in lines)


def test_demo_cli_word_vector_flags(tmp_path):
    out = run_cli("demo", "char-lm", "--analogies", "x.txt")
    assert out.returncode == 2 and "apply to word-vectors only" in out.stderr
    out = run_cli("demo", "word-vectors", "--text", str(tmp_path / "missing.txt"))
    assert out.returncode == 2 and "no such file" in out.stderr
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xe9\n")
    out = run_cli("demo", "word-vectors", "--text", str(bad))
    assert out.returncode == 2 and "not valid utf-8" in out.stderr and "Traceback" not in out.stderr
