"""A real-image model's surprise (ZED-like, ``surprise`` classifier family) on the public corpus,
next to the shipped ``spectral-corpus`` recipe, measured in the same run.

    python -m benchmarks.corpus_surprise --corpus /root/provenance-corpus/images \
        [--cache /root/provenance-runs/corpus-surprise] [--steps 1500] [--raw-fakes-per-family 40] [--json]

The pixel predictor of detectors/learned/surprise.py is trained on the *real* photos of the corpus's
train split only (pipeline crops, two per photo), so every generator family is unseen by it. Every
image, real or synthetic, goes through the same class-blind pipeline as for ``spectral-corpus``
(provenance/datasets/external.py: JPEG history for lossless originals, a native 224px crop at a
random offset, a final JPEG at quality 70-95); features are those of the crop's four corner 128px
tiles, and an image's score is the mean of its tiles' logits, as ``check`` scores whole images.

Detectors, per held-out generator family (threshold: <= 1% false positives on *each* real source's
validation photos, the shipped rule; TPR and FPR on the held-out family and the test reals):
- ``spectral-lr``: the shipped ``spectral-corpus`` recipe, retrained without the family (baseline);
- ``surprise-gaussian``: one-class, real tiles only (the predictor and the head never see a fake;
  one fit serves every family): Mahalanobis distance over all the surprise features;
- ``surprise-zed``: one-class, real tiles only: ZED's statistic, the full-resolution coding-cost
  gap (an image cheaper to code than the real-image model expects scores high);
- ``surprise-lr``: the same features, logistic regression on the other families' tiles;
- ``spectral+surprise-lr``: both feature sets, logistic regression on the other families.

Then, end to end on raw files as ``check`` reads them (whole image, native tiles): the one-class
``zed`` model saved as a classifier folder, next to the shipped ``spectral-corpus``, on the test reals and
a sample of each family's test fakes; and the milliseconds each adds per 1080p image.
Everything is cached under ``--cache`` (resumable; safe to kill, stop or re-run).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from .corpus_lofo import TARGET_FPR, held_out_metrics

ONE_CLASS_HEADS = ("gaussian", "zed")
E2E_HEAD = "zed"  # the one-class head scored end to end on raw files (the better one on unseen families)
PREDICTOR_CROPS = 2  # pipeline crops per real training photo the predictor learns from
DEFAULT_STEPS = 1500


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def real_training_crops(samples: list, cache: Path, size: int) -> list[np.ndarray]:
    """Pipeline crops (seeds 0 .. PREDICTOR_CROPS-1) of the train split's real photos, cached."""
    from provenance.corpus_detector import cached_arrays

    reals = [s for s in samples if not s.label and s.split == "train"]
    crops = []
    for seed in range(PREDICTOR_CROPS):
        done = cached_arrays(reals, cache / f"real-train-crops-{size}-seed{seed}.npz", "crops", lambda crop: crop,
                             size, f"real crops {seed}", seed=seed)
        crops += [done[s.key] for s in reals if s.key in done]
    return crops


def predictor(samples: list, cache: Path, size: int, steps: int, config) -> object:
    """The trained pixel predictor (resumable: checkpoints in ``cache/predictor``)."""
    from detectors.learned.surprise import train_predictor

    crops = real_training_crops(samples, cache, size)
    log(f"predictor: {len(crops)} real crops, {steps} steps")
    return train_predictor(crops, config, steps, seed=0, out=cache / "predictor", checkpoint_every=50,
                           on_log=lambda entry: log(f"predictor {entry}"), log_every=25)


def spectral_features(samples: list, cache: Path, size: int, seed: int = 0) -> dict:
    """The spectral-corpus features of each crop (seeded from corpus_lofo's cache when it has them)."""
    from provenance.corpus_detector import cached_arrays, crop_features, features_file, save_npz

    store = cache / features_file(size, seed)
    lofo = Path("/root/provenance-runs/corpus-lofo") / features_file(size, seed)
    if not store.is_file() and lofo.is_file():
        with np.load(lofo, allow_pickle=False) as saved:
            save_npz(store, keys=saved["keys"], features=saved["features"])
    return cached_arrays(samples, store, "features", crop_features, size, f"spectral features {seed}", seed=seed)


def feature_version() -> str:
    """Names the feature set in the cache file, so features of an older definition are never reused."""
    import hashlib

    from detectors.learned import surprise

    text = f"{surprise.FEATURES_PER_LEVEL}{surprise.SMOOTH_ENTROPY}"
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def surprise_tiles(samples: list, cache: Path, size: int, model, tag: str) -> dict:
    """sha256 -> (4, F) surprise features of the crop's four corner tiles."""
    from provenance.corpus_detector import cached_arrays, corner_tiles

    return cached_arrays(samples, cache / f"surprise-tiles-{size}-{tag}.npz", "tiles",
                         lambda crop: model.tile_features(corner_tiles(crop)), size, "surprise features")


