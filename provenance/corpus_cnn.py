"""The ``cnn`` family trained on the public corpus: the shipped ``cnn-corpus`` classifier.

The same material and splits as ``spectral-corpus`` (:mod:`provenance.corpus_detector`: the
class-blind pipeline's 224px crops, split by source group, ``crops`` crops per training image), fed
to the NPR-input CNN (detectors/learned/cnn.py) with augmentation drawn on a 136px window around each
tile. ``python -m benchmarks corpus_cnn`` measured this recipe against the spectral one on held-out
families (the model card carries that table).

The threshold rule is the shipped one, <= ``target_fpr`` false positives on *every* real source,
over the validation photos (pipeline crops and raw files as ``check`` reads them) and the training
photos' raw files as the shipped model scores them, each scored by both exported graphs (float32 and
int8: which one runs depends on the CPU, and either must keep the rule). Unlike the linear model, the
training photos are not also scored out of fold: that would take five more CNN trainings.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Callable

import numpy as np

from provenance.corpus_detector import (QUALITY, SCOPE, SIZE, TRAINING_CROPS, CorpusFit, Sample, cached_arrays,
                                        corpus_samples, own_samples, raw_file_logits, save_npz, save_splits)

AUGMENT_WINDOW = 136  # 2 x the 64px tile + 8: a tile still fits after the strongest (0.5x) downscale
NOISE_SIGMA = 40.0  # noise augmentation up to high-ISO colour noise (CNNConfig.augment_noise_sigma says why)
DEFAULT_STEPS = 2000
CHECK_MAX_TILES = 32  # tiles `check` scores per image, as the toy cnn
GRAPHS = ("fp32", "int8")
INT8_IMAGES, INT8_TILES_PER_IMAGE = 300, 4  # int8 ranges: tiles of training images' second crops
INT8_PERCENTILE = 99.999  # the corpus's extreme residuals under MinMax cost the rest their precision
# (shipped run, the whole backbone quantised, 8,757 validation tiles: logit correlation with fp32
# 0.984 under MinMax, 0.994 at this percentile; the convolutions alone at 99.99: 0.988)
SCORES_FILE = "scores.npz"  # written last: a folder holding it is a finished run


def crops_file(seed: int) -> str:
    return f"crops-{SIZE}-seed{seed}.npz"


def cached_crops(samples: list[Sample], out: Path, seed: int) -> dict[str, np.ndarray]:
    """sha256 -> the pipeline's ``seed``-th crop, cached in ``out`` (resumable)."""
    return cached_arrays(samples, out / crops_file(seed), "crops", lambda crop: crop, SIZE, f"crops seed {seed}",
                         seed=seed, every=1000)


def int8_calibration(train_samples: list[Sample], second_crops: dict[str, np.ndarray], tile: int, seed: int = 0):
    """Activation ranges for the int8 graph from the corpus itself: ``INT8_TILES_PER_IMAGE`` tiles
    of the second crop of ``INT8_IMAGES`` training images drawn at random (never a crop that the
    threshold or the held-out tables score)."""
    from detectors.learned.tiles import cut_tiles
    from provenance.classifier_card import Int8Calibration

    keys = [s.key for s in train_samples if s.key in second_crops]
    chosen = np.random.default_rng(seed).choice(len(keys), min(INT8_IMAGES, len(keys)), replace=False)
    tiles = np.concatenate([cut_tiles(second_crops[keys[i]], tile, INT8_TILES_PER_IMAGE)[0] for i in sorted(chosen)])
    return Int8Calibration(tiles, f"{INT8_TILES_PER_IMAGE} tiles of the second pipeline crop of each of {len(chosen)} "
                                  f"training images drawn at random (seed {seed})", INT8_PERCENTILE)


def graph_scorers(folder: Path) -> dict[str, object]:
    """The classifier in ``folder`` once per exported graph, by precision."""
    from detectors.learned import load_classifier
    from detectors.learned.cnn import ONNX_FILE, ONNX_INT8_FILE, OnnxTileModel

    out = {}
    for precision, name in zip(GRAPHS, (ONNX_FILE, ONNX_INT8_FILE)):
        model = load_classifier(folder)
        model.runtime = OnnxTileModel(folder / name)
        out[precision] = model
    return out


def train(corpus: Path, own: Path | None, out: Path, steps: int = DEFAULT_STEPS, crops: int = TRAINING_CROPS,
          target_fpr: float = 0.01, seed: int = 0, on_progress: Callable[[str], None] | None = None) -> CorpusFit:
    """Crops (cached in ``out``), CNN fit (checkpointed in ``out``: kill and re-run to resume), ONNX
    export (float32 and int8), Platt calibration on the validation crops, the per-source threshold;
    ``out`` becomes a cnn classifier folder with its split record and every sample's scores."""
    samples = corpus_samples(Path(corpus)) + (own_samples(Path(own)) if own else [])
    if not any(s.label for s in samples) or all(s.label for s in samples):
        raise ValueError(f"{corpus}: need real and synthetic images (run `provenance dataset corpus rebuild`)")
    return fit(samples, out, steps, crops, target_fpr, seed, on_progress)


