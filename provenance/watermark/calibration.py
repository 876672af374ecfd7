"""Calibration of the watermark decisions on unmarked photos.

imwatermark's decoders are biased on unmarked images (they collapse to all-0/all-1 words, and the
mean shifts with the image), so the null is measured, not assumed Binomial(n, 1/2):

* Negatives: many variants (random crops, flips, rescales, brightness, JPEG q60-95) of every
  natural photo shipped with scikit-image and scikit-learn, grey images included.
* Keyed tests (our schemes): the decoded word depends on the image and the payload length, not on
  the key, so each decode is scored against ``n_keys`` random keys: images x keys null trials.
* Fixed words (Stable Diffusion marks): one trial per image, per message and colour path.
* Each null is summarised by a beta-binomial fitted by maximum likelihood (its overdispersion is
  measured) plus the empirical histogram. The p-value at check time is the fitted survival at the
  observed match count, never below the Binomial(n, 1/2) one; detectors multiply it by their
  number of tests (Bonferroni).

The shipped fit lives in ``calibration.json`` beside this module; ``provenance watermark
calibrate`` rebuilds it.
"""
from __future__ import annotations

import io
import json
import math
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Callable, Iterable, Sequence

import cv2
import numpy as np
from PIL import Image

from . import fast, payload, thirdparty
from .schemes import SCHEMES
from .size import MIN_PIXELS
from provenance.generators.photos import sample_photo

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
TARGET_FPR = 1e-6
KEYED_SCHEMES = ("dwtDct", "dwtDctSvd", "rivaGan")
MAX_VARIANT_PIXELS = 1_500_000
RIVAGAN_MAX_PIXELS = 320 * 320
TAIL_REGION = 0.01  # the fit must dominate the measured null wherever P(matches >= m) <= this  # rivaGan costs seconds per image: its negatives are kept small

COLOUR_PHOTOS = (
    "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
    "rocket", "motorcycle_left", "motorcycle_right", "sklearn_china", "sklearn_flower",
)
GREY_PHOTOS = ("brick", "camera", "cell", "clock", "coins", "grass", "gravel", "moon", "page", "text")
GREY_SHARE = 0.2


