"""Beam search over any step function: n-best hypotheses with a length penalty, EOS ending a
hypothesis, finished hypotheses competing with open ones until none of the open can win."""
from __future__ import annotations

import numpy as np

__all__ = ["beam_search"]


def _reorder(state, idx):
    """Every array (or Tensor) in a nested state, indexed by ``idx`` on axis 0."""
    if state is None:
        return None
    if isinstance(state, dict):
        return {k: _reorder(v, idx) for k, v in state.items()}
    if isinstance(state, (tuple, list)):
        return type(state)(_reorder(v, idx) for v in state)
    if hasattr(state, "shape") and len(state.shape) >= 1:
        return state[idx]
    return state


def _positive(v, name):
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        raise ValueError(f"beam_search: {name} must be a positive integer, got {v!r}")
    return int(v)


def beam_search(step_fn, init_state, bos: int, eos: int, beam_width: int, max_len: int, length_penalty: float = 0.0,
                n_best: int = 1):
    """The ``n_best`` most likely token sequences under ``step_fn``, best first.

    ``step_fn(tokens, state) -> (log_probs, state)``: ``tokens`` (k,) are the last tokens of the k
    open hypotheses, ``log_probs`` (k, V) the log-probabilities of the next token; every array in
    ``state`` (an array, Tensor, or a tuple/list/dict of them) has the hypotheses on axis 0, and the
    search reorders them.  ``init_state`` holds one hypothesis (axis 0 of size 1).

    Returns ``[(tokens, score), ...]``: ``tokens`` a list without BOS and without the final EOS;
    ``score`` the summed log-probability (EOS included) divided by ``len ** length_penalty``, with
    ``len`` the number of tokens generated (EOS included).  A hypothesis still open after ``max_len``
    steps ends there and competes with the finished ones.
    """
    beam_width, max_len, n_best = _positive(beam_width, "beam_width"), _positive(max_len, "max_len"), \
        _positive(n_best, "n_best")
    if n_best > beam_width:
        raise ValueError(f"beam_search: n_best ({n_best}) must be <= beam_width ({beam_width})")
    lp = float(length_penalty)

    def norm(raw, length):
        return raw / (length ** lp) if lp else raw

    seqs, raw, state = [[]], np.zeros(1), init_state
    tokens = np.array([bos], dtype=np.int64)
    finished = []  # (score, order, tokens)
    for t in range(1, max_len + 1):
        logp, state = step_fn(tokens, state)
        logp = np.asarray(getattr(logp, "data", logp), dtype=np.float64)
        if logp.ndim != 2 or logp.shape[0] != len(seqs):
            raise ValueError(f"beam_search: step_fn returned log_probs of shape {logp.shape}, expected "
                             f"({len(seqs)}, vocabulary size)")
        if not 0 <= eos < logp.shape[1]:
            raise ValueError(f"beam_search: eos {eos} is outside the vocabulary of {logp.shape[1]} tokens")
        total = (raw[:, None] + logp).ravel()
        order = np.argsort(-total, kind="stable")
        keep_b, keep_tok, keep_raw = [], [], []
        for flat in order:
            if len(keep_b) == beam_width or not np.isfinite(total[flat]):
                break
            b, tok = divmod(int(flat), logp.shape[1])
            if tok == eos:
                finished.append((norm(total[flat], t), len(finished), seqs[b]))
            else:
                keep_b.append(b)
                keep_tok.append(tok)
                keep_raw.append(total[flat])
        finished.sort(key=lambda f: (-f[0], f[1]))
        if not keep_b:
            break
        seqs = [seqs[b] + [tok] for b, tok in zip(keep_b, keep_tok)]
        raw, tokens = np.array(keep_raw), np.array(keep_tok, dtype=np.int64)
        if t == max_len:  # out of steps: the open hypotheses end here
            finished += [(norm(r, t), len(finished) + i, s) for i, (r, s) in enumerate(zip(raw, seqs))]
            finished.sort(key=lambda f: (-f[0], f[1]))
            break
        if len(finished) >= n_best:
            # the best any open hypothesis can still reach: its log-probability only falls, and the
            # length penalty is monotonic in the length, so one end of [t + 1, max_len] bounds it
            best = max(norm(raw[0], t + 1), norm(raw[0], max_len))
            if best <= finished[n_best - 1][0]:
                break
        state = _reorder(state, np.array(keep_b, dtype=np.int64))
    return [(list(s), float(score)) for score, _, s in finished[:n_best]]
