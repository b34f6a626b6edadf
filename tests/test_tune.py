"""Hyperparameter search."""
from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from fastdl import tune
from helpers import tune_objective

SPACE = {"lr": tune.LogUniform(1e-4, 1), "beta": tune.OneMinusLogUniform(0.9, 0.999),
         "units": tune.IntUniform(16, 64)}


def _uniformity(u, lo, hi, bins=10):
    """Chi-square of bucket counts of ``u`` in [lo, hi] against uniform (df = 9: 99.9% point is 27.9)."""
    counts, _ = np.histogram(u, bins=bins, range=(lo, hi))
    e = len(u) / bins
    return float(((counts - e) ** 2 / e).sum())


def test_log_uniform_is_uniform_in_the_exponent():
    rng = np.random.default_rng(0)
    s = tune.LogUniform(1e-4, 1)
    x = np.array([s.sample(rng) for _ in range(20000)])
    assert x.min() >= 1e-4 and x.max() <= 1
    assert _uniformity(np.log10(x), -4, 0) < 27.9
    assert _uniformity(x, 1e-4, 1) > 1000  # and clearly not uniform on the linear scale
    # each decade gets the same share: about a quarter of the samples below 1e-3
    assert abs(np.mean(x < 1e-3) - 0.25) < 0.02


def test_one_minus_log_uniform_for_betas():
    rng = np.random.default_rng(1)
    s = tune.OneMinusLogUniform(0.9, 0.999)
    b = np.array([s.sample(rng) for _ in range(20000)])
    assert b.min() >= 0.9 and b.max() <= 0.999
    assert _uniformity(np.log10(1 - b), -3, -1) < 27.9
    assert abs(np.mean(b > 0.99) - 0.5) < 0.02  # as many in [0.99, 0.999] as in [0.9, 0.99]


def test_other_spaces():
    rng = np.random.default_rng(2)
    assert {tune.IntUniform(1, 3).sample(rng) for _ in range(200)} == {1, 2, 3}
    assert {tune.Choice(["a", "b"]).sample(rng) for _ in range(50)} == {"a", "b"}
    with pytest.raises(ValueError):
        tune.LogUniform(0, 1)
    with pytest.raises(ValueError):
        tune.OneMinusLogUniform(0.9, 1.0)


def test_random_search_finds_best_and_reports_table():
    res = tune.random_search(tune_objective, SPACE, n_trials=60, seed=0)
    best = res.best
    assert best.score == min(t.score for t in res.trials)
    assert 1e-3 < best.config["lr"] < 1e-1
    table = res.table(top=5).splitlines()
    assert len(table) == 6 and "lr" in table[0] and table[1].split()[0] == "1"


def test_parallel_runs_match_serial():
    serial = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3)
    par = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3, n_jobs=2)
    with ThreadPoolExecutor(2) as ex:  # any concurrent.futures-style executor plugs in
        ext = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3, executor=ex)
    for r in (par, ext):
        assert [t.config for t in r.trials] == [t.config for t in serial.trials]
        assert [t.score for t in r.trials] == [t.score for t in serial.trials]


def test_coarse_to_fine_narrows_and_improves():
    res = tune.coarse_to_fine(tune_objective, SPACE, n_trials=30, rounds=3, top_k=5, seed=0)
    assert len(res.trials) == 90
    first = min(t.score for t in res.trials if t.round == 0)
    assert res.best.score <= first
    lr_space = res.final_space["lr"]
    assert lr_space.low > 1e-4 and lr_space.high < 1 and lr_space.low <= 0.01 <= lr_space.high * 10
    assert not math.isnan(res.best.score)


def test_maximize_and_dict_scores():
    res = tune.random_search(lambda c: {"score": -tune_objective(c), "note": 1}, SPACE, n_trials=10, mode="max")
    assert res.best.score == max(t.score for t in res.trials) and res.best.info == {"note": 1}
