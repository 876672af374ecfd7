"""The statistics of a measured null: a beta-binomial fitted to match counts, widened until it
dominates the measured tail, never lighter than Binomial(n, 1/2) (nor, for keyed tests, than the
worst case over images of a random balanced key), and the thresholds it implies. Soft statistics
(t values, :mod:`.soft_marks`) get the same treatment with a location-scale Student t that is never
lighter than the reference t distribution (:func:`summarise_soft`)."""
from __future__ import annotations

import math

import numpy as np

from . import payload
from .null_model import TARGET_FPR

TAIL_REGION = 0.01  # the fit must dominate the measured null wherever P(matches >= m) <= this


def keyed_matches(words: np.ndarray, scheme: str, keys: list[str]) -> np.ndarray:
    """Match counts of every decoded word against every key's sync pattern: (images, keys)."""
    patterns = payload.sync_patterns(keys, scheme, words.shape[1]).astype(np.int32)
    w = words.astype(np.int32)
    return w @ patterns.T + (1 - w) @ (1 - patterns).T


def fit_beta_binomial(histogram: np.ndarray) -> tuple[float, float]:
    """Maximum-likelihood (alpha, beta) of a beta-binomial for counts 0..n given as a histogram."""
    from scipy import optimize, stats

    n = histogram.size - 1
    k = np.arange(n + 1)
    total = histogram.sum()
    mean = (histogram * k).sum() / total
    var = (histogram * (k - mean) ** 2).sum() / total
    p = min(max(mean / n, 1e-3), 1 - 1e-3)
    rho = min(max((var / (n * p * (1 - p)) - 1) / (n - 1), 1e-6), 0.99)
    start = np.log([p * (1 / rho - 1), (1 - p) * (1 / rho - 1)])
    support = histogram > 0

    def nll(log_ab):
        a, b = np.exp(log_ab)
        return -(histogram[support] * stats.betabinom.logpmf(k[support], n, a, b)).sum()

    bounds = [(math.log(1e-3), math.log(1e8))] * 2
    best = optimize.minimize(nll, start, method="L-BFGS-B", bounds=bounds)
    a, b = np.exp(best.x)
    return float(a), float(b)