def fit(samples: list[Sample], out: Path, steps: int = DEFAULT_STEPS, crops: int = TRAINING_CROPS,
        target_fpr: float = 0.01, seed: int = 0, on_progress: Callable[[str], None] | None = None,
        **config) -> CorpusFit:
    """:func:`train` on ``samples`` (``config``: CNNConfig fields other than the shipped recipe's)."""
    from detectors.learned.calibration import OperatingPoint, PlattCalibration
    from detectors.learned.cnn import CNNClassifier
    from provenance.classifier_card import export_inference
    from provenance.precision import use_int8

    say = on_progress or (lambda line: print(line, file=sys.stderr, flush=True))
    out = Path(out)
    if (out / SCORES_FILE).is_file():  # written last: the run is finished
        say(f"{out}: finished run loaded (delete {SCORES_FILE} to score and calibrate again)")
        return load_fit(samples, out)
    out.mkdir(parents=True, exist_ok=True)
    first = cached_crops(samples, out, 0)
    samples = [s for s in samples if s.key in first]  # unreadable files were reported and left out
    train_samples = [s for s in samples if s.split == "train"]
    more = [cached_crops(train_samples, out, k) for k in range(1, crops)]
    images = [first[s.key] for s in train_samples] + [c[s.key] for c in more for s in train_samples if s.key in c]
    labels = np.array([s.label for s in train_samples] + [s.label for c in more for s in train_samples if s.key in c])

    model = CNNClassifier(**{"augment_window": AUGMENT_WINDOW, "augment_noise_sigma": NOISE_SIGMA,
                             "max_tiles": CHECK_MAX_TILES, **config})
    model.fit(images, labels, steps=steps, seed=seed, out=out, checkpoint_every=100, log_every=100,
              on_log=lambda log: say(f"train {json.dumps(log)}"))
    del images
    fit_record = dict(model.training)
    model.save(out)
    say("exporting cnn.onnx and cnn.int8.onnx")
    inference_card = export_inference(out, write_card=False, calibration=int8_calibration(
        train_samples, more[0] if more else first, model.tile, seed))
    scorers = graph_scorers(out)
    check_graph = "int8" if use_int8() else "fp32"

    y = np.array([s.label for s in samples])
    split = np.array([s.split for s in samples])
    crop_logits = {p: m.decision_function([first[s.key] for s in samples]) for p, m in scorers.items()}
    validation = split == "validation"
    calibration = PlattCalibration.fit(crop_logits["fp32"][validation], y[validation])

    held_reals = [i for i in np.flatnonzero((y == 0) & (split != "train"))]
    train_reals = [i for i in np.flatnonzero((y == 0) & (split == "train"))]
    file_logits = {p: raw_file_logits(m, samples, held_reals + train_reals, say, f"raw-file scores ({p})")
                   for p, m in scorers.items()}
    threshold_reals = [i for i in np.flatnonzero(validation & (y == 0))]
    scores, views = [], []
    for precision in GRAPHS:
        scores += [crop_logits[precision][i] for i in threshold_reals]
        views += [f"crop:{samples[i].source}" for i in threshold_reals]
        for i in threshold_reals + train_reals:
            if samples[i].key in file_logits[precision]:
                scores.append(file_logits[precision][samples[i].key])
                views.append(f"file:{samples[i].source}")
    final = scorers[check_graph]
    final.calibration = calibration
    final.operating_point = OperatingPoint.per_source(calibration(np.array(scores)), views, target_fpr)
    final.training = {**fit_record, "images": len(labels), "synthetic": int(labels.sum()),
                      "calibration_images": int(validation.sum()), "crop": SIZE, "augment_window": AUGMENT_WINDOW,
                      "threshold_reals": {"validation": len(threshold_reals), "training_files_in_sample": len(train_reals),
                                          "graphs": list(GRAPHS)},
                      "crops_per_training_image": crops, "jpeg_quality": list(QUALITY), "scope": SCOPE,
                      "families": sorted({s.family for s in samples if s.label}),
                      "real_sources": sorted({s.source for s in samples if not s.label})}
    final.save(out)  # the metadata; the weights file (and the digest the graphs record) stays as it is
    (out / "inference.md").write_text("\n".join(inference_card) + "\n")
    held_keys = {samples[i].key for i in held_reals}
    result = CorpusFit(final, samples, np.zeros((len(samples), 0), np.float32), crop_logits[check_graph],
                       {k: v for k, v in file_logits[check_graph].items() if k in held_keys})
    save_splits(result, out)
    save_npz(out / SCORES_FILE, keys=np.array([s.key for s in samples]),
             **{f"crop_logits_{p}": v for p, v in crop_logits.items()},
             **{f"file_keys_{p}": np.array(list(v)) for p, v in file_logits.items()},
             **{f"file_logits_{p}": np.array(list(v.values())) for p, v in file_logits.items()})
    return result


def load_fit(samples: list[Sample], out: Path) -> CorpusFit:
    """A finished run as :func:`fit` returned it, scored by the graph ``check`` runs on this CPU."""
    from detectors.learned import load_classifier
    from provenance.precision import use_int8

    model = load_classifier(out)
    graph = "int8" if use_int8() else "fp32"
    with np.load(Path(out) / SCORES_FILE, allow_pickle=False) as saved:
        logits = dict(zip(map(str, saved["keys"]), saved[f"crop_logits_{graph}"]))
        files = dict(zip(map(str, saved[f"file_keys_{graph}"]), map(float, saved[f"file_logits_{graph}"])))
    samples = [s for s in samples if s.key in logits]
    held = {s.key for s in samples if not s.label and s.split != "train"}
    return CorpusFit(model, samples, np.zeros((len(samples), 0), np.float32), np.array([logits[s.key] for s in samples]),
                     {k: v for k, v in files.items() if k in held})
