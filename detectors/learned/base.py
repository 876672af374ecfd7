"""The shape every trained classifier shares, scikit-learn style: ``fit`` on training images,
``calibrate`` on held-out images, then ``decision_function`` / ``predict_proba``.

scikit-learn's fitted-ness contract holds: ``sklearn.utils.validation.check_is_fitted(model)``
passes only after ``fit`` or loading trained weights, and scoring before that raises
``sklearn.exceptions.NotFittedError`` (a new CNN must never score with its random weights);
``predict_proba`` also needs ``calibrate``. sklearn is imported only to raise, never to score.

Images are scored at native resolution: tiles of ``tile`` pixels, tile logits averaged (the mean,
not the max, so a large real photo is not flagged just because it has more tiles). Saved as a
folder: ``classifier.json`` (family, config, calibration, operating point, training summary) plus
the family's weights file.
"""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Hashable, Sequence

import numpy as np

from provenance.registry import Registry
from provenance.shipped import CLASSIFIER_META_FILE as META_FILE

from .calibration import EarlyStop, OperatingPoint, PlattCalibration
from .tiles import cut_tiles

CLASSIFIERS: Registry[type["ImageClassifier"]] = Registry("classifier")


class ImageClassifier:
    family: str = ""
    Config: type  # the family's config dataclass; ``create(family, **fields)`` builds one

    def __init__(self, **config):
        self.config = self.Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})
        self.calibration: PlattCalibration | None = None
        self.operating_point: OperatingPoint | None = None
        self.early_stop: EarlyStop | None = None  # measured for these weights, or none: every tile scored
        self.training: dict = {}
        self._fitted = False  # trained weights, from fit() or a saved folder

    @property
    def backend(self) -> str:
        """What computes the scores (the CNN names its runtime and precision); recorded with each
        verdict so that a score can be reproduced on the same path."""
        return "numpy"

    def __sklearn_is_fitted__(self) -> bool:
        return self._fitted

    def __sklearn_tags__(self):
        """What sklearn's validation asks of an estimator (BaseEstimator is not inherited: importing
        sklearn costs seconds that a check must not pay, and our config is a dataclass, not params)."""
        from sklearn.utils import ClassifierTags, Tags, TargetTags

        return Tags(estimator_type="classifier", target_tags=TargetTags(required=True),
                    classifier_tags=ClassifierTags())

    def _check_fitted(self) -> None:
        if not self._fitted:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"this {self.family} classifier is not fitted: call fit() or load trained "
                                 "weights with load_classifier() (untrained weights are random)")

    @property
    def tile(self) -> int:
        return self.config.tile

    @property
    def max_tiles(self) -> int:
        return self.config.max_tiles

    # -- the family's part --
    def fit(self, images: Sequence[np.ndarray], labels: Sequence[int], **options) -> "ImageClassifier":
        """Train on ``images`` (RGB uint8) with ``labels`` (1 = synthetic); ends with ``self._fitted = True``.
        Options every family takes: ``seed``, ``steps``, ``out`` (checkpoints), ``on_log`` (progress)."""
        raise NotImplementedError

    def tile_logits(self, tiles: np.ndarray) -> np.ndarray:
        """(n, tile, tile, 3) uint8 -> (n,) raw logits (higher = more likely synthetic)."""
        raise NotImplementedError

    def shared_features_key(self) -> Hashable | None:
        """Families whose tiles go through a fixed feature extractor name it (with the tile grid)
        here, so that two detectors of the family share one image's features; None: nothing shared."""
        return None

    def tile_features(self, tiles: np.ndarray) -> np.ndarray:
        """(n, tile, tile, 3) uint8 -> (n, F) features, for families with a :meth:`shared_features_key`."""
        raise NotImplementedError

    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _save_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_weights(self, directory: Path) -> None:
        raise NotImplementedError

    # -- shared --
    def score_tiles(self, rgb: np.ndarray, max_tiles: int | None = None) -> tuple[np.ndarray, list[tuple[int, int]]]:
        """Logits and corners of the tiles a check scores (``max_tiles``: another budget, e.g. a heatmap's)."""
        self._check_fitted()
        tiles, corners = cut_tiles(rgb, self.tile, max_tiles or self.max_tiles)
        return (self.tile_logits(tiles) if len(tiles) else np.zeros(0)), corners

    def decision_function(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Mean tile logit per image; NaN for images smaller than one tile."""
        out = []
        for rgb in images:
            logits, _ = self.score_tiles(rgb)
            out.append(float(logits.mean()) if len(logits) else float("nan"))
        return np.array(out)

    def probability(self, logits: np.ndarray) -> np.ndarray:
        if self.calibration is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError(f"{self.family} classifier is not calibrated; call calibrate() on held-out data")
        return self.calibration(logits)

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(n, 2) calibrated probabilities [real, synthetic]."""
        p = self.probability(self.decision_function(images))
        return np.stack([1 - p, p], axis=1)

    def calibrate(self, images: Sequence[np.ndarray], labels: Sequence[int], target_fpr: float = 0.01
                  ) -> "ImageClassifier":
        """Platt scaling and the operating point, from held-out images (never the training set)."""
        logits, labels = self.decision_function(images), np.asarray(labels, int)
        usable = ~np.isnan(logits)
        if len(set(labels[usable].tolist())) != 2:
            raise ValueError("calibration needs held-out real and synthetic images at least one tile in size")
        self.calibration = PlattCalibration.fit(logits[usable], labels[usable])
        probabilities = self.calibration(logits[usable])
        self.operating_point = OperatingPoint.from_reals(probabilities[labels[usable] == 0], target_fpr)
        return self

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_weights(directory)
        meta = {"family": self.family, "config": asdict(self.config),
                "calibration": self.calibration.to_dict() if self.calibration else None,
                "operating_point": self.operating_point.to_dict() if self.operating_point else None,
                **({"early_stop": self.early_stop.to_dict()} if self.early_stop else {}),
                "training": self.training}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        return directory



def load_classifier(directory: str | Path) -> ImageClassifier:
    directory = Path(directory)
    meta_path = directory / META_FILE
    if not meta_path.is_file():
        raise FileNotFoundError(f"{directory}: no {META_FILE} (not a trained classifier folder)")
    meta = json.loads(meta_path.read_text())
    model = CLASSIFIERS.create(meta["family"], **meta["config"])
    model._load_weights(directory)
    model._fitted = True
    if meta.get("calibration"):
        model.calibration = PlattCalibration(**meta["calibration"])
    if meta.get("operating_point"):
        model.operating_point = OperatingPoint(**meta["operating_point"])
    if meta.get("early_stop"):
        model.early_stop = EarlyStop(**meta["early_stop"])
    model.training = meta.get("training", {})
    return model
