"""Hyperparameter search: random search on sensible scales, coarse to fine, in parallel.

Search spaces sample the way the curriculum teaches: a learning rate uniform
in its exponent (``LogUniform(1e-4, 1)``), a momentum/Adam beta through
``1 - beta`` on a log scale (``OneMinusLogUniform(0.9, 0.999)``).  Trials run
in worker processes with ``n_jobs > 1``, or on any executor with
``submit(fn, *args)`` returning futures with ``result()``
(``concurrent.futures``, a Dask ``distributed.Client``, or
:class:`RayExecutor` on a Ray cluster).  All configurations are drawn up front
from ``seed``, so results do not depend on how many workers ran them or
where.  A trial that raises (or whose worker dies) is kept with a NaN score
and the error in ``info["error"]``; ``SearchResult.failed`` lists them, a
warning counts them, and a search in which every trial failed raises the
first trial's error.
"""
from __future__ import annotations

import math
import traceback
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np


class Space:
    def sample(self, rng: np.random.Generator):
        raise NotImplementedError

    def narrow(self, values) -> "Space":
        """A smaller space around ``values`` (the best trials' settings), for the next round."""
        return self


@dataclass(frozen=True)
class Uniform(Space):
    low: float
    high: float

    def __post_init__(self):
        if not self.low <= self.high:
            raise ValueError(f"Uniform: low must be <= high, got {self.low}, {self.high}")

    def sample(self, rng):
        return float(rng.uniform(self.low, self.high))

    def narrow(self, values):
        lo, hi = min(values), max(values)
        pad = 0.25 * (hi - lo) + 0.05 * (self.high - self.low)
        return Uniform(max(self.low, lo - pad), min(self.high, hi + pad))


@dataclass(frozen=True)
class LogUniform(Space):
    """x = 10 ** u with u uniform in [log10(low), log10(high)]."""
    low: float
    high: float

    def __post_init__(self):
        if not 0 < self.low <= self.high:
            raise ValueError(f"LogUniform: need 0 < low <= high, got {self.low}, {self.high}")

    def sample(self, rng):
        return float(10 ** rng.uniform(math.log10(self.low), math.log10(self.high)))

    def narrow(self, values):
        lo, hi = math.log10(min(values)), math.log10(max(values))
        pad = 0.25 * (hi - lo) + 0.05 * (math.log10(self.high) - math.log10(self.low))
        return LogUniform(max(self.low, 10 ** (lo - pad)), min(self.high, 10 ** (hi + pad)))


@dataclass(frozen=True)
class OneMinusLogUniform(Space):
    """beta = 1 - 10 ** u with u uniform in [log10(1 - high), log10(1 - low)]: as fine near 0.999 as near 0.9."""
    low: float
    high: float

    def __post_init__(self):
        if not 0 <= self.low <= self.high < 1:
            raise ValueError(f"OneMinusLogUniform: need 0 <= low <= high < 1, got {self.low}, {self.high}")

    def sample(self, rng):
        return float(1 - 10 ** rng.uniform(math.log10(1 - self.high), math.log10(1 - self.low)))

    def narrow(self, values):
        inner = LogUniform(1 - self.high, 1 - self.low).narrow([1 - v for v in values])
        return OneMinusLogUniform(1 - inner.high, 1 - inner.low)


@dataclass(frozen=True)
class IntUniform(Space):
    """An integer uniform in [low, high] (both included)."""
    low: int
    high: int

    def __post_init__(self):
        if not self.low <= self.high:
            raise ValueError(f"IntUniform: low must be <= high, got {self.low}, {self.high}")

    def sample(self, rng):
        return int(rng.integers(self.low, self.high + 1))

    def narrow(self, values):
        lo, hi = min(values), max(values)
        pad = max(1, (hi - lo) // 4)
        return IntUniform(max(self.low, lo - pad), min(self.high, hi + pad))


@dataclass(frozen=True)
class Choice(Space):
    options: tuple

    def __init__(self, options):
        object.__setattr__(self, "options", tuple(options))
        if not self.options:
            raise ValueError("Choice: give at least one option")

    def sample(self, rng):
        return self.options[int(rng.integers(len(self.options)))]

    def narrow(self, values):
        kept = tuple(o for o in self.options if o in set(values))
        return Choice(kept or self.options)


@dataclass
class Trial:
    index: int
    config: dict
    score: float
    round: int = 0
    info: dict = field(default_factory=dict)


class SearchResult:
    """Trials in the order they were drawn; ``sorted()`` best first; ``best``; ``table()``."""

    def __init__(self, trials, mode: str):
        self.trials, self.mode = list(trials), mode

    def sorted(self):
        sign = 1 if self.mode == "min" else -1
        return sorted(self.trials, key=lambda t: (math.isnan(t.score), sign * t.score if not math.isnan(t.score)
                                                  else 0, t.index))

    @property
    def best(self) -> Trial:
        return self.sorted()[0]

    @property
    def failed(self) -> list:
        """The trials whose objective raised: score NaN, the error in ``info["error"]``."""
        return [t for t in self.trials if "error" in t.info]

    def table(self, top: int | None = None) -> str:
        rows = self.sorted()[:top]
        keys = list(self.trials[0].config) if self.trials else []
        head = f"{'rank':>4} {'trial':>5} {'round':>5} {'score':>12}  " + "  ".join(f"{k:>12}" for k in keys)

        def fmt(v):
            return f"{v:12.4g}" if isinstance(v, float) else f"{v!s:>12}"
        lines = [head] + [f"{i + 1:>4} {t.index:>5} {t.round:>5} {t.score:12.5g}  " +
                          "  ".join(fmt(t.config[k]) for k in keys) for i, t in enumerate(rows)]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"SearchResult({len(self.trials)} trials, best score {self.best.score:.5g}: {self.best.config})"


def _score(out) -> tuple:
    if isinstance(out, dict):
        if "score" not in out:
            raise KeyError("tune: an objective returning a dict must include 'score'")
        return float(out["score"]), {k: v for k, v in out.items() if k != "score"}
    return float(out), {}


class TrialError(RuntimeError):
    """Every trial of a search failed; the message is the first one's error."""


def _outcome(future):
    """``(value, None)`` or ``(None, "ExcType: message")`` for one trial's future."""
    try:
        return future.result(), None
    except Exception as exc:  # the trial's own error, or its worker's death: report it, keep the others
        return None, "".join(traceback.format_exception_only(type(exc), exc)).strip()


class _Done:
    """A finished future: the serial path reports errors the same way as the parallel ones."""

    def __init__(self, fn, arg):
        try:
            self.value, self.exc = fn(arg), None
        except Exception as exc:
            self.value, self.exc = None, exc

    def result(self):
        if self.exc is not None:
            raise self.exc
        return self.value


def _run(objective, configs, n_jobs, executor):
    if executor is not None:
        return [_outcome(f) for f in [executor.submit(objective, c) for c in configs]]
    if n_jobs == 1:
        return [_outcome(_Done(objective, c)) for c in configs]
    import multiprocessing as mp
    # spawn, not fork: a forked child inherits locks (NumPy's BLAS pool, user threads) in any state
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=mp.get_context("spawn")) as ex:
        return [_outcome(f) for f in [ex.submit(objective, c) for c in configs]]


