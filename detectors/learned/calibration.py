"""Calibration and operating points of trained classifiers (the metrics live in provenance.metrics)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from provenance.metrics import threshold_for_fpr


@dataclass
class PlattCalibration:
    """p = sigmoid(a * logit + b), fitted on held-out data (Platt scaling)."""
    a: float = 1.0
    b: float = 0.0

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray) -> "PlattCalibration":
        """Platt's own recipe: soft targets (N+ + 1)/(N+ + 2) and 1/(N- + 2) instead of 1 and 0, so
        held-out data that happen to be separable do not give an infinitely steep, overconfident fit."""
        from sklearn.linear_model import LogisticRegression

        x, y = np.asarray(logits, float).reshape(-1, 1), np.asarray(labels, int)
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        target = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
        # a soft target t is the same likelihood as label 1 with weight t plus label 0 with weight 1 - t
        model = LogisticRegression(C=1e6).fit(np.vstack([x, x]), np.r_[np.ones(len(y)), np.zeros(len(y))],
                                             sample_weight=np.r_[target, 1 - target])
        return cls(float(model.coef_[0, 0]), float(model.intercept_[0]))

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(self.a * np.asarray(logits, float) + self.b)

    def to_dict(self) -> dict:
        return asdict(self)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)) without overflow (as scipy's expit, without importing scipy.special: 0.5 s)."""
    z = np.asarray(z, float)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


@dataclass
class OperatingPoint:
    """``threshold``: calibrated probability at or above which we call an image likely synthetic,
    set so at most ``target_fpr`` of held-out real photos reach it. Scores in [band_low, threshold)
    are the uncertain band where the detector abstains."""
    threshold: float
    band_low: float
    target_fpr: float
    measured_fpr: float
    n_real: int

    @classmethod
    def from_reals(cls, real_probabilities: np.ndarray, target_fpr: float = 0.01, band_fpr: float = 0.05
                   ) -> "OperatingPoint":
        real = np.sort(np.asarray(real_probabilities, float))
        if len(real) == 0:
            raise ValueError("need held-out real images to set a threshold")
        threshold = threshold_for_fpr(real, target_fpr)
        band_low = min(threshold, threshold_for_fpr(real, band_fpr))
        return cls(threshold, band_low, target_fpr, float(np.mean(real >= threshold)), len(real))

    @classmethod
    def per_source(cls, real_probabilities: np.ndarray, sources, target_fpr: float = 0.01, band_fpr: float = 0.05
                   ) -> "OperatingPoint":
        """The threshold at which *every* source's reals stay at or under ``target_fpr`` (a source of
        fewer than 1 / target_fpr images thus allows none), not only all of them together."""
        real, sources = np.asarray(real_probabilities, float), np.asarray(sources)
        if len(real) == 0:
            raise ValueError("need held-out real images to set a threshold")
        threshold = max(threshold_for_fpr(np.sort(real[sources == s]), target_fpr) for s in set(sources.tolist()))
        band_low = min(threshold, threshold_for_fpr(np.sort(real), band_fpr))
        return cls(threshold, band_low, target_fpr, float(np.mean(real >= threshold)), len(real))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EarlyStop:
    """Score every other tile of an image's budget first, and stop there when the mean logit of that
    half is lower than the uncertain band by more than ``margin``: the largest rise from the first
    half's mean to the whole budget's measured on ``images`` images (``measured_on``). A full budget
    only (smaller images are scored whole), so the rise is the one measured."""
    margin: float
    images: int
    measured_on: str

    def __post_init__(self):
        if not self.margin >= 0:
            raise ValueError(f"an early stop's margin is a rise, >= 0, not {self.margin}")

    @staticmethod
    def first_half(n_tiles: int) -> np.ndarray:
        """Indices of the first half (every other tile of the evenly spread grid: spread too)."""
        return np.arange(0, n_tiles, 2)

    def stops(self, first_logits: np.ndarray, calibration: "PlattCalibration", band_low: float) -> bool:
        if calibration.a <= 0:  # a calibration falling with the logit would turn "below" around
            return False
        return bool(calibration(np.array([float(np.mean(first_logits)) + self.margin]))[0] < band_low)

    def to_dict(self) -> dict:
        return asdict(self)
