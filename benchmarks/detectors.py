"""Trained classifiers against issue targets, CNN vs the spectral baseline in the same run:

- clean test images: AUC per generator;
- both classes re-encoded as JPEG q75: AUC and TPR at 1% FPR;
- real test photos at the shipped threshold: false-positive rate;
- cross-generator (when classifiers trained on one generator are given): AUC on the other.

Needs a dataset (``PROVENANCE_BENCH_DATASET``, default ``runs/detector-set``) built by
``provenance dataset build`` from held-out photos, and classifiers: the shipped ones, or folders in
``PROVENANCE_BENCH_CLASSIFIERS`` (comma-separated; names like ``cnn-gan-only`` mark cross-generator
runs by their ``training.generators`` field).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from benchmarks.timing import machine_line, print_table


def _auc(scores, labels) -> float:
    from sklearn.metrics import roc_auc_score

    keep = ~np.isnan(scores)
    return float(roc_auc_score(labels[keep], scores[keep])) if len(set(labels[keep].tolist())) == 2 else float("nan")


def main() -> None:
    from detectors.classifiers import SHIPPED_WEIGHTS, shipped_classifiers
    from detectors.learned import load_classifier
    from detectors.learned.calibration import tpr_at_fpr
    from provenance.datasets.perturbations import jpeg_round_trip
    from provenance.datasets.reading import load_split

    dataset = Path(os.environ.get("PROVENANCE_BENCH_DATASET", "runs/detector-set"))
    folders = [Path(p) for p in os.environ.get("PROVENANCE_BENCH_CLASSIFIERS", "").split(",") if p] or \
        [SHIPPED_WEIGHTS / name for name in shipped_classifiers()]
    if not (dataset / "test").is_dir() or not folders:
        print(f"skipped: needs a dataset at {dataset} and trained classifiers (see the module docstring)")
        return
    print(machine_line(), f"dataset={dataset}")
    images, labels, rows = load_split(dataset, "test")
    clean = np.array([row["perturbation"] == "none" for row in rows])
    generator = np.array([row["generator"] for row in rows])
    jpeg75 = [jpeg_round_trip(rgb, 75) for rgb in images]
    table = []
    for folder in folders:
        model = load_classifier(folder)
        trained_on = model.training.get("generators", "all")
        p_clean = model.probability(model.decision_function(images))
        p_jpeg = model.probability(model.decision_function(jpeg75))
        real = labels == 0
        fpr = float(np.mean(p_clean[real & ~np.isnan(p_clean)] >= model.operating_point.threshold))
        for g in sorted(set(generator[labels == 1])):
            members = real | (generator == g)
            table.append([folder.name, trained_on, g, f"{_auc(p_clean[members & clean], labels[members & clean]):.4f}",
                          f"{_auc(p_jpeg[members], labels[members]):.4f}",
                          f"{tpr_at_fpr(p_jpeg[members], labels[members], 0.01):.3f}", f"{fpr:.3%}"])
    print(f"\nTest split: {int((labels == 0).sum())} real, {int(labels.sum())} synthetic images\n")
    print_table(["classifier", "trained on", "test generator", "AUC clean", "AUC JPEG q75 (both classes)",
                 "TPR@1%FPR JPEG q75", "FPR on reals at threshold"], table)


if __name__ == "__main__":
    main()
