"""The classifier ``check`` uses on real-world generators: spectral features + logistic regression
trained on the public corpus (``provenance dataset corpus rebuild``) and our own generators' output.

Every image, real or synthetic, goes through the class-blind external pipeline
(:mod:`provenance.datasets.external`: a JPEG history for lossless originals, one native-resolution
crop at a random offset, a final JPEG at quality 70-95 drawn per image); its features are the mean
of the spectral features of four 128px tiles of the crop. The model is linear, so the mean of tile
features scores as the mean of tile logits: the shipped folder is an ordinary ``spectral``
classifier that ``check`` runs over native-resolution tiles of the whole image.

Splits are by source group, so no near-copy spans two splits: a prompt folder for the corpus's
multi-generator render folders (every generator's render of one prompt stays together), otherwise
one file (independent samples: a GAN seed, an SD artist-style preview, a real photo). Groups are
hashed into train (60%), validation (20%: Platt calibration and the threshold) and test (20%).

The threshold is the strictest of two: <= ``target_fpr`` false positives on the held-out reals of
*every* real source (a small source thus allows none), measured both on the pipeline's crops and on
the raw files as ``check`` reads them. Held out means the validation photos and, scored out of fold,
the training photos (:func:`out_of_fold_real_logits`): a source of 60 photos then sets the threshold
with about 48 of them, not 12, so one unlucky draw of a small validation split cannot leave most of
a source's photos over the line (low-light photos did: 2 of 17 test photos flagged). The shipped
model's own scores of its training photos' files count too, so it flags no corpus photo beyond the rule.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from provenance.datasets.perturbations import posted_crop
from provenance.files import file_sha256

SIZE = 224  # crop side; the corpus's smallest fakes are 256px
QUALITY = (70, 95)  # final JPEG quality range, both classes
SPLIT_EDGES = (0.6, 0.8)  # train < 0.6 <= validation < 0.8 <= test
FEATURE_TILE = 128
DEFAULT_C = 0.1  # chosen on validation AUC and per-source FPR (see the model card)
CHECK_MAX_TILES = 16  # tiles `check` scores per image (benchmarks tile_budget: no real photo's verdict changes from 64)
TRAINING_CROPS = 3  # crops per training image: more AUC and fewer false positives than 1 (README)
SCOPE = "public-corpus+our-generators"  # what the model was trained on: read by the fusion rule (classifier dissent)


@dataclass(frozen=True)
class Sample:
    """One image of the training material, as the splits and tables know it."""
    key: str  # sha256 of the file
    label: int  # 1 = synthetic
    family: str  # generator family, or "real"
    source: str  # generator name, or real source
    group: str  # split group
    image: object  # ExternalImage (no pixels)

    @property
    def split(self) -> str:
        return group_split(self.group)


def group_split(group: str) -> str:
    r = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "train" if r < SPLIT_EDGES[0] else "validation" if r < SPLIT_EDGES[1] else "test"


def big_enough(width: int, height: int, size: int = SIZE) -> bool:
    """The pipeline cuts a ``size`` crop and needs one side longer, so no crop is a whole frame."""
    return min(width, height) >= size and max(width, height) > size


def corpus_group(row) -> str:
    if row.label == "real":
        return f"{row.repo}:{row.path}"
    if row.repo == "dcsan/imagen":  # output/renders/<prompt>/<generator>-<n>.png: a prompt's renders together
        return f"{row.repo}:{os.path.dirname(row.path)}"
    if row.repo == "AI-Image-Gen/generator-testing":  # img/[old/]<run>-<model>-<id>.jpg: one prompt per run
        return f"{row.repo}:run-{os.path.basename(row.path).split('-')[0]}"
    return f"{row.repo}:{row.path}"


def corpus_samples(corpus: Path, size: int = SIZE, rows: Iterable | None = None) -> list[Sample]:
    """The corpus images present under ``corpus`` and large enough for a crop."""
    from provenance.datasets.corpus import read_index
    from provenance.datasets.external import ExternalImage

    out = []
    for row in rows if rows is not None else read_index():
        path = row.out_path(corpus)
        if not path.is_file() or not big_enough(row.width, row.height, size):
            continue
        image = ExternalImage(row.generator, row.label, str(path), row.path, corpus_group(row), row.width,
                              row.height, row.format)
        out.append(Sample(row.sha256, int(row.label == "synthetic"),
                          row.family if row.label == "synthetic" else "real", row.generator, image.group, image))
    return out


def own_samples(folder: Path, size: int = SIZE) -> list[Sample]:
    """Our generators' output: ``folder/<generator>/*.png`` (one group per file: independent seeds)."""
    from provenance.datasets.external import scan_source

    out = []
    for sub in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        images, _ = scan_source(f"ours-{sub.name}", "synthetic", sub, size)
        for image in images:
            key = file_sha256(image.path)
            out.append(Sample(key, 1, image.source, image.source, f"{image.source}:{image.relative}", image))
    return out


