"""Trained classifiers against the issue targets, CNN vs the spectral baseline in the same run:

- per classifier x test generator: AUC on clean test images; with both classes re-encoded as JPEG
  q75: AUC and TPR at 1% FPR; false-positive rate on real test images at the shipped threshold;
- cross-generator: a classifier trained on one generator only (``training.generators``) shows its
  AUC on the other generator's rows;
- ``check`` as shipped: the classifiers trained on all generators, their evidence fused by the same
  rule as ``check`` (``detectors.fusion.fuse``): how many real test images end ``likely_synthetic``
  (false positives) or ``inconclusive``, and how many synthetic ones are caught;
- whole held-out photos at native resolution (the source photos of the test split, never cut,
  never resized, as stored and re-encoded as JPEG q85): how many reach a threshold.

Needs a dataset (``PROVENANCE_BENCH_DATASET``, default ``runs/detector-set``) built by
``provenance dataset build``, and classifiers: the shipped ones, or folders in
``PROVENANCE_BENCH_CLASSIFIERS`` (comma-separated).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from benchmarks.timing import machine_line, print_table


def _auc(scores, labels) -> float:
    from sklearn.metrics import roc_auc_score

    keep = ~np.isnan(scores)
    return float(roc_auc_score(labels[keep], scores[keep])) if len(set(labels[keep].tolist())) == 2 else float("nan")


def _rate(flags: np.ndarray) -> str:
    return f"{flags.mean():.2%} ({int(flags.sum())}/{len(flags)})"


def held_out_photos(dataset: Path, split: str = "test") -> list:
    """The test split's source photos, whole and at native resolution (no size cap)."""
    from provenance.datasets.layout import CONFIG_FILE
    from provenance.datasets.reading import read_rows
    from provenance.generators.photos import load_photos

    names = {row["source_photo"] for row in read_rows(dataset, split) if row["label"] == "real"}
    source = json.loads((dataset / CONFIG_FILE).read_text())["real"]
    return [photo for photo in load_photos(source, max_side=None) if photo.name in names]


def main() -> None:
    import detectors
    from provenance.shipped import CLASSIFIERS_DIR as SHIPPED_WEIGHTS
    from provenance.shipped import shipped_classifiers
    from detectors.fusion import fuse
    from detectors.learned import load_classifier
    from detectors.results import Label
    from provenance.metrics import tpr_at_fpr
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
    real = labels == 0
    jpeg75 = [jpeg_round_trip(rgb, 75) for rgb in images]
    photos = held_out_photos(dataset)
    photo_jpeg = [jpeg_round_trip(p.rgb, 85) for p in photos]

    table, judged, photo_table = [], [], []
    for folder in folders:
        model = load_classifier(folder)
        threshold = model.operating_point.threshold
        trained_on = model.training.get("generators", "all")
        p_clean = model.probability(model.decision_function(images))
        p_jpeg = model.probability(model.decision_function(jpeg75))
        fpr = _rate(p_clean[real] >= threshold)
        for g in sorted(set(generator[labels == 1])):
            members = real | (generator == g)
            table.append([folder.name, trained_on, g, f"{_auc(p_clean[members & clean], labels[members & clean]):.4f}",
                          f"{_auc(p_jpeg[members], labels[members]):.4f}",
                          f"{tpr_at_fpr(p_jpeg[members], labels[members], 0.01):.3f}", fpr])
        if trained_on == "all":
            detector = detectors.create(model.family, weights=folder)
            judged.append((folder.name, [detector.judge(p) for p in p_clean], [detector.judge(p) for p in p_jpeg]))
        for name, versions in (("as stored", [p.rgb for p in photos]), ("JPEG q85", photo_jpeg)):
            p = model.probability(model.decision_function(versions))
            photo_table.append([folder.name, name, len(photos), f"{np.median([v.shape[1] for v in versions]):.0f}",
                                int((p >= threshold).sum()), f"{np.median(p):.3f}", f"{p.max():.3f}"])

    print(f"\nTest split: {int(real.sum())} real, {int(labels.sum())} synthetic images "
          f"({int((real & clean).sum())} / {int((~real & clean).sum())} unperturbed)\n")
    print_table(["classifier", "trained on", "test generator", "AUC clean", "AUC JPEG q75 (both classes)",
                 "TPR@1%FPR JPEG q75", "FPR on all test reals at threshold"], table)
    if judged:
        def outcome(evidence_per_image) -> np.ndarray:
            return np.array([fuse(list(evidence))[0].value for evidence in zip(*evidence_per_image)])

        fused_clean = outcome([j[1] for j in judged])
        fused_jpeg = outcome([j[2] for j in judged])
        print(f"\n`check` with {' + '.join(j[0] for j in judged)}, evidence fused as `check` fuses it:\n")
        check_rows = []
        for name, members in [("real (all perturbations)", real)] + [
                (f"synthetic {g}", generator == g) for g in sorted(set(generator[labels == 1]))]:
            check_rows.append([name] + [_rate(fused[members] == label.value) for fused in (fused_clean, fused_jpeg)
                                        for label in (Label.LIKELY_SYNTHETIC, Label.INCONCLUSIVE)])
        print_table(["test images", "likely_synthetic", "inconclusive", "likely_synthetic after JPEG q75",
                     "inconclusive after JPEG q75"], check_rows)
    print(f"\nWhole held-out photos at native resolution ({', '.join(p.name for p in photos)}):\n")
    print_table(["classifier", "photos", "n", "median width", "at or above threshold", "median P(synthetic)",
                 "max P(synthetic)"], photo_table)


if __name__ == "__main__":
    main()
