"""Binary-detection metrics reported for classifiers: what a trust-and-safety team reads (AUC, AP,
balanced accuracy, TPR at a fixed false-positive rate on real photos, calibration error)."""
from __future__ import annotations

import numpy as np


def threshold_for_fpr(sorted_scores: np.ndarray, fpr: float) -> float:
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
    threshold = threshold_for_fpr(real, fpr)
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