def _rng(*words) -> np.random.Generator:
    return np.random.default_rng([int.from_bytes(hashlib.blake2b(str(w).encode(), digest_size=4).digest(), "big")
                                  for w in words])


def training_crop(image, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """The class-blind pipeline's crop of one external image (deterministic per path and seed)."""
    from provenance.datasets.external import draw_processing, external_pixels, jpeg_roundtrip

    rng = _rng(seed, image.path)
    processing = draw_processing(image, size, QUALITY, rng)
    crop = external_pixels(image.path, processing, size)
    return jpeg_roundtrip(crop, int(rng.integers(QUALITY[0], QUALITY[1] + 1)))


RESAMPLE_RANGE = (0.5, 0.9)  # downscale factors of the resampled training crops


def resampled_crop(image, size: int = SIZE, seed: int = 0) -> np.ndarray:
    """The pipeline's crop after downscaling the whole image by a random factor (either class alike):
    a resized real photo must not read as synthetic, and a generator's traces must survive a resize."""
    from PIL import Image

    from provenance.datasets.external import LOSSY_FORMATS, jpeg_roundtrip

    rng = _rng("resampled", seed, image.path)
    with Image.open(image.path) as opened:
        opened.seek(0)
        rgb = np.asarray(opened.convert("RGB"))
    if image.format not in LOSSY_FORMATS:
        rgb = jpeg_roundtrip(rgb, int(rng.integers(QUALITY[0], QUALITY[1] + 1)))
    height, width = rgb.shape[:2]
    factor = max(float(rng.uniform(*RESAMPLE_RANGE)), (size + 1) / min(height, width))
    if factor < 1:
        method = (Image.Resampling.BICUBIC, Image.Resampling.LANCZOS, Image.Resampling.BILINEAR)[int(rng.integers(3))]
        rgb = np.asarray(Image.fromarray(rgb).resize((round(width * factor), round(height * factor)), method))
        height, width = rgb.shape[:2]
    y, x = int(rng.integers(height - size + 1)), int(rng.integers(width - size + 1))
    crop = rgb[y:y + size, x:x + size]
    crop = np.ascontiguousarray(crop[:, ::-1] if rng.random() < 0.5 else crop)
    return jpeg_roundtrip(crop, int(rng.integers(QUALITY[0], QUALITY[1] + 1)))


def corner_tiles(crop: np.ndarray, tile: int = FEATURE_TILE) -> np.ndarray:
    h, w = crop.shape[:2]
    return np.stack([crop[y:y + tile, x:x + tile] for y in (0, h - tile) for x in (0, w - tile)])


def crop_features(crop: np.ndarray) -> np.ndarray:
    """Mean spectral features of the crop's four corner tiles."""
    from detectors.learned.spectral import tile_features

    return tile_features(corner_tiles(crop)).mean(axis=0).astype(np.float32)


def features_file(size: int = SIZE, seed: int = 0) -> str:
    return f"features-{size}{f'-seed{seed}' if seed else ''}.npz"


def save_npz(store: Path, **arrays) -> None:
    """Atomic: a kill mid-write leaves the previous cache intact."""
    tmp = store.with_name(store.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, store)


def fill_cache(todo: list, done: dict, compute: Callable, save: Callable, size: int, what: str,
               every: int = 100, seed: int = 0, crop: Callable = training_crop) -> dict:
    """compute(crop) for each (key, image) not done yet, saving every ``every`` images (resumable).
    One bad file is reported on stderr and skipped; it never stops the run."""
    started = time.time()
    for i, (key, image) in enumerate(todo):
        try:
            done[key] = compute(crop(image, size, seed))
        except Exception as exc:  # noqa: BLE001 - one bad file never stops the run
            print(f"skip {image.path}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
            continue
        if (i + 1) % every == 0:
            save()
            print(f"{what} {i + 1}/{len(todo)} ({time.time() - started:.0f}s)", file=sys.stderr, flush=True)
    if todo:
        save()
    return done


def cached_arrays(samples: list[Sample], store: Path, field: str, compute: Callable, size: int = SIZE,
                  what: str = "features", seed: int = 0, crop: Callable = training_crop,
                  every: int = 100) -> dict[str, np.ndarray]:
    """sha256 -> compute(crop of ``seed``), one array per image, cached in ``store`` under ``field``
    (resumable; safe to kill and re-run; saved every ``every`` images)."""
    done: dict = {}
    if store.is_file():
        with np.load(store, allow_pickle=False) as saved:
            done = {str(k): v for k, v in zip(saved["keys"], saved[field])}
    todo = [(s.key, s.image) for s in samples if s.key not in done]

    def save():
        keys = sorted(done)
        save_npz(store, keys=np.array(keys), **{field: np.stack([done[k] for k in keys])})

    store.parent.mkdir(parents=True, exist_ok=True)
    return fill_cache(todo, done, compute, save, size, what, every=every, seed=seed, crop=crop)


def cached_features(samples: list[Sample], store: Path, size: int = SIZE) -> dict[str, np.ndarray]:
    """sha256 -> crop features, cached in ``store``."""
    return cached_arrays(samples, store, "features", crop_features, size)


def full_image(path: str) -> np.ndarray:
    """The raw file's pixels as ``check`` sees them."""
    from provenance.imageio import load_image

    return load_image(path).rgb


@dataclass
class CorpusFit:
    model: object  # SpectralClassifier, fitted, calibrated, with its operating point
    samples: list[Sample]
    features: np.ndarray  # (n, F), one row per sample
    logits: np.ndarray  # crop logits of every sample
    full_logits: dict[str, float]  # raw-file logits of the validation and test reals (key -> logit)
    # training reals scored out of fold: crop logits by sample index, raw-file logits by key
    out_of_fold: tuple[dict[int, float], dict[str, float]] = ({}, {})


def fit(samples: list[Sample], features: dict[str, np.ndarray], C: float = DEFAULT_C,
        target_fpr: float = 0.01, on_progress: Callable[[str], None] | None = None,
        more_crops: Sequence[dict[str, np.ndarray]] = ()) -> CorpusFit:
    """Logistic regression on the train split (plus ``more_crops``: features of other crops of the
    training images); Platt scaling on the validation split; the threshold for <= ``target_fpr`` on
    each real source of the validation split, on crops and on raw files."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from detectors.learned.calibration import OperatingPoint, PlattCalibration
    from detectors.learned.spectral import LinearTileModel, SpectralClassifier

    samples = [s for s in samples if s.key in features]
    x = np.stack([features[s.key] for s in samples])
    y = np.array([s.label for s in samples])
    split = np.array([s.split for s in samples])
    train, validation = split == "train", split == "validation"

    def new_pipeline():
        return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000, class_weight="balanced"))

    pipeline = new_pipeline()
    # more crops of the training images (other offsets and JPEG draws), never of the held-out ones
    extra = [(features_k[s.key], s.label, s.key) for features_k in more_crops for s in samples
             if s.split == "train" and s.key in features_k]
    pipeline.fit(np.vstack([x[train], *(f for f, _, _ in extra)]), np.r_[y[train], [label for _, label, _ in extra]])

    def classifier(fitted) -> "SpectralClassifier":
        model = SpectralClassifier(tile=FEATURE_TILE, C=C, augmented_copies=0, max_tiles=CHECK_MAX_TILES)
        model.model = LinearTileModel.from_pipeline(fitted)
        model._fitted = True
        return model

    model = classifier(pipeline)
    logits = model.model.decision_function(x)
    model.calibration = PlattCalibration.fit(logits[validation], y[validation])

    full_logits = raw_file_logits(model, samples, [i for i in np.flatnonzero((y == 0) & (split != "train"))],
                                  on_progress)
    # training reals, each scored by a model fitted without it (crops and raw files)
    train_reals = np.flatnonzero(train & (y == 0))
    oof_crop_logits, oof_file_logits = out_of_fold_real_logits(
        samples, x, y, train, extra, new_pipeline, classifier, on_progress)
    # and the shipped model's own scores of its training photos' files: no corpus photo that `check`
    # would flag beyond the rule, even where a refit scored it lower
    in_sample_files = raw_file_logits(model, samples, train_reals, on_progress, "training raw-file scores")
    threshold_reals = [i for i in np.flatnonzero(validation & (y == 0))]
    crop_scores = np.r_[logits[threshold_reals], [oof_crop_logits[i] for i in train_reals]]
    crop_sources = [samples[i].source for i in threshold_reals] + [samples[i].source for i in train_reals]
    file_views = [(samples[i].source, full_logits[samples[i].key]) for i in threshold_reals if samples[i].key in full_logits]
    file_views += [(samples[int(i)].source, score) for i in train_reals
                   for score in (oof_file_logits.get(samples[int(i)].key), in_sample_files.get(samples[int(i)].key))
                   if score is not None]
    probabilities = model.calibration(np.r_[crop_scores, [score for _, score in file_views]])
    views = [f"crop:{source}" for source in crop_sources] + [f"file:{source}" for source, _ in file_views]
    model.operating_point = OperatingPoint.per_source(probabilities, views, target_fpr)
    model.training = {"images": int(train.sum()), "synthetic": int(y[train].sum()),
                      "calibration_images": int(validation.sum()), "C": C, "crop": SIZE,
                      "threshold_reals": {"validation": len(threshold_reals), "training_out_of_fold": len(train_reals),
                                          "training_files_in_sample": len(in_sample_files), "folds": OUT_OF_FOLD_FOLDS},
                      "crops_per_training_image": 1 + len(more_crops),
                      "jpeg_quality": list(QUALITY), "scope": SCOPE,
                      "families": sorted({s.family for s in samples if s.label}),
                      "real_sources": sorted({s.source for s in samples if not s.label})}
    return CorpusFit(model, samples, x, logits, full_logits, (oof_crop_logits, oof_file_logits))


OUT_OF_FOLD_FOLDS = 5


def raw_file_logits(model, samples: list[Sample], indices, on_progress: Callable[[str], None] | None = None,
                    what: str = "raw-file scores") -> dict[str, float]:
    """Logit of each sample's whole file as ``check`` scores it, by key (unreadable files reported, left out)."""
    out = {}
    for n, i in enumerate(indices):
        try:
            out[samples[i].key] = float(model.decision_function([full_image(samples[i].image.path)])[0])
        except Exception as exc:  # noqa: BLE001 - unreadable file: reported, left out of the threshold
            print(f"skip {samples[i].image.path}: {type(exc).__name__}: {exc}".splitlines()[0], file=sys.stderr)
        if on_progress and (n + 1) % 100 == 0:
            on_progress(f"{what} {n + 1}/{len(indices)}")
    return out


def out_of_fold_real_logits(samples: list[Sample], x: np.ndarray, y: np.ndarray, train: np.ndarray, extra: list,
                            new_pipeline: Callable, classifier: Callable,
                            on_progress: Callable[[str], None] | None = None,
                            folds: int = OUT_OF_FOLD_FOLDS) -> tuple[dict[int, float], dict[str, float]]:
    """Crop logits (by sample index) and raw-file logits (by key) of every training real photo, each
    from a model refitted without that photo's fold. Folds are by split group (hashed), so near-copies
    stay together; every fake and every other fold's real stays in each refit."""
    fold_of = {i: int(hashlib.sha256(("fold:" + samples[i].group).encode()).hexdigest()[:8], 16) % folds
               for i in np.flatnonzero(train & (y == 0))}
    keys = [s.key for s in samples]
    crop_logits: dict[int, float] = {}
    file_logits: dict[str, float] = {}
    for fold in range(folds):
        held = [i for i, f in fold_of.items() if f == fold]
        if not held:
            continue
        held_keys = {keys[i] for i in held}
        keep = train.copy()
        keep[held] = False
        more = [(f, label) for f, label, key in extra if key not in held_keys]  # other crops, minus this fold's
        fitted = new_pipeline()
        fitted.fit(np.vstack([x[keep], *(f for f, _ in more)]), np.r_[y[keep], [label for _, label in more]])
        model = classifier(fitted)
        crop_logits.update(zip(held, model.model.decision_function(x[held]).tolist()))
        file_logits.update(raw_file_logits(model, samples, held, on_progress, f"out-of-fold raw-file scores, fold {fold + 1}/{folds}"))
    return crop_logits, file_logits


def save_splits(result: CorpusFit, directory: Path) -> None:
    """Which source groups fed each split (the record a test reads before calling an image held out)."""
    record: dict = {"rule": "sha256(group) -> train < 0.6 <= validation < 0.8 <= test", "groups": {}, "images": {}}
    for split in ("train", "validation", "test"):
        members = [s for s in result.samples if s.split == split]
        record["groups"][split] = sorted({s.group for s in members})
        record["images"][split] = {"real": sum(not s.label for s in members),
                                   "synthetic": sum(s.label for s in members)}
    (directory / "splits.json").write_text(json.dumps(record, indent=1) + "\n")


def train(corpus: Path, own: Path | None, out: Path, C: float = DEFAULT_C, target_fpr: float = 0.01,
          on_progress: Callable[[str], None] | None = None, crops: int = TRAINING_CROPS) -> CorpusFit:
    """Features (cached in ``out``), fit, calibrate, save ``out`` as a spectral classifier folder with
    its split record and every sample's scores (``scores.npz``, for the model card and benchmarks).
    Training images give ``crops`` crops each (seeds 0 ..); held-out images one (seed 0)."""
    out = Path(out)
    samples = corpus_samples(Path(corpus)) + (own_samples(Path(own)) if own else [])
    if not any(s.label for s in samples) or all(s.label for s in samples):
        raise ValueError(f"{corpus}: need real and synthetic images (run `provenance dataset corpus rebuild`)")
    features = cached_features(samples, out / features_file())
    train_samples = [s for s in samples if s.split == "train"]
    more = [cached_arrays(train_samples, out / features_file(seed=k), "features", crop_features, seed=k)
            for k in range(1, crops)]
    result = fit(samples, features, C=C, target_fpr=target_fpr, on_progress=on_progress, more_crops=more)
    result.model.save(out)
    save_splits(result, out)
    keys = [s.key for s in result.samples]
    save_npz(out / "scores.npz", keys=np.array(keys), crop_logits=result.logits,
             full_keys=np.array(list(result.full_logits)), full_logits=np.array(list(result.full_logits.values())))
    return result


def held_out_tables(result: CorpusFit, split: str = "test") -> dict:
    """In-distribution figures on ``split`` (source groups never trained on nor calibrated on): per
    family AUC against the split's reals and TPR at the shipped threshold; per real source the
    false-positive rate at the threshold, on the pipeline's crops and on the raw files."""
    from sklearn.metrics import roc_auc_score

    model = result.model
    threshold = model.operating_point.threshold
    p = model.calibration(result.logits)
    y = np.array([s.label for s in result.samples])
    in_split = np.array([s.split == split for s in result.samples])
    family = np.array([s.family for s in result.samples])
    source = np.array([s.source for s in result.samples])
    reals = in_split & (y == 0)
    families = {}
    for f in sorted(set(family[in_split & (y == 1)])):
        fakes = in_split & (family == f)
        both = fakes | reals
        families[f] = {"fakes": int(fakes.sum()), "auc": float(roc_auc_score(y[both], p[both])),
                       "tpr_at_threshold": float((p[fakes] >= threshold).mean())}
    fakes = in_split & (y == 1)
    overall = {"fakes": int(fakes.sum()), "reals": int(reals.sum()),
               "auc": float(roc_auc_score(y[in_split], p[in_split])),
               "tpr_at_threshold": float((p[fakes] >= threshold).mean()),
               "fpr_at_threshold": float((p[reals] >= threshold).mean())}
    sources = {}
    for s in sorted(set(source[reals])):
        members = [i for i in np.flatnonzero(reals & (source == s))]
        full = [result.full_logits[result.samples[i].key] for i in members if result.samples[i].key in result.full_logits]
        sources[s] = {"reals": len(members), "fpr_crops": float((p[members] >= threshold).mean()),
                      "fpr_files": float((model.calibration(np.array(full)) >= threshold).mean()) if full else None,
                      "false_positives_files": int((model.calibration(np.array(full)) >= threshold).sum()) if full else 0}
    return {"split": split, "threshold": threshold, "overall": overall, "families": families, "sources": sources}


def load_fit(directory: Path, corpus: Path, own: Path | None) -> CorpusFit:
    """A trained folder with its samples, features and scores, as :func:`train` left it."""
    from detectors.learned import load_classifier

    directory = Path(directory)
    model = load_classifier(directory)
    samples = corpus_samples(Path(corpus)) + (own_samples(Path(own)) if own else [])
    with np.load(directory / "scores.npz", allow_pickle=False) as saved:
        logits = dict(zip(map(str, saved["keys"]), saved["crop_logits"]))
        full = dict(zip(map(str, saved["full_keys"]), map(float, saved["full_logits"])))
    with np.load(directory / features_file(), allow_pickle=False) as saved:
        features = dict(zip(map(str, saved["keys"]), saved["features"]))
    samples = [s for s in samples if s.key in logits]
    return CorpusFit(model, samples, np.stack([features[s.key] for s in samples]),
                     np.array([logits[s.key] for s in samples]), full)


TIGHTENED_HEADING = "## Threshold raised on real photos of the public corpus"


def tighten_threshold(folder: Path, corpus: Path, target_fpr: float = 0.01, crops: Sequence[int] = (),
                      seed: int = 0) -> dict:
    """Raise a trained classifier's threshold (never lower it) to the strictest that keeps every real
    source's *validation* photos of the corpus (raw files, as ``check`` reads them, and with ``crops``
    also a random crop of each per side, re-saved as JPEG as a posted crop is) at or under
    ``target_fpr``; the test photos stay held out. Rewrites only ``classifier.json`` (the weights
    files, and the hash the ONNX graph records of them, are untouched) and the card's section on it."""
    from detectors.learned import load_classifier
    from provenance.files import write_atomically
    from provenance.markdown import with_last_section
    from provenance.metrics import threshold_for_fpr
    from provenance.shipped import CLASSIFIER_META_FILE, MODEL_CARD_FILE

    folder = Path(folder)
    model = load_classifier(folder)
    reals = [s for s in corpus_samples(Path(corpus)) if not s.label and s.split == "validation"]
    by_source: dict[str, list[float]] = {}
    photos: dict[str, int] = {}
    for index, s in enumerate(reals):
        whole = full_image(s.image.path)
        rng = np.random.default_rng([seed, index])
        views = [whole] + [c for side in crops if (c := posted_crop(whole, side, rng)) is not None]
        scores = [float(model.predict_proba([v])[0, 1]) for v in views]
        by_source.setdefault(s.source, []).extend(p for p in scores if np.isfinite(p))  # NaN: under one tile
        photos[s.source] = photos.get(s.source, 0) + 1
    per_source = {src: threshold_for_fpr(np.sort(p), target_fpr) for src, p in sorted(by_source.items())}
    meta = json.loads((folder / CLASSIFIER_META_FILE).read_text())
    point = meta["operating_point"]
    previous = meta["training"].get("corpus_threshold", {})
    before = previous.get("threshold_before", point["threshold"])
    # a re-run replaces nothing new: it reports the threshold the first run replaced
    current = previous.get("threshold_replaced", point["threshold"]) if previous.get("threshold") == point["threshold"] \
        else point["threshold"]
    point["threshold"] = max(point["threshold"], before, *per_source.values())  # never lowered, not even by a re-run
    record = {"threshold_before": before, "threshold": point["threshold"], "target_fpr": target_fpr,
              "validation_reals": len(reals), "crop_sides": list(crops), "per_source_threshold": per_source,
              "false_positives_at_old_threshold": {src: int(np.sum(np.array(p) >= before)) for src, p in by_source.items()},
              "threshold_replaced": current,
              "false_positives_at_replaced_threshold": {src: int(np.sum(np.array(p) >= current))
                                                        for src, p in by_source.items()},
              "photos": photos, "views": {src: len(p) for src, p in by_source.items()}}
    meta["training"]["corpus_threshold"] = record
    write_atomically(folder / CLASSIFIER_META_FILE, json.dumps(meta, indent=2) + "\n")
    card_path = folder / MODEL_CARD_FILE
    if card_path.is_file():
        old_fp = record["false_positives_at_old_threshold"]
        flagged = ", ".join(f"{k} {v}/{record['views'][k]}" for k, v in old_fp.items() if v) or "none"
        card = with_last_section(card_path.read_text(), TIGHTENED_HEADING, [
            TIGHTENED_HEADING, "",
            f"Trained on our own generators only, this classifier also flagged real photos of the public corpus: at "
            f"its own threshold {before:.4f}, {sum(old_fp.values())} of {sum(record['views'].values())} views of "
            f"{len(reals)} validation photos ({flagged}); at the threshold this replaced, {record['threshold_replaced']:.4f}, "
            f"{sum(record['false_positives_at_replaced_threshold'].values())}. `check` now uses "
            f"threshold {point['threshold']:.4f}: the strictest that keeps every corpus source's validation photos "
            f"at <= {target_fpr:.0%} (raw files"
            + (f", and {' and '.join(f'a random {c} px crop' for c in crops)} of each, re-saved as JPEG" if crops else "")
            + "; the corpus's test photos stay held out). Set by "
            "`provenance train detector tighten`; the operating point above is the one it was trained with.", ""])
        write_atomically(card_path, card)
    return record
