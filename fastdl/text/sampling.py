"""An alias table (Walker / Vose): O(1) draws from a discrete distribution."""
from __future__ import annotations

import numpy as np

__all__ = ["AliasTable"]


class AliasTable:
    """Draws index k with probability ``probs[k]`` in O(1): pick a column m uniformly, keep it with
    probability ``prob[m]``, else take ``alias[m]`` (Vose's construction).  ``prob`` (float32) and
    ``alias`` (int32) are what the native word2vec trainer reads."""

    def __init__(self, probs):
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 1 or p.size == 0:
            raise ValueError(f"AliasTable: probs must be a non-empty 1-D array, got shape {p.shape}")
        if not np.all(np.isfinite(p)) or np.any(p < 0) or not p.sum() > 0:
            raise ValueError("AliasTable: probs must be finite, >= 0 and not all 0")
        n = p.size
        scaled = p * (n / p.sum())
        prob = np.ones(n, np.float64)
        alias = np.arange(n, dtype=np.int32)
        small = [i for i in range(n) if scaled[i] < 1.0]
        large = [i for i in range(n) if scaled[i] >= 1.0]
        while small and large:
            s, g = small.pop(), large.pop()
            prob[s], alias[s] = scaled[s], g
            scaled[g] -= 1.0 - scaled[s]
            (small if scaled[g] < 1.0 else large).append(g)
        # leftovers are 1 up to rounding
        self.prob = prob.astype(np.float32)
        self.alias = alias
        self.probs = p / p.sum()

    def __len__(self) -> int:
        return self.prob.size

    def sample(self, size, rng=None) -> np.ndarray:
        """``size`` draws as int64, from a NumPy Generator (``rng``, default a fresh one)."""
        rng = np.random.default_rng(rng)
        m = rng.integers(0, len(self), size)
        coin = rng.random(size)
        return np.where(coin < self.prob[m], m, self.alias[m]).astype(np.int64)

    def distribution(self) -> np.ndarray:
        """The distribution the table draws from (recomputed from prob and alias): equals probs."""
        n = len(self)
        d = self.prob.astype(np.float64) / n
        np.add.at(d, self.alias, (1.0 - self.prob.astype(np.float64)) / n)
        return d
