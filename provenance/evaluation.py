"""``provenance eval``: score a dataset split with trained classifiers and report what a
trust-and-safety team needs: AUC, AP, balanced accuracy, TPR at 1% and 0.1% FPR and ECE, overall
and per generator x perturbation, plus ROC and robustness plots."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from provenance.metrics import binary_metrics
from provenance.markdown import markdown_table

MIN_STRATUM_REALS = 5


@dataclass
class DetectorReport:
    detector: str
    overall: dict
    strata: list[dict] = field(default_factory=list)
    abstained: int = 0  # images smaller than one tile

    def to_dict(self) -> dict:
        return {"detector": self.detector, "overall": self.overall, "strata": self.strata, "abstained": self.abstained}


def evaluate(model, images: list[np.ndarray], labels: np.ndarray, rows: list[dict], name: str
             ) -> tuple[DetectorReport, np.ndarray]:
    """Metrics overall and per (generator, perturbation); synthetic images of a stratum are compared
    with the real images that had the same perturbation (same processing), or all reals if too few."""
    probabilities = model.probability(model.decision_function(images))
    scored = ~np.isnan(probabilities)
    threshold = model.operating_point.threshold
    report = DetectorReport(name, binary_metrics(probabilities[scored], labels[scored], threshold),
                            abstained=int((~scored).sum()))
    perturbation = np.array([row["perturbation"] for row in rows])
    generator = np.array([row["generator"] for row in rows])
    real = (labels == 0) & scored
    for g in sorted(set(generator[labels == 1])):
        for p in sorted(set(perturbation[labels == 1])):
            positives = (generator == g) & (perturbation == p) & scored
            if not positives.any():
                continue
            negatives = real & (perturbation == p)
            reference = "same perturbation"
            if negatives.sum() < MIN_STRATUM_REALS:
                negatives, reference = real, "all reals"
            members = positives | negatives
            metrics = binary_metrics(probabilities[members], labels[members], threshold)
            report.strata.append({"generator": g, "perturbation": p, "reals": reference, **metrics})
    return report, probabilities


def markdown(reports: list[DetectorReport]) -> str:
    columns = ["auc", "ap", "balanced_accuracy", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "fpr_at_threshold", "ece"]
    headers = ["detector", "generator", "perturbation", "n", *columns]

    def cells(metrics):
        return [f"{metrics[c]:.3f}" if np.isfinite(metrics[c]) else "-" for c in columns]

    lines = []
    for report in reports:
        lines.append([report.detector, "**all**", "**all**", report.overall["n"], *cells(report.overall)])
        for s in report.strata:
            lines.append([report.detector, s["generator"], s["perturbation"], s["n"], *cells(s)])
    return markdown_table(headers, lines)


def plots(reports: list[DetectorReport], scores: dict[str, np.ndarray], labels: np.ndarray, out: Path) -> list[Path]:
    """ROC curves (overall) and a robustness bar chart (AUC per perturbation)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    written = []
    figure, axis = plt.subplots(figsize=(5, 5))
    for name, p in scores.items():
        keep = ~np.isnan(p)
        fpr, tpr, _ = roc_curve(labels[keep], p[keep])
        axis.plot(fpr, tpr, label=name)
    axis.set(xscale="log", xlim=(1e-3, 1), xlabel="false-positive rate (real photos)", ylabel="true-positive rate",
             title="ROC")
    axis.axvline(0.01, color="grey", linestyle=":")
    axis.legend()
    figure.tight_layout()
    written.append(out / "roc.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)

    figure, axis = plt.subplots(figsize=(8, 4))
    width = 0.8 / max(1, len(reports))
    for k, report in enumerate(reports):
        by_perturbation: dict[str, list[float]] = {}
        for s in report.strata:
            by_perturbation.setdefault(s["perturbation"], []).append(s["auc"])
        names = sorted(by_perturbation)
        axis.bar(np.arange(len(names)) + k * width, [np.nanmean(by_perturbation[n]) for n in names], width,
                 label=report.detector)
        axis.set_xticks(np.arange(len(names)) + width * (len(reports) - 1) / 2, names, rotation=30)
    axis.set(ylim=(0.5, 1.0), ylabel="AUC (mean over generators)", title="Robustness by perturbation")
    axis.legend()
    figure.tight_layout()
    written.append(out / "robustness.png")
    figure.savefig(written[-1], dpi=120)
    plt.close(figure)
    return written


def write_reports(reports: list[DetectorReport], scores: dict[str, np.ndarray], labels: np.ndarray,
                  out: str | Path) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps([r.to_dict() for r in reports], indent=2) + "\n")
    (out / "eval.md").write_text(markdown(reports) + "\n")
    return [out / "eval.json", out / "eval.md", *plots(reports, scores, labels, out)]
