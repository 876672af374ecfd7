"""Soft sync decisions: an exact weighted sign test of a decoder's logits against a keyed pattern.

A hard decision counts the sync bits whose sign matches the key's pattern. A bit the decoder is
unsure of (|logit| near 0: a region a crop removed, a block JPEG flattened) then counts as much as
a sure one, and adds a coin flip. Here each bit votes with its confidence instead:

    T = sum_i w_i * (+1 if sign(logit_i) matches the pattern's bit, else -1),
    w_i = min(|logit_i|, CLIP), quantised to 1/STEPS_PER_LOGIT (1/4),

which is the likelihood-ratio statistic when the logits are calibrated log-odds (capped, so that a
few overconfident bits cannot decide alone).

The p-value is exact and needs no fitted null: a keyed sync pattern is a uniformly random word
with exactly half its bits set (:func:`provenance.watermark.payload.sync_pattern`), independent of
an unmarked image. Given the image's logits, T is then 2 * (the sum of a random half of the signed
weights) - (their total), whose distribution a subset-sum recursion gives exactly. On unmarked
photos the rates match it (the learned model card's null table, measured by
``benchmarks/watermark_soft_null.py``).
"""
from __future__ import annotations

import math

import numpy as np

STATISTIC = "weighted-sign"  # DecodeResult.statistic of a soft decision
CLIP = 4.0  # |logit| at which a bit's vote stops growing
STEPS_PER_LOGIT = 4  # weights are multiples of 1/4 logit: an integer recursion, exact


def signed_weights(logits: np.ndarray) -> np.ndarray:
    """Integer votes: +w for a bit read as 1, -w for a bit read as 0."""
    logits = np.asarray(logits, dtype=np.float64)
    weights = np.rint(np.minimum(np.abs(logits), CLIP) * STEPS_PER_LOGIT).astype(np.int64)
    return np.where(logits > 0, weights, -weights)


def statistic(votes: np.ndarray, pattern: np.ndarray) -> int:
    """T (in weight units): the votes that agree with ``pattern`` minus those that disagree."""
    return int(np.where(np.asarray(pattern, dtype=bool), votes, -votes).sum())


def z_scores(votes: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """T over its null standard deviation (about; for ranking views, not for deciding), for each
    pattern (K, n) and view of ``votes`` (V, n): (K, V)."""
    votes = np.atleast_2d(np.asarray(votes, dtype=np.float64))
    signed = np.where(np.atleast_2d(np.asarray(patterns, dtype=bool)), 1.0, -1.0)
    scale = np.sqrt((votes ** 2).sum(axis=1))
    return (signed @ votes.T) / np.where(scale > 0, scale, np.inf)


def balanced_subset_sums(values: np.ndarray, chosen: int) -> tuple[np.ndarray, int]:
    """The distribution of the sum of ``chosen`` of the integer ``values`` picked uniformly at random
    without replacement: (probabilities of sums lo, lo + 1, ..., hi), lo."""
    values = np.asarray(values, dtype=np.int64)
    lo, hi = int(values[values < 0].sum()), int(values[values > 0].sum())
    ways = np.zeros((chosen + 1, hi - lo + 1))  # ways[k, s - lo]: subsets of k items summing to s
    ways[0, -lo] = 1.0
    n = values.size
    for j, v in enumerate(values):
        # only counts the remaining items can still complete to ``chosen`` are kept up to date
        top, low = min(j + 1, chosen), max(1, chosen - (n - 1 - j))
        if low > top:
            continue
        rows, below = slice(low, top + 1), slice(low - 1, top)  # numpy buffers the overlap
        if v > 0:
            ways[rows, v:] += ways[below, :-v]
        elif v < 0:
            ways[rows, :v] += ways[below, -v:]
        else:
            ways[rows] += ways[below]
    return ways[chosen] / math.comb(values.size, chosen), lo


def p_values(votes: np.ndarray, patterns: np.ndarray) -> np.ndarray:
    """P(T >= the observed T) for each pattern (K, n), when the key's pattern is a uniformly random
    word with half its bits set. The distribution depends on the votes alone: computed once."""
    votes = np.asarray(votes, dtype=np.int64)
    patterns = np.atleast_2d(np.asarray(patterns, dtype=bool))
    # T = 2 * (sum of the votes where the pattern is 1) - sum(votes); the pattern's ones are a random half
    probabilities, lo = balanced_subset_sums(votes, votes.size // 2)
    survival = np.append(np.cumsum(probabilities[::-1])[::-1], 0.0)
    observed = np.where(patterns, votes, -votes).sum(axis=1)
    need = -((-(observed + votes.sum())) // 2)  # ceil of half, in integers
    return np.minimum(1.0, survival[np.clip(need - lo, 0, probabilities.size)])


def p_value(votes: np.ndarray, pattern: np.ndarray) -> float:
    return float(p_values(votes, pattern)[0])


def best_view_p_values(votes: np.ndarray, patterns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each pattern (K, n): the view (of ``votes``, (V, n)) with the largest z, and its exact
    p-value. Choosing one of V views by any rule and multiplying its p by V bounds the false-positive
    rate (Bonferroni), so the view is picked by the cheap z and only its tail is computed."""
    votes = np.atleast_2d(np.asarray(votes, dtype=np.int64))
    patterns = np.atleast_2d(np.asarray(patterns, dtype=bool))
    views = np.argmax(z_scores(votes, patterns), axis=1)
    p = np.ones(len(patterns))
    for view in np.unique(views):
        chosen = views == view
        p[chosen] = p_values(votes[view], patterns[chosen])
    return views, p
