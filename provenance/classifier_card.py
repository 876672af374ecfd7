"""Ship a trained classifier: copy it next to the detectors and write a model card holding its
evaluation on the dataset's held-out test split (overall and per generator x perturbation)."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict
from pathlib import Path

from detectors.learned import load_classifier
from provenance.datasets.layout import CONFIG_FILE
from provenance.datasets.plan import DatasetConfig
from provenance.datasets.layout import SPLITS
from provenance.datasets.reading import load_split, read_rows
from provenance.files import write_atomically
from provenance.evaluation import evaluate, markdown, write_reports
from provenance.shipped import CLASSIFIER_META_FILE, CLASSIFIER_WEIGHTS_FILES, CLASSIFIERS_DIR, SPLITS_FILE
from provenance.shipped import MODEL_CARD_FILE as CARD_FILE


def split_membership(dataset: str | Path) -> dict:
    """Which real-photo groups (a photo and its near-duplicates) fed each split, and how many images
    each split had: the record a test reads before calling a photo "held out"."""
    record: dict = {"dataset": str(dataset), "real_photo_groups": {}, "images": {}}
    for split in SPLITS:
        rows = read_rows(dataset, split)
        record["real_photo_groups"][split] = sorted({r["source_group"] for r in rows if r["label"] == "real"})
        record["images"][split] = {"real": sum(r["label"] == "real" for r in rows),
                                   "synthetic": sum(r["label"] == "synthetic" for r in rows)}
    return record


def export_classifier(run: str | Path, name: str, dest_root: str | Path = CLASSIFIERS_DIR,
                      dataset: str | Path | None = None, split: str = "test") -> Path:
    run, dest = Path(run), Path(dest_root) / name
    model = load_classifier(run)
    dataset = Path(dataset or model.training.get("dataset", ""))
    images, labels, rows = load_split(dataset, split)
    report, scores = evaluate(model, images, labels, rows, name)
    dest.mkdir(parents=True, exist_ok=True)
    for file in (CLASSIFIER_META_FILE, *CLASSIFIER_WEIGHTS_FILES.values()):
        if (run / file).is_file():
            shutil.copyfile(run / file, dest / file)
    write_reports([report], {name: scores}, labels, dest / "eval")
    write_atomically(dest / SPLITS_FILE, json.dumps(split_membership(dataset), indent=1) + "\n")
    point, training = model.operating_point, model.training
    card = [
        f"# Model card: `{name}` ({model.family} classifier)",
        "",
        "Passive detector trained here from scratch (no downloaded weights). It scores native-resolution "
        f"{model.tile}px tiles and averages their logits; probabilities are Platt-calibrated on the "
        "dataset's validation split.",
        "",
        "## Training",
        "",
        f"- Dataset: `{training.get('dataset')}` (built by `provenance dataset build`; its README.md has the "
        f"counts), generators: {training.get('generators', 'all')}.",
        f"- {json.dumps({k: v for k, v in training.items() if k not in ('dataset', 'generators')})}",
        f"- Config: `{json.dumps(asdict(model.config))}`",
        "",
        "## Operating point",
        "",
        f"- Threshold {point.threshold:.4f} on calibrated P(synthetic): measured false-positive rate "
        f"{point.measured_fpr:.2%} on {point.n_real} validation real photos (target {point.target_fpr:.0%}); "
        f"uncertain band from {point.band_low:.4f} (the detector abstains there).",
        "",
        f"## Evaluation on the `{split}` split ({len(labels)} images, {int(labels.sum())} synthetic)",
        "",
        markdown([report]),
        "",
        "Synthetic images of each stratum are compared with real images that had the same perturbation "
        "(or all reals when fewer than 5). Plots: `eval/roc.png`, `eval/robustness.png`.",
        "",
        f"Real photos by split (near-duplicate groups never cross splits): `{SPLITS_FILE}`.",
        "",
        "## Reproduce",
        "",
        "```",
        *reproduce_commands(dataset, run, name, model),
        "```",
        "",
        "## Limits",
        "",
        "- Trained against our own small CPU-trained generators: it learns their traces; it says little "
        "about other generators unless the cross-generator rows show otherwise.",
        "- A score is a statistical guess: alone it makes an image at most `likely_synthetic`.",
        "",
    ]
    write_atomically(dest / CARD_FILE, "\n".join(card))
    return dest


_FLAG = {"splits": "split"}  # dataset config fields whose CLI flag has another name
_NO_FLAG = ("real", "real_scale")


def reproduce_commands(dataset: Path, run: Path, name: str, model) -> list[str]:
    """The commands that rebuild the dataset (its non-default options) and retrain this classifier."""
    config_file = dataset / CONFIG_FILE
    lines = []
    if config_file.is_file():
        saved, default = json.loads(config_file.read_text()), asdict(DatasetConfig())
        options = []
        for key, value in saved.items():
            if key in _NO_FLAG or value == (list(default[key]) if isinstance(default[key], tuple) else default[key]):
                continue
            text = ",".join(map(str, value)) if key in ("splits", "perturbations") else \
                "-".join(map(str, value)) if isinstance(value, list) else str(value)
            options.append(f"--{_FLAG.get(key, key).replace('_', '-')} {text}")
        real = saved.get("real", "default")
        if real != "default":
            lines.append(f"provenance dataset photos {real}")
            options.append(f"--real {real}")
        lines.append(f"provenance dataset build --out {dataset} {' '.join(options)} --workers 2")
    training = model.training
    train = f"provenance train detector {model.family} --dataset {dataset} --out {run} --seed {training.get('seed', 0)}"
    if "steps" in training:  # iterative families record their steps
        train += f" --steps {training['steps']}"
    if training.get("generators", "all") != "all":
        train += f" --generators {training['generators']}"
    lines += [train + "   # re-run to resume", f"provenance train detector export {run} --name {name}"]
    return lines
