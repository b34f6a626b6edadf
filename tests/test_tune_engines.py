"""Trials on the engines users already run: a process pool, a local Dask cluster (2 worker processes on
loopback) and a local Ray instance give the same trials as a serial run for the same seed, and a
failed trial is reported with its error instead of losing the search."""
from __future__ import annotations

import math
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import pytest

from fastdl import tune
from helpers import tune_objective, tune_objective_flaky

SPACE = {"lr": tune.LogUniform(1e-4, 1), "beta": tune.OneMinusLogUniform(0.9, 0.999),
         "units": tune.IntUniform(16, 64)}
HERE = os.path.dirname(os.path.abspath(__file__))


def _same(a, b):
    assert [t.config for t in a.trials] == [t.config for t in b.trials]
    assert [t.score for t in a.trials] == pytest.approx([t.score for t in b.trials], nan_ok=True)
    assert [t.info for t in a.trials] == [t.info for t in b.trials]


def _flaky_search(**kw):
    with pytest.warns(RuntimeWarning, match=r"tune: \d+ of 12 trials failed"):
        return tune.random_search(tune_objective_flaky, SPACE, n_trials=12, seed=4, **kw)


def test_failed_trials_are_reported_not_lost():
    res = _flaky_search()
    failed = res.failed
    assert 0 < len(failed) < 12 and len(res.trials) == 12
    for t in failed:
        assert t.config["units"] > 56 and math.isnan(t.score)
        assert t.info["error"] == f"ValueError: out of memory with {t.config['units']} units"
    assert not math.isnan(res.best.score) and res.best.config["units"] <= 56
    _same(res, _flaky_search(n_jobs=2))
    with ThreadPoolExecutor(2) as ex:
        _same(res, _flaky_search(executor=ex))


def test_all_failed_raises_the_first_error():
    with pytest.raises(tune.TrialError, match="all 3 trials failed; the first: ValueError: out of memory"):
        tune.random_search(tune_objective_flaky, {"units": tune.IntUniform(60, 64), "lr": tune.Uniform(0, 1),
                                                  "beta": tune.Uniform(0, 1)}, n_trials=3)


def test_coarse_to_fine_narrows_around_successful_trials_only():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = tune.coarse_to_fine(tune_objective_flaky, SPACE, n_trials=12, rounds=2, top_k=3, seed=1)
    assert res.final_space["units"].high <= 56 + 16  # narrowed around trials that ran


def test_dask_local_cluster():
    distributed = pytest.importorskip("dask.distributed")
    serial = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (ResourceWarning, DeprecationWarning, UserWarning))
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                      dashboard_address=None, worker_dashboard_address=None) as cluster, \
                distributed.Client(cluster, timeout="60s") as client:
            client.run(lambda: __import__("sys").path.insert(0, HERE))  # the objective lives in tests/helpers.py
            on_client = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3, executor=client)
            on_executor = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3,
                                             executor=client.get_executor())
            with pytest.warns(RuntimeWarning, match="trials failed"):
                flaky = tune.random_search(tune_objective_flaky, SPACE, n_trials=12, seed=4, executor=client)
            fine = tune.coarse_to_fine(tune_objective, SPACE, n_trials=6, rounds=2, seed=0, executor=client)
    _same(on_client, serial)
    _same(on_executor, serial)
    _same(flaky, _flaky_search())
    _same(fine, tune.coarse_to_fine(tune_objective, SPACE, n_trials=6, rounds=2, seed=0))


def test_ray_local_instance():
    ray = pytest.importorskip("ray")
    serial = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"PYTHONPATH": HERE}})
    try:
        on_ray = tune.random_search(tune_objective, SPACE, n_trials=8, seed=3, executor=tune.RayExecutor())
        with pytest.warns(RuntimeWarning, match="trials failed"):
            flaky = tune.random_search(tune_objective_flaky, SPACE, n_trials=12, seed=4,
                                       executor=tune.RayExecutor(num_cpus=1))
    finally:
        ray.shutdown()
    _same(on_ray, serial)
    assert [t.config for t in flaky.trials] == [t.config for t in _flaky_search().trials]
    for t in flaky.failed:  # Ray wraps the trial's exception; its message survives
        assert "out of memory with" in t.info["error"]