def lofo(rows: list, spectral: dict, more_spectral: list[dict], tiles: dict, one_class: dict) -> dict:
    """Per held-out family: every detector's metrics on it and on the test reals."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from detectors.learned.surprise import SurpriseHead

    from .corpus_lofo import Detectors

    x = np.stack([spectral[r.key] for r in rows])
    t = np.stack([tiles[r.key] for r in rows])  # (n, 4, F)
    y = np.array([r.label for r in rows])
    family = np.array([r.family for r in rows])
    source = np.array([r.source for r in rows])
    split = np.array([r.split if not r.label else "fake" for r in rows])
    families = sorted({r.family for r in rows if r.label and r.family != "mixed-unnamed"})
    one_class_scores = {name: head(t.reshape(-1, t.shape[-1])).reshape(len(rows), -1).mean(1)
                        for name, head in one_class.items()}
    results: dict = {"families": {}, "counts": {}, "test_reals_per_source": {
        s: int(((split == "test") & (source == s)).sum()) for s in sorted(set(source[split == "test"]))}}
    for held in families:
        train = ((y == 1) & (family != held)) | (split == "train")
        val, test = split == "validation", ((y == 1) & (family == held)) | (split == "test")
        extra = [(crops[r.key], r.label) for crops in more_spectral for r, keep in zip(rows, train)
                 if keep and r.key in crops]
        spectral_lr = Detectors.spectral_lr(np.vstack([x[train], *(f for f, _ in extra)]),
                                            np.r_[y[train], [label for _, label in extra]])
        head = SurpriseHead.fit("logistic", t[train].reshape(-1, t.shape[-1]), np.repeat(y[train], t.shape[1]))
        both = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=5000, class_weight="balanced"))
        combined = np.hstack([x, t.mean(1)])
        both.fit(combined[train], y[train])
        scores = {"spectral-lr": spectral_lr(x), **one_class_scores,
                  "surprise-lr": head(t.reshape(-1, t.shape[-1])).reshape(len(rows), -1).mean(1),
                  "spectral+surprise-lr": both.decision_function(combined)}
        results["families"][held] = {name: held_out_metrics(score, y, val, test, source)
                                     for name, score in scores.items()}
        results["counts"][held] = {"test_fakes": int(((y == 1) & (family == held)).sum()),
                                   "test_reals": int((test & (y == 0)).sum())}
    return results


def format_check(rows: list, scores: np.ndarray) -> dict:
    """Could the file format explain the scores? Lossless originals get a JPEG history in the pipeline,
    lossy ones do not; if a detector read that history, real photos stored losslessly would score
    like fakes. AUC between real photos by origin format (0.5: blind to it), and fakes against
    reals within each origin format."""
    from sklearn.metrics import roc_auc_score

    from provenance.datasets.external import LOSSY_FORMATS

    lossy = np.array([r.image.format in LOSSY_FORMATS for r in rows])
    y = np.array([r.label for r in rows])
    held = np.array([r.label == 1 or r.split != "train" for r in rows])
    out: dict = {"real_lossless_vs_real_lossy_auc": None, "fake_vs_real_auc": {}}
    reals = held & (y == 0)
    if len(set(lossy[reals].tolist())) == 2:
        out["real_lossless_vs_real_lossy_auc"] = float(roc_auc_score(~lossy[reals], scores[reals]))
    out["counts"] = {"real_lossless": int((reals & ~lossy).sum()), "real_lossy": int((reals & lossy).sum()),
                     "fake_lossless": int(((y == 1) & ~lossy).sum()), "fake_lossy": int(((y == 1) & lossy).sum())}
    for name, origin in (("lossless", ~lossy), ("lossy", lossy)):
        keep = held & origin
        if len(set(y[keep].tolist())) == 2:
            out["fake_vs_real_auc"][name] = float(roc_auc_score(y[keep], scores[keep]))
    return out


def lofo_table(results: dict) -> str:
    from provenance.markdown import markdown_table

    names = list(next(iter(results["families"].values())))
    rows = []
    for held, entry in results["families"].items():
        cells = []
        for n in names:
            m = entry[n]
            worst = max(m["fpr_per_real_source"].values())
            cells.append(f"{m['auc']:.3f} / {m['tpr_at_1pct_fpr_test']:.3f} / {m['tpr_at_threshold']:.3f} / {worst:.3f}")
        rows.append([held, results["counts"][held]["test_fakes"], *cells])
    return markdown_table(["held-out family", "fakes", *[f"{n}: AUC / TPR@1%FPR / TPR at val. threshold / worst "
                                                          "real-source FPR" for n in names]], rows)


def source_table(results: dict) -> str:
    from provenance.markdown import markdown_table

    names = list(next(iter(results["families"].values())))
    sources = sorted({s for e in results["families"].values() for m in e.values() for s in m["fpr_per_real_source"]})
    counts = results.get("test_reals_per_source", {})
    rows = [[s, counts.get(s, ""), *[f"{max(e[n]['fpr_per_real_source'].get(s, 0) for e in results['families'].values()):.3f}"
                                     for n in names]] for s in sources]
    return markdown_table(["real source", "test photos", *names], rows)


def one_class_heads(rows: list, tiles: dict) -> dict:
    """The one-class heads, fitted on the train split's real tiles only (every family unseen)."""
    from detectors.learned.surprise import SurpriseHead

    train_reals = [r for r in rows if not r.label and r.split == "train"]
    features = np.concatenate([tiles[r.key] for r in train_reals])
    return {f"surprise-{kind}": SurpriseHead.fit(kind, features, np.zeros(len(features), int))
            for kind in ONE_CLASS_HEADS}


