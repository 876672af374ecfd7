"""Calibration, operating points and the metrics we report for classifiers."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


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
        threshold = _above_quantile(real, target_fpr)
        band_low = min(threshold, _above_quantile(real, band_fpr))
        return cls(threshold, band_low, target_fpr, float(np.mean(real >= threshold)), len(real))

    def to_dict(self) -> dict:
        return asdict(self)


def _above_quantile(sorted_scores: np.ndarray, fpr: float) -> float:
    """The smallest threshold t with mean(scores >= t) <= fpr."""
    allowed = int(np.floor(fpr * len(sorted_scores)))
    if allowed >= len(sorted_scores):
        return 0.0
    kth = sorted_scores[len(sorted_scores) - allowed - 1]
    return float(np.nextafter(kth, np.inf))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    p, y = np.asarray(probabilities, float), np.asarray(labels, float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.mean() * abs(p[members].mean() - y[members].mean())
    return float(error)


def tpr_at_fpr(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    real = np.sort(scores[labels == 0])
    if len(real) == 0 or not (labels == 1).any():
        return float("nan")
    threshold = _above_quantile(real, fpr)
    return float(np.mean(scores[labels == 1] >= threshold))


def binary_metrics(probabilities: np.ndarray, labels: np.ndarray, threshold: float) -> dict:
    """AUC, AP, balanced accuracy at ``threshold``, TPR at 1% / 0.1% FPR, ECE."""
    from sklearn.metrics import average_precision_score, balanced_accuracy_score, roc_auc_score

    p, y = np.asarray(probabilities, float), np.asarray(labels, int)
    both = len(set(y.tolist())) == 2
    return {
        "n": int(len(y)), "n_synthetic": int(y.sum()),
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "ap": float(average_precision_score(y, p)) if both else float("nan"),
        "balanced_accuracy": float(balanced_accuracy_score(y, p >= threshold)) if both else float("nan"),
        "tpr_at_1pct_fpr": tpr_at_fpr(p, y, 0.01), "tpr_at_0.1pct_fpr": tpr_at_fpr(p, y, 0.001),
        "fpr_at_threshold": float(np.mean(p[y == 0] >= threshold)) if (y == 0).any() else float("nan"),
        "tpr_at_threshold": float(np.mean(p[y == 1] >= threshold)) if (y == 1).any() else float("nan"),
        "ece": expected_calibration_error(p, y),
    }
