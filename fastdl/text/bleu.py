"""BLEU (Papineni et al., 2002): clipped n-gram precisions, a brevity penalty against the closest
reference length, sums over the corpus; NLTK's layout and smoothing methods, and sacrebleu's.

Scores are on a 0-1 scale (sacrebleu reports 0-100).  On the same tokens, ``bleu`` equals NLTK's
``corpus_bleu`` (``smoothing=None`` or ``"method1"``..``"method3"``) and sacrebleu's
``corpus_bleu(..., tokenize="none")`` (``smoothing="exp"``, its default, ``"floor"``, ``"add-k"``).
"""
from __future__ import annotations

import math
from collections import Counter

__all__ = ["bleu", "sentence_bleu", "SMOOTHING"]

SMOOTHING = (None, "none", "exp", "floor", "add-k", "method1", "method2", "method3")


def _ngrams(tokens, n):
    return Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def _check_tokens(seq, what):
    if isinstance(seq, str):
        raise TypeError(f"bleu: {what} must be a list of tokens, got a string (split it first)")
    try:
        return list(seq)
    except TypeError:
        raise TypeError(f"bleu: {what} must be a list of tokens, got {type(seq).__name__}") from None


def _stats(candidates, references, max_n):
    """Per order: clipped matches and candidate n-gram counts (sacrebleu's, and NLTK's at least one per
    sentence); total candidate length and closest-reference length (ties: the shorter)."""
    if isinstance(candidates, str) or isinstance(references, str):
        raise TypeError("bleu: candidates and references must be lists of token lists, not strings")
    candidates, references = list(candidates), list(references)
    if not candidates:
        raise ValueError("bleu: candidates is empty")
    if len(candidates) != len(references):
        raise ValueError(f"bleu: {len(candidates)} candidates but {len(references)} reference lists")
    correct, total, total_nltk = [0] * max_n, [0] * max_n, [0] * max_n
    c_len = r_len = 0
    for i, (cand, refs) in enumerate(zip(candidates, references)):
        cand = _check_tokens(cand, f"candidates[{i}]")
        if isinstance(refs, str):
            raise TypeError(f"bleu: references[{i}] must be a list of token lists, got a string")
        refs = [_check_tokens(r, f"references[{i}][{j}]") for j, r in enumerate(refs)]
        if not refs:
            raise ValueError(f"bleu: references[{i}] is empty; every candidate needs at least one reference")
        c_len += len(cand)
        r_len += min((abs(len(r) - len(cand)), len(r)) for r in refs)[1]
        for n in range(1, max_n + 1):
            counts = _ngrams(cand, n)
            best = Counter()
            for r in refs:
                best |= _ngrams(r, n)
            correct[n - 1] += sum(min(c, best[g]) for g, c in counts.items())
            total[n - 1] += max(len(cand) - n + 1, 0)
            total_nltk[n - 1] += max(len(cand) - n + 1, 1)  # NLTK counts at least one n-gram a sentence
    return correct, total, total_nltk, c_len, r_len


def _brevity(c_len, r_len):
    if c_len >= r_len:
        return 1.0
    return math.exp(1.0 - r_len / c_len) if c_len > 0 else 0.0


def bleu(candidates, references, max_n: int = 4, weights=None, smoothing=None, effective_order: bool = False) -> float:
    """Corpus BLEU in [0, 1].

    candidates: a list of token lists; references: for each candidate, a list of token lists.
    ``weights`` (default uniform 1/max_n) weigh the log precisions.  ``smoothing``: None / "none"
    (any order without a match gives 0), "exp" (sacrebleu's default: the k-th order without a match
    counts 1 / (2^k * n-grams)), "floor" (0.1 matches), "add-k" (one more match and n-gram for
    orders above 1), or NLTK's "method1" (0.1 matches), "method2" (add one above unigrams),
    "method3" (= "exp", NLTK's spelling).  ``effective_order``: only orders the candidates reach
    count (sacrebleu's sentence-level default).
    """
    if isinstance(max_n, bool) or not isinstance(max_n, int) or max_n < 1:
        raise ValueError(f"bleu: max_n must be a positive integer, got {max_n!r}")
    if smoothing not in SMOOTHING:
        raise ValueError(f"bleu: smoothing must be one of {SMOOTHING}, got {smoothing!r}")
    if weights is None:
        weights = [1.0 / max_n] * max_n
    weights = [float(w) for w in weights]
    if len(weights) != max_n:
        raise ValueError(f"bleu: weights has {len(weights)} entries, expected max_n={max_n}")
    correct, total, total_nltk, c_len, r_len = _stats(candidates, references, max_n)
    bp = _brevity(c_len, r_len)
    nltk = smoothing in ("method1", "method2", "method3")
    if nltk:
        total = total_nltk
    if correct[0] == 0:
        return 0.0  # no unigram in common: 0 whatever the smoothing (NLTK and sacrebleu agree)
    logs = []
    k = 1.0
    for n in range(max_n):
        c, t = float(correct[n]), float(total[n])
        if smoothing == "add-k" and n > 0:
            c, t = c + 1.0, t + 1.0
        if smoothing == "method2" and n > 0:
            c, t = c + 1.0, t + 1.0
        if t == 0:  # no candidate reaches this order
            if effective_order:
                break
            return 0.0
        if c == 0:
            if smoothing in ("exp", "method3"):
                k *= 2.0
                p = 1.0 / (k * t)
            elif smoothing == "floor":
                p = 0.1 / t
            elif smoothing == "method1":
                p = 0.1 / t
            else:
                return 0.0
        else:
            p = c / t
        logs.append(weights[n] * math.log(p))
    if not logs:
        return 0.0
    if effective_order and len(logs) < max_n:  # uniform weights over the orders reached, as sacrebleu
        logs = [lg / weights[i] / len(logs) for i, lg in enumerate(logs)]
    return bp * math.exp(sum(logs))


def sentence_bleu(candidate, references, max_n: int = 4, weights=None, smoothing=None,
                  effective_order: bool = False) -> float:
    """BLEU of one candidate (a token list) against its references (a list of token lists)."""
    return bleu([candidate], [references], max_n=max_n, weights=weights, smoothing=smoothing,
                effective_order=effective_order)