def one_class_model(rows: list, tiles: dict, weights, config, head):
    """The one-class surprise classifier as ``check`` would ship it: head on the train reals' tiles,
    Platt scaling on the validation split, threshold for <= 1% on every real source's validation
    photos, on crops and on raw files."""
    from detectors.learned.calibration import OperatingPoint, PlattCalibration
    from detectors.learned.surprise import SurpriseClassifier
    from provenance.corpus_detector import full_image

    model = SurpriseClassifier(**{**asdict(config), "head": E2E_HEAD})
    model.predictor = weights
    model.head = head
    model._fitted = True
    validation = [r for r in rows if r.split == "validation"]
    crop_logits = np.array([model.head(tiles[r.key]).mean() for r in validation])
    labels = np.array([r.label for r in validation])
    model.calibration = PlattCalibration.fit(crop_logits, labels)
    val_reals = [r for r in validation if not r.label]
    raw = {}
    for i, r in enumerate(val_reals):
        try:
            raw[r.key] = float(model.decision_function([full_image(r.image.path)])[0])
        except Exception as exc:  # noqa: BLE001 - unreadable file: reported, left out
            log(f"skip {r.image.path}: {type(exc).__name__}: {exc}".splitlines()[0])
        if (i + 1) % 50 == 0:
            log(f"raw validation reals {i + 1}/{len(val_reals)}")
    probabilities = model.calibration(np.r_[[model.head(tiles[r.key]).mean() for r in val_reals],
                                            [raw[r.key] for r in val_reals if r.key in raw]])
    views = [f"crop:{r.source}" for r in val_reals] + [f"file:{r.source}" for r in val_reals if r.key in raw]
    model.operating_point = OperatingPoint.per_source(probabilities, views, TARGET_FPR)
    model.training = {"predictor": "real photos of the corpus's train split only",
                      "predictor_crops": PREDICTOR_CROPS, "head": f"{E2E_HEAD} (train-split real tiles only)",
                      "calibration_images": len(validation), "crop": 224, "scope": "real-photos",
                      "real_sources": sorted({r.source for r in rows if not r.label}),
                      "steps": getattr(weights, "steps", None)}
    return model


def raw_files(rows: list, models: dict, fakes_per_family: int) -> dict:
    """Each model's evidence on raw test files, as ``check`` reads them: share flagged per stratum."""
    from detectors.results import Signal
    from provenance.imageio import load_image

    rng = np.random.default_rng(0)
    chosen = [r for r in rows if not r.label and r.split == "test"]
    for fam in sorted({r.family for r in rows if r.label}):
        members = [r for r in rows if r.label and r.family == fam and r.split == "test"]
        chosen += [members[i] for i in sorted(rng.permutation(len(members))[:fakes_per_family])]
    flagged = {name: {} for name in models}
    for i, r in enumerate(chosen):
        try:
            image = load_image(r.image.path)
        except Exception as exc:  # noqa: BLE001
            log(f"skip {r.image.path}: {exc}")
            continue
        stratum = f"fake: {r.family}" if r.label else f"real: {r.source}"
        for name, detector in models.items():
            evidence = detector.detect(image)
            flagged[name].setdefault(stratum, []).append(int(evidence.signal == Signal.SYNTHETIC))
        if (i + 1) % 50 == 0:
            log(f"raw test files {i + 1}/{len(chosen)}")
    return flagged


def raw_table(flagged: dict) -> str:
    from provenance.markdown import markdown_table

    names = list(flagged)
    strata = sorted({s for per in flagged.values() for s in per})
    rows = [[s, len(flagged[names[0]][s]), *[f"{sum(flagged[n][s])}/{len(flagged[n][s])}" for n in names]]
            for s in strata]
    reals = {n: [v for s, per in flagged[n].items() if s.startswith("real") for v in per] for n in names}
    rows.append(["real: all", len(reals[names[0]]), *[f"{sum(reals[n])}/{len(reals[n])}" for n in names]])
    return markdown_table(["test stratum (raw files)", "n", *[f"{n}: flagged" for n in names]], rows)