def balanced_key_survival(matches: int | np.ndarray, n: int) -> np.ndarray:
    """Exact worst case over images of P(matches or more) when the key is random.

    A keyed sync pattern has n/2 ones at key-chosen places. For a decoded word with w ones,
    X = ones shared with the pattern is Hypergeometric(n, n/2, w) and matches = 2X + n/2 - w.
    Whatever the image, the null survival is at most the maximum over w; at the thresholds that
    matter it is about twice the Binomial(n, 1/2) survival, which alone would be optimistic.
    """
    from scipy import stats

    m = np.atleast_1d(np.asarray(matches))
    w = np.arange(n + 1)[:, None]
    need = np.ceil((m[None, :] - n // 2 + w) / 2)  # smallest X giving >= m matches
    tails = stats.hypergeom.sf(need - 1, n, n // 2, w)
    out = tails.max(axis=0)
    return out if np.ndim(matches) else out[0]


def survival(matches: int | np.ndarray, n: int, alpha: float, beta: float, keyed: bool = False):
    """P(matches or more) under the fitted null, never below Binomial(n, 1/2)'s (nor, for keyed
    tests, below :func:`balanced_key_survival`)."""
    from scipy import stats

    m = np.asarray(matches) - 1
    p = np.maximum(stats.betabinom.sf(m, n, alpha, beta), stats.binom.sf(m, n, 0.5))
    return np.maximum(p, balanced_key_survival(matches, n)) if keyed else p


def threshold_at(n: int, alpha: float, beta: float, level: float, keyed: bool = False) -> int:
    """Smallest match count whose null survival is <= level (n + 1: none is)."""
    p = survival(np.arange(n + 2), n, alpha, beta, keyed)
    hits = np.flatnonzero(p <= level)
    return int(hits[0]) if hits.size else n + 1


def dominate_tail(histogram: np.ndarray, alpha: float, beta: float, keyed: bool) -> tuple[float, float]:
    """Widen a fit (same mean, more overdispersion) until its survival is no lighter than the
    measured upper tail at any observed count.

    The nulls are mixtures (a point mass of collapsed words plus a spread part), which a
    maximum-likelihood beta-binomial fits in the bulk but can underestimate in the tail; the
    tail is what the decision extrapolates from.
    """
    n = histogram.size - 1
    k = np.arange(n + 1)
    total = histogram.sum()
    mean = (histogram * k).sum() / total
    observed = histogram[::-1].cumsum()[::-1] / total  # P(matches >= k), measured
    # The tail proper: a point mass at the mean (collapsed words) is no tail and no
    # beta-binomial could dominate it.
    upper = (k > mean) & (observed > 0) & (observed <= TAIL_REGION)

    def dominates(a: float, b: float) -> bool:
        return bool(np.all(survival(k[upper], n, a, b, keyed) >= observed[upper]))

    if dominates(alpha, beta):
        return alpha, beta
    p = alpha / (alpha + beta)
    for rho in np.geomspace(1.0 / (alpha + beta + 1.0), 0.95, 600):
        a, b = p * (1 / rho - 1), (1 - p) * (1 / rho - 1)
        if dominates(a, b):
            return float(a), float(b)
    return float(p * 0.05 / 0.95), float((1 - p) * 0.05 / 0.95)


def summarise(matches: np.ndarray, n: int, images: int, keys: int | None) -> dict:
    keyed = keys is not None
    matches = np.asarray(matches).ravel()
    histogram = np.bincount(matches, minlength=n + 1)
    a_mle, b_mle = fit_beta_binomial(histogram)
    a, b = dominate_tail(histogram, a_mle, b_mle, keyed)
    threshold = threshold_at(n, a, b, TARGET_FPR, keyed)
    exceed = int(np.count_nonzero(matches >= threshold))
    k = np.arange(n + 1)
    predicted_tail = survival(k, n, a, b, keyed)
    observed_tail = histogram[::-1].cumsum()[::-1] / matches.size
    in_tail = (k > matches.mean()) & (observed_tail > 0) & (observed_tail <= TAIL_REGION)
    return {
        "bits": n,
        "images": images,
        "keys": keys,
        "trials": int(matches.size),
        "mean": float(matches.mean()),
        "sd": float(matches.std()),
        "binomial_sd": math.sqrt(n) / 2,
        "share_at_half": float(np.mean(matches == n // 2)),  # mostly collapsed all-0/all-1 words
        "alpha": a,
        "beta": b,
        "overdispersion_mle": 1.0 / (a_mle + b_mle + 1.0),
        "overdispersion": 1.0 / (a + b + 1.0),  # used: widened where the measured tail needed it
        "max_matches": int(matches.max()),
        "p_value_at_threshold": float(survival(threshold, n, a, b, keyed)) if threshold <= n else 0.0,
        "threshold_at_1e-6": threshold,
        "trials_at_or_above_threshold": exceed,
        "empirical_fpr_at_threshold": exceed / matches.size,
        # max over the measured tail of measured / modelled P(matches >= m); <= 1: the model dominates
        "tail_ratio_max": float((observed_tail[in_tail] / predicted_tail[in_tail]).max()) if in_tail.any() else None,
        "histogram": histogram.tolist(),
        # P(matches >= m) for m = 0..n: what detectors read at check time (no scipy needed there)
        "p_value_by_matches": [float(v) for v in survival(k, n, a, b, keyed)],
    }


# ---- soft statistics (continuous t values) ----------------------------------------------------

SOFT_GRID_STEP = 0.05  # the p-value table's resolution in t; read at the grid point below t (conservative)
SOFT_GRID_MAX = 40.0  # p-values there are below 1e-20 for every shipped test: t past it reads the last entry
SOFT_TABLE_DIGITS = 4  # the table keeps p-values rounded up to this many significant digits


def _round_up(p: np.ndarray, digits: int = SOFT_TABLE_DIGITS) -> np.ndarray:
    """Round positive p-values up (never understate them) to ``digits`` significant digits."""
    p = np.asarray(p, dtype=np.float64)
    scale = 10.0 ** (np.floor(np.log10(np.maximum(p, 1e-300))) - (digits - 1))
    return np.minimum(np.ceil(p / scale) * scale, 1.0)


def soft_survival(t, dof: int, loc: float, scale: float) -> np.ndarray:
    """P(T >= t) under the fitted null: the larger of Student's t (``dof``) and the fitted
    location-scale t, so never lighter than the reference."""
    from scipy import stats

    t = np.asarray(t, dtype=np.float64)
    return np.maximum(stats.t.sf(t, dof), stats.t.sf((t - loc) / scale, dof))


def dominate_soft_tail(values: np.ndarray, dof: int, loc: float, scale: float) -> float:
    """Widen the fitted scale until its survival is no lighter than the measured upper tail
    (where the measured P(T >= t) <= ``TAIL_REGION``) at every observed value."""
    ordered = np.sort(values)[::-1]
    observed = np.arange(1, ordered.size + 1) / ordered.size  # P(T >= ordered[i]), measured
    upper = (ordered > values.mean()) & (observed <= TAIL_REGION)
    for widened in scale * np.geomspace(1.0, 20.0, 400):
        if np.all(soft_survival(ordered[upper], dof, loc, widened) >= observed[upper]):
            return float(widened)
    return float(scale * 20.0)


def soft_threshold(grid_p: np.ndarray, level: float) -> float:
    """Smallest grid t whose table p-value is <= level (inf: none)."""
    hits = np.flatnonzero(np.asarray(grid_p) <= level)
    return round(float(hits[0] * SOFT_GRID_STEP), 6) if hits.size else math.inf


def summarise_soft(values: np.ndarray, bits: int, images: int, dof: int) -> dict:
    """Null of a soft test's t on unmarked images: a location-scale Student t with ``dof`` degrees
    of freedom fitted by moments, widened to dominate the measured tail, never lighter than
    the reference t; tabulated for check time (no scipy needed there).

    Images whose t is exactly 0 (grey or flat ones: no phase varies) can never fire and are left
    out of the fit and the tail, which would otherwise look lighter than it is on colour images."""
    values = np.asarray(values, dtype=np.float64).ravel()
    degenerate = float(np.mean(values == 0.0))
    values = values[values != 0.0]
    mean, sd = float(values.mean()), float(values.std())
    fitted_scale = max(sd / math.sqrt(dof / (dof - 2)), 1e-6)
    scale = dominate_soft_tail(values, dof, mean, fitted_scale)
    grid = np.arange(0.0, SOFT_GRID_MAX + SOFT_GRID_STEP / 2, SOFT_GRID_STEP)
    grid_p = _round_up(soft_survival(grid, dof, mean, scale))
    threshold = soft_threshold(grid_p, TARGET_FPR)
    ordered = np.sort(values)[::-1]
    observed = np.arange(1, ordered.size + 1) / ordered.size
    in_tail = (ordered > mean) & (observed <= TAIL_REGION)
    return {
        "bits": bits,
        "images": images,
        "trials": int(values.size),  # images with a defined t
        "dof": dof,
        "mean": mean,
        "sd": sd,
        "reference_sd": math.sqrt(dof / (dof - 2)),
        "share_degenerate": degenerate,  # grey or flat images: t = 0 by definition, left out of the fit
        "loc": mean,
        "scale_fit": fitted_scale,
        "scale": scale,  # used: widened where the measured tail needed it
        "max_t": float(values.max()),
        "threshold_at_1e-6": threshold,
        "trials_at_or_above_threshold": int(np.count_nonzero(values >= threshold)),
        "empirical_fpr_at_threshold": float(np.count_nonzero(values >= threshold) / values.size),
        # max over the measured tail of measured / modelled P(T >= t); <= 1: the model dominates
        "tail_ratio_max": float((observed[in_tail] / soft_survival(ordered[in_tail], dof, mean, scale)).max())
        if in_tail.any() else None,
        "grid_step": SOFT_GRID_STEP,
        "p_value_by_t": [float(f"{v:.{SOFT_TABLE_DIGITS}g}") for v in grid_p],  # P(T >= k * grid_step), k = 0..
    }