class RayExecutor:
    """Run trials as Ray tasks: ``tune.random_search(f, space, executor=tune.RayExecutor())`` after
    ``ray.init()`` (a local instance or ``ray.init(address=...)`` for a cluster).  ``options`` go to
    ``ray.remote`` (e.g. ``num_cpus=2`` per trial)."""

    def __init__(self, **options):
        try:
            import ray
        except ImportError:
            raise ImportError("RayExecutor needs Ray: pip install ray") from None
        self._ray, self._options, self._remote = ray, options, {}

    def submit(self, fn, *args, **kwargs):
        remote = self._remote.get(fn)
        if remote is None:
            remote = self._remote[fn] = self._ray.remote(**self._options)(fn) if self._options else self._ray.remote(fn)
        return remote.remote(*args, **kwargs).future()


def _check(space, n_trials, n_jobs, mode):
    if not space or not all(isinstance(s, Space) for s in space.values()):
        raise TypeError("tune: space must map names to Space objects (LogUniform, Uniform, Choice, ...)")
    if n_trials < 1 or n_jobs < 1:
        raise ValueError(f"tune: n_trials and n_jobs must be >= 1, got {n_trials}, {n_jobs}")
    if mode not in ("min", "max"):
        raise ValueError(f"tune: mode must be 'min' or 'max', got {mode!r}")


def random_search(objective, space: dict, n_trials: int = 20, seed: int = 0, n_jobs: int = 1, executor=None,
                  mode: str = "min") -> SearchResult:
    """Evaluate ``objective(config)`` (a float, or a dict with "score") on ``n_trials`` random configs.

    ``objective`` must be picklable (a module-level function) when ``n_jobs > 1``.
    """
    _check(space, n_trials, n_jobs, mode)
    rng = np.random.default_rng(seed)
    configs = [{k: s.sample(rng) for k, s in space.items()} for _ in range(n_trials)]
    outs = _run(objective, configs, n_jobs, executor)
    trials = []
    for i, (c, (o, err)) in enumerate(zip(configs, outs)):
        if err is None:
            try:
                score, info = _score(o)
            except (KeyError, TypeError, ValueError) as exc:
                err = f"{type(exc).__name__}: {exc}"
        if err is not None:
            score, info = float("nan"), {"error": err}
        trials.append(Trial(i, c, score, 0, info))
    res = SearchResult(trials, mode)
    if res.failed:
        if len(res.failed) == len(trials):
            raise TrialError(f"tune: all {len(trials)} trials failed; the first: {res.failed[0].info['error']}")
        warnings.warn(f"tune: {len(res.failed)} of {len(trials)} trials failed (SearchResult.failed); the first: "
                      f"{res.failed[0].info['error']}", RuntimeWarning, stacklevel=2)
    return res


def coarse_to_fine(objective, space: dict, n_trials: int = 20, rounds: int = 2, top_k: int = 5, seed: int = 0,
                   n_jobs: int = 1, executor=None, mode: str = "min") -> SearchResult:
    """Random search in rounds: each round samples a space narrowed around the previous best ``top_k``."""
    _check(space, n_trials, n_jobs, mode)
    trials: list = []
    for r in range(rounds):
        res = random_search(objective, space, n_trials, seed + r, n_jobs, executor, mode)
        for t in res.trials:
            trials.append(Trial(len(trials), t.config, t.score, r, t.info))
        best = [t for t in SearchResult(trials, mode).sorted() if not math.isnan(t.score)][:top_k]
        space = {k: s.narrow([t.config[k] for t in best]) for k, s in space.items()}
    out = SearchResult(trials, mode)
    out.final_space = space
    return out


__all__ = ["Space", "Uniform", "LogUniform", "OneMinusLogUniform", "IntUniform", "Choice", "Trial", "SearchResult",
           "random_search", "coarse_to_fine", "RayExecutor", "TrialError"]
