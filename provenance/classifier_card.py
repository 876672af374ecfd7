"""Ship a trained classifier: copy it next to the detectors and write a model card holding its
evaluation on the dataset's held-out test split (overall and per generator x perturbation)."""
from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

from detectors.learned import load_classifier
from provenance.datasets.layout import CONFIG_FILE, SPLITS
from provenance.datasets.plan import DatasetConfig
from provenance.datasets.reading import load_split, read_rows
from provenance.files import write_atomically
from provenance.markdown import code_section
from provenance.evaluation import evaluate, markdown, write_reports
from provenance.shipped import CLASSIFIER_META_FILE, CLASSIFIER_WEIGHTS_FILES, CLASSIFIERS_DIR, SPLITS_FILE
from provenance.shipped import MODEL_CARD_FILE as CARD_FILE

INFERENCE_HEADING = "## Inference"


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
    copy_classifier(run, name, dest_root)
    write_reports([report], {name: scores}, labels, dest / "eval")
    write_atomically(dest / SPLITS_FILE, json.dumps(split_membership(dataset), indent=1) + "\n")
    inference = export_inference(dest, write_card=False)
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
        *code_section("## Reproduce", reproduce_commands(dataset, run, name, model)),
        *inference,
        "## Limits",
        "",
        "- Trained against our own small CPU-trained generators: it learns their traces; it says little "
        "about other generators unless the cross-generator rows show otherwise.",
        "- A score is a statistical guess: alone it makes an image at most `likely_synthetic`.",
        "",
    ]
    write_atomically(dest / CARD_FILE, "\n".join(card))
    return dest


def copy_classifier(run: str | Path, name: str, dest_root: str | Path) -> Path:
    """Copy RUN's classifier files (not its evaluation or card) into DEST_ROOT/NAME."""
    run, dest = Path(run), Path(dest_root) / name
    dest.mkdir(parents=True, exist_ok=True)
    if run.resolve() != dest.resolve():
        for file in (CLASSIFIER_META_FILE, *CLASSIFIER_WEIGHTS_FILES.values()):
            if (run / file).is_file():
                shutil.copyfile(run / file, dest / file)
    return dest


@dataclass(frozen=True)
class Int8Calibration:
    """What sets the int8 graph's activation ranges: tiles like those ``check`` will see, what they
    are (for the card), and the percentile of each activation kept (None: the extremes)."""
    tiles: "np.ndarray"
    source: str
    percentile: float | None = None