def make_variant(rgb: np.ndarray, rng: np.random.Generator, max_pixels: int = MAX_VARIANT_PIXELS) -> np.ndarray:
    """A random unmarked variant (rescale, crop, flip, brightness, JPEG) of at least 256x256 area."""
    img = rgb
    h, w = img.shape[:2]
    scale = rng.uniform(0.6, 2.0) if rng.random() < 0.5 else 1.0
    scale = min(scale, math.sqrt(max_pixels / (h * w)))
    scale = max(scale, math.sqrt(MIN_PIXELS / (h * w)) * 1.02)
    if abs(scale - 1.0) > 1e-3:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        img = cv2.resize(img, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        h, w = img.shape[:2]
    if rng.random() < 0.6:
        ch = int(rng.integers(min(h, max(160, MIN_PIXELS // w + 1)), h + 1))
        cw = int(rng.integers(min(w, MIN_PIXELS // ch + 1), w + 1))
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        img = img[top : top + ch, left : left + cw]
    if rng.random() < 0.3:
        img = img[:, ::-1] if rng.random() < 0.5 else img[::-1]
    if rng.random() < 0.3:
        img = np.clip(img.astype(np.float32) * rng.uniform(0.8, 1.2), 0, 255).round().astype(np.uint8)
    if rng.random() < 0.5:
        buf = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(img)).save(buf, "JPEG", quality=int(rng.integers(60, 96)))
        img = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    return np.ascontiguousarray(img)


def _variant(index: int, seed: int, cache: dict) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    pool = GREY_PHOTOS if rng.random() < GREY_SHARE else COLOUR_PHOTOS
    name = pool[int(rng.integers(len(pool)))]
    if name not in cache:
        cache[name] = sample_photo(name)
    return make_variant(cache[name], rng)


def _decode_chunk(args: tuple[list[int], int, int]) -> dict[str, np.ndarray]:
    """Decoded sync words (keyed schemes) and match counts (fixed marks) for some variants."""
    indices, seed, rivagan_images = args
    cache: dict = {}
    riva = SCHEMES.create("rivaGan") if any(i < rivagan_images for i in indices) else None
    out: dict[str, list] = {}
    for index in indices:
        bgr = np.ascontiguousarray(_variant(index, seed, cache)[:, :, ::-1])
        votes = thirdparty.path_votes(bgr)
        svd = fast.block_votes(bgr, "dwtDctSvd")
        layout = payload.layout_for(None)
        out.setdefault("dwtDct/uint8", []).append(votes["uint8"].bits(layout.length)[: layout.sync_bits])
        out.setdefault("dwtDctSvd/uint8", []).append(svd.bits(layout.length)[: layout.sync_bits])
        for name, matches in thirdparty.match_counts(votes).items():
            out.setdefault(name, []).append(matches)
        if riva is not None and index < rivagan_images:
            h, w = bgr.shape[:2]
            if h * w > RIVAGAN_MAX_PIXELS:
                s = math.sqrt(RIVAGAN_MAX_PIXELS / (h * w))
                bgr = cv2.resize(bgr, (max(256, round(w * s)), max(256, round(h * s))), interpolation=cv2.INTER_AREA)
            out.setdefault("rivaGan/uint8", []).append(riva.decode_bits(bgr, riva.capacity))
    return {k: np.array(v) for k, v in out.items()}


def calibration_keys(n_keys: int, seed: int) -> list[str]:
    return [f"calibration-{seed}-{i}" for i in range(n_keys)]


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


def run_calibration(
    n_images: int = 2000,
    n_keys: int = 5000,
    seed: int = 0,
    rivagan_images: int = 40,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> dict:
    """Decode ``n_images`` unmarked variants and summarise every null; returns the JSON object."""
    workers = workers or min(2, os.cpu_count() or 1)
    chunk = max(10, n_images // (8 * workers))
    jobs = [(list(range(s, min(s + chunk, n_images))), seed, rivagan_images) for s in range(0, n_images, chunk)]
    parts: list[dict] = []
    if workers == 1:
        results: Iterable = map(_decode_chunk, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_decode_chunk, jobs)
    try:
        for part in results:
            parts.append(part)
            if progress:
                progress(sum(len(next(iter(p.values()))) for p in parts), n_images)
    finally:
        if workers != 1:
            pool.shutdown()
    merged = {name: np.concatenate([p[name] for p in parts if name in p]) for name in {k for p in parts for k in p}}

    keys = calibration_keys(n_keys, seed)
    tests = {}
    for name in sorted(merged):
        values = merged[name]
        scheme = name.split("/")[0]
        if scheme in KEYED_SCHEMES:
            tests[name] = {"kind": "keyed", **summarise(keyed_matches(values, scheme, keys), values.shape[1], len(values), n_keys)}
        else:
            mark = next(m for m in thirdparty.KNOWN_MARKS if m.name == scheme)
            tests[name] = {"kind": "fixed", **summarise(values, mark.length, len(values), None)}
    return {
        "version": 1,
        "target_fpr": TARGET_FPR,
        "settings": {"n_images": n_images, "n_keys": n_keys, "seed": seed, "rivagan_images": rivagan_images},
        "sources": {"colour": list(COLOUR_PHOTOS), "grey": list(GREY_PHOTOS), "grey_share": GREY_SHARE},
        "p_value": "max(beta-binomial survival, Binomial(n, 1/2) survival, and for keyed tests the "
        "balanced-key worst case) at the observed matches, per test; detectors multiply by their tests",
        "tests": tests,
    }


@dataclass(frozen=True)
class NullFit:
    """One test's calibrated null: P(matches >= m) for m = 0..bits."""

    name: str
    bits: int
    survival: Sequence[float]

    def p_value(self, matches: int) -> float:
        return float(self.survival[min(max(int(matches), 0), self.bits)])

    def threshold(self, level: float = TARGET_FPR) -> int:
        """Smallest match count with p-value <= level (bits + 1: none)."""
        return next((m for m, p in enumerate(self.survival) if p <= level), self.bits + 1)


class MissingCalibration(LookupError):
    pass


class Calibration:
    """The shipped (or a given) calibration file, read once per instance."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else CALIBRATION_FILE

    @cached_property
    def data(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            raise MissingCalibration(f"no calibration file at {self.path}; run 'provenance watermark calibrate'") from None

    def null(self, test: str) -> NullFit:
        try:
            entry = self.data["tests"][test]
        except KeyError:
            raise MissingCalibration(f"{self.path.name} has no calibration for {test!r}") from None
        return NullFit(test, entry["bits"], tuple(entry["p_value_by_matches"]))

    def __contains__(self, test: str) -> bool:
        return test in self.data.get("tests", {})