def cost_per_1080p(detectors: dict, repeats: int = 3) -> dict:
    """Median ms each detector adds to one 1920x1080 photo (features not shared with another detector)."""
    from PIL import Image
    from skimage import data

    from provenance.imageio import load_image

    photo = np.asarray(Image.fromarray(data.astronaut()).resize((1920, 1080)))
    path = Path("/tmp/corpus-surprise-1080p.png")
    Image.fromarray(photo).save(path)
    out = {}
    for name, detector in detectors.items():
        detector.detect(load_image(path))  # loads the model
        times = []
        for _ in range(repeats):
            image = load_image(path)
            started = time.perf_counter()
            detector.detect(image)
            times.append((time.perf_counter() - started) * 1000)
        out[name] = float(np.median(times))
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("/root/provenance-corpus/images"))
    parser.add_argument("--cache", type=Path, default=Path("/root/provenance-runs/corpus-surprise"))
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--raw-fakes-per-family", type=int, default=40)
    parser.add_argument("--train-only", action="store_true", help="Stop after training the predictor.")
    parser.add_argument("--save-model", type=Path, help="Save the one-class classifier folder here.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv if argv is not None else [])
    if not args.corpus.is_dir():
        print(f"corpus_surprise: {args.corpus}: no corpus; run `provenance dataset corpus rebuild` first (skipped)")
        return
    from detectors.classifiers import CorpusSpectralDetector, SurpriseDetector
    from detectors.learned.surprise import SurpriseClassifier, SurpriseConfig
    from provenance.corpus_detector import TRAINING_CROPS, corpus_samples
    from .timing import capability_line

    print(capability_line())
    print("baseline: spectral-lr (the shipped spectral-corpus recipe) retrained per held-out family, and the "
          "shipped spectral-corpus weights on raw files, same run")
    samples = corpus_samples(args.corpus, args.size)
    config = SurpriseConfig()
    weights = predictor(samples, args.cache, args.size, args.steps, config)
    weights.steps = args.steps
    if args.train_only:
        return
    extractor = SurpriseClassifier(**asdict(config))
    extractor.predictor = weights
    tiles = surprise_tiles(samples, args.cache, args.size, extractor, f"steps{args.steps}-{feature_version()}")
    spectral = spectral_features(samples, args.cache, args.size)
    trainable = [s for s in samples if s.label or s.split == "train"]
    more = [spectral_features(trainable, args.cache, args.size, seed=k) for k in range(1, TRAINING_CROPS)]
    rows = [s for s in samples if s.key in tiles and s.key in spectral]
    heads = one_class_heads(rows, tiles)
    model = one_class_model(rows, tiles, weights, config, heads[f"surprise-{E2E_HEAD}"])
    results = lofo(rows, spectral, more, tiles, heads)
    results["size"], results["images"], results["steps"] = args.size, len(rows), args.steps
    results["format_check"] = {name: format_check(rows, np.array([head(tiles[r.key]).mean() for r in rows]))
                               for name, head in heads.items()}
    if args.save_model:
        model.save(args.save_model)

    folder = args.save_model or (args.cache / "model")
    model.save(folder)
    detectors = {"spectral-corpus (shipped)": CorpusSpectralDetector(), f"surprise-{E2E_HEAD} (one-class)": SurpriseDetector(folder)}
    flagged = raw_files(rows, detectors, args.raw_fakes_per_family)
    results["raw_files"] = flagged
    results["ms_per_1080p"] = cost_per_1080p(detectors)
    results["operating_point"] = model.operating_point.to_dict()
    (args.cache / f"surprise-{args.size}.json").write_text(json.dumps(results, indent=1) + "\n")
    if args.json:
        print(json.dumps(results))
        return
    print(f"{len(rows)} images, {args.size}px pipeline crops; predictor: {args.steps} steps on real photos only\n")
    print(lofo_table(results))
    print("\nPer real source, test photos flagged at the threshold (worst over the held-out families):\n")
    print(source_table(results))
    print("\nFormat shortcut check (origin format: lossless originals get a JPEG history, lossy ones do not): "
          + json.dumps(results["format_check"]))
    print("\nEnd to end on raw files (whole image, native tiles), each detector at its own threshold:\n")
    print(raw_table(flagged))
    print("\nms per 1080p image (median of 3, this machine, loaded): " +
          ", ".join(f"{k} {v:.0f}" for k, v in results["ms_per_1080p"].items()))
    print(f"\nfull results: {args.cache / f'surprise-{args.size}.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