def export_inference(folder: str | Path, write_card: bool = True, calibration: Int8Calibration | None = None
                     ) -> list[str]:
    """Write the family's run-time format next to its weights (the CNN: ``cnn.onnx`` for
    onnxruntime, checked against the torch model on real-photo and random tiles, and its int8 form
    with ranges from ``calibration``, by default :func:`_calibration_tiles`) and return the model
    card's section on it; with ``write_card``, also put that section into the card."""
    import platform

    from detectors.learned.cnn import ONNX_FILE, ONNX_INT8_FILE, CNNClassifier

    folder = Path(folder)
    model = load_classifier(folder)
    if not isinstance(model, CNNClassifier):
        lines = [INFERENCE_HEADING, "", f"- Runs as shipped: numpy arrays in `{CLASSIFIER_WEIGHTS_FILES['spectral']}`, no torch.", ""]
    else:
        import onnx
        import torch

        from provenance.corpus_detector import SCOPE

        if calibration is None and (getattr(model, "training", None) or {}).get("scope") == SCOPE:
            # its threshold holds for the int8 graph calibrated on the corpus, not for another
            raise ValueError(f"{folder}: a corpus classifier's int8 graph is calibrated on its corpus; "
                             "export it with `provenance train detector corpus --family cnn`")
        corpus_note = " (a corpus classifier: `train detector corpus --family cnn`)" if calibration else ""
        tiles = _check_tiles(model.tile)
        difference = model.export_onnx(folder / ONNX_FILE, tiles)
        calibration = calibration or Int8Calibration(*_calibration_tiles(model.tile))
        photos = tiles[:-16]  # the photo tiles of the check set (the last 16 are noise)
        int8 = model.export_int8(folder / ONNX_FILE, folder / ONNX_INT8_FILE, calibration.tiles, photos,
                                 calibration.percentile)
        ranges = ("MinMax ranges" if calibration.percentile is None else
                  f"ranges at the {calibration.percentile:g}th percentile of each activation")
        lines = [
            INFERENCE_HEADING,
            "",
            f"- `check` runs `{ONNX_FILE}` with onnxruntime (float32, no torch or timm import), or its int8 "
            f"form `{ONNX_INT8_FILE}` where the CPU has VNNI (`PROVENANCE_PRECISION=fp32|int8` overrides); "
            f"`{CLASSIFIER_WEIGHTS_FILES['cnn']}` stays the source of truth for training and re-export.",
            f"- Exported by `provenance train detector export`{corpus_note} with torch {torch.__version__} "
            f"(dynamo exporter, onnx {onnx.__version__}, {platform.machine()}); the graph records the "
            "sha256 of the weights it came from and is ignored if they differ.",
            f"- Max |tile logit difference| against the torch model in float32 on {len(tiles)} tiles "
            f"(real photos and noise): {difference:.1e} (refused above 1e-3).",
            f"- `{ONNX_INT8_FILE}`: the whole backbone (convolutions, ReLUs, residual adds, pooling) quantised by onnxruntime (weights int8 per channel in a "
            f"7-bit range, activations uint8, {ranges} over {len(calibration.tiles)} calibration tiles: "
            f"{calibration.source}); the NPR input and the head stay float32. Against the float graph on "
            f"{len(photos)} photo tiles: max |tile logit difference| {int8['max']:.2f}, mean {int8['mean']:.2f}, "
            f"correlation {int8['correlation']:.4f}. Verdicts of both on a labelled set: "
            "`python -m benchmarks cnn_precision --real DIR --synthetic DIR`.",
            "",
        ]
    if write_card and (folder / CARD_FILE).is_file():
        card = (folder / CARD_FILE).read_text()
        start = card.find(INFERENCE_HEADING)
        if start >= 0:
            end = card.find("\n## ", start + len(INFERENCE_HEADING))
            card = card[:start] + "\n".join(lines) + (card[end + 1:] if end >= 0 else "")
        else:
            limits = card.find("## Limits")
            card = card[:limits] + "\n".join(lines) + "\n" + card[limits:] if limits >= 0 else \
                card.rstrip("\n") + "\n\n" + "\n".join(lines)
        (folder / CARD_FILE).write_text(card)
    return lines


def _check_tiles(tile: int) -> "np.ndarray":
    """Tiles from the scikit-image photos plus uniform noise: what the exported graph is checked on."""
    import numpy as np
    from skimage import data

    from detectors.learned.tiles import cut_tiles

    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket()]
    tiles = [cut_tiles(photo, tile, 16)[0] for photo in photos]
    tiles.append(np.random.default_rng(0).integers(0, 256, (16, tile, tile, 3), dtype=np.uint8))
    return np.concatenate(tiles)


CALIBRATION_GAN_SAMPLES = 16


def _calibration_tiles(tile: int) -> "tuple[np.ndarray, str]":
    """Tiles like those ``check`` sees, for the int8 graph's activation ranges, and what they are:
    the scikit-image colour photos and seeded samples of our shipped GAN (no noise: its extreme
    residuals would stretch the ranges and cost natural images their precision)."""
    import numpy as np
    from skimage import data

    from detectors.learned.tiles import cut_tiles
    from provenance.generators import load_generator

    left, right, _ = data.stereo_motorcycle()
    photos = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.hubble_deep_field(),
              data.immunohistochemistry(), data.retina(), left, right]
    samples = load_generator("gan").sample(CALIBRATION_GAN_SAMPLES, size=256, seed=20261202)
    tiles = [cut_tiles(np.ascontiguousarray(image[..., :3]), tile, 16)[0] for image in [*photos, *samples]]
    source = (f"{len(photos)} scikit-image colour photos and {CALIBRATION_GAN_SAMPLES} samples of the shipped GAN "
              "(256 px, seed 20261202), 16 tiles each")
    return np.concatenate(tiles), source


_FLAG = {"splits": "split"}  # dataset config fields whose CLI flag has another name
_NO_FLAG = ("real", "real_scale", "external")


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
        for spec in saved.get("external", []):  # "synthetic:NAME=DIR" / "real:NAME=DIR"
            label, _, source = spec.partition(":")
            options.append(f"--{label} {source}")
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
