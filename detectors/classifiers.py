"""``cnn`` and ``spectral`` detectors: the trained passive classifiers as evidence.

A classifier is never decisive. Above its operating point (<= 1% false positives on held-out real
photos) it is MODERATE evidence, so alone it yields at most "likely synthetic"; in the uncertain
band just below, it abstains (UNCERTAIN); below that it reports the score but claims nothing,
because a low score is not proof of authenticity. Images smaller than one tile are skipped, and so
are images the rendered-graphic gate (``detectors/learned/rendered.py``) calls computer-rendered.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Sequence

import numpy as np

from provenance.imageio import LoadedImage
from provenance.shipped import CLASSIFIER_META_FILE, CLASSIFIERS_DIR, RENDERED_GATE_DIR

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength

if TYPE_CHECKING:
    from .learned.rendered import RenderedGraphicGate

# What a classifier was trained on, as "+"-joined parts; weights that do not say were trained on our
# own generators only (the toy-scale cnn and spectral). Fusion reads it: a classifier's confident
# "not synthetic" says nothing about generators it never saw (detectors/fusion.py).
OWN_GENERATORS_SCOPE = "our-generators"


class ClassifierDetector(Detector):
    family = "classifier"
    relative_cost = 10
    default_weights: ClassVar[str]

    def __init__(self, weights: str | Path | None = None, rendered_gate: bool | str | Path = True):
        self.weights = Path(weights) if weights else CLASSIFIERS_DIR / self.default_weights
        self._model = None
        # True: the shipped rendered-graphic gate (when shipped); False: none; a folder: that gate
        self.rendered_gate = rendered_gate
        self._gate: RenderedGraphicGate | None | bool = None  # False: looked, there is none

    @property
    def gate(self) -> RenderedGraphicGate | None:
        """The gate that makes this classifier abstain on computer-rendered images (loaded once)."""
        if self._gate is None:
            from .learned.rendered import GATE_FILE, RenderedGraphicGate

            folder = RENDERED_GATE_DIR if self.rendered_gate is True else self.rendered_gate
            shipped_but_absent = self.rendered_gate is True and not (RENDERED_GATE_DIR / GATE_FILE).is_file()
            self._gate = False if folder is False or shipped_but_absent else RenderedGraphicGate.load(Path(folder))
        return self._gate or None

    @property
    def model(self):
        if self._model is None:
            from .learned import load_classifier

            self._model = load_classifier(self.weights)
        return self._model

    def detect(self, image: LoadedImage) -> Evidence:
        skipped = self._skip_reason(image)
        return skipped if skipped is not None else self.from_logits(*self._tile_logits(image))

    def _tile_logits(self, image: LoadedImage) -> tuple[np.ndarray, int]:
        """The image's tile logits and how many of its tiles an early stop left unscored."""
        model = self.model
        key = model.shared_features_key()
        from detectors.learned.tiles import cut_tiles

        if key is None:
            return self._score_staged([cut_tiles(image.rgb, model.tile, model.max_tiles)[0]])[0]
        # another classifier of the family may already have computed them for this image
        features = image.derived(key, lambda: model.tile_features(cut_tiles(image.rgb, model.tile, model.max_tiles)[0]))
        return model.logits_from_features(features), 0

    def _score_staged(self, tile_sets: list[np.ndarray]) -> list[tuple[np.ndarray, int]]:
        """Logits of each image's tiles, in two model calls at most for the whole list: the first
        half of every full budget (and every smaller image whole), then the rest of those whose first
        half does not stop early (:class:`~detectors.learned.calibration.EarlyStop`)."""
        from detectors.learned.calibration import EarlyStop

        model = self.model
        stop, point = model.early_stop, model.operating_point
        staged = [stop is not None and point is not None and model.calibration is not None
                  and len(tiles) == model.max_tiles >= 2 for tiles in tile_sets]
        first_index = [EarlyStop.first_half(len(t)) if s else np.arange(len(t)) for t, s in zip(tile_sets, staged)]
        first = self._score_together([t[i] for t, i in zip(tile_sets, first_index)])
        more = [k for k, s in enumerate(staged) if s and not stop.stops(first[k], model.calibration, point.band_low)]
        rest_index = {k: np.setdiff1d(np.arange(len(tile_sets[k])), first_index[k]) for k in more}
        rest = dict(zip(more, self._score_together([tile_sets[k][rest_index[k]] for k in more])))
        out = []
        for k, tiles in enumerate(tile_sets):
            if k in rest:  # the whole budget, in grid order
                logits = np.empty(len(tiles), first[k].dtype)
                logits[first_index[k]], logits[rest_index[k]] = first[k], rest[k]
                out.append((logits, 0))
            else:
                out.append((first[k], len(tiles) - len(first[k])))
        return out

    def _score_together(self, tile_sets: list[np.ndarray]) -> list[np.ndarray]:
        if not tile_sets:
            return []
        logits = np.asarray(self.model.tile_logits(np.concatenate(tile_sets))).ravel()
        return np.split(logits, np.cumsum([len(t) for t in tile_sets])[:-1])

    def detect_batch(self, images: Sequence[LoadedImage]) -> list[Evidence]:
        """Every image's tiles scored in one model call (two with early stops; chunked by the model):
        fewer, larger ONNX runs. If the batched call fails, each image is scored alone so one bad file
        stays one error. Families that share features between detectors score image by image, through
        the share."""
        if len(images) < 2 or not (self.weights / CLASSIFIER_META_FILE).is_file() \
                or self.model.shared_features_key() is not None:
            return super().detect_batch(images)
        from detectors.learned.tiles import cut_tiles

        try:
            model = self.model
            out: list[Evidence | None] = [self._skip_reason(image) for image in images]
            cut = {i: cut_tiles(image.rgb, model.tile, model.max_tiles)[0]
                   for i, image in enumerate(images) if out[i] is None}
            scored = self._score_staged(list(cut.values()))
        except Exception:  # noqa: BLE001 - retried image by image, where errors become evidence
            return super().detect_batch(images)
        for i, (logits, unscored) in zip(cut, scored):
            out[i] = self.from_logits(logits, unscored)
        return out  # type: ignore[return-value]

    def _skip_reason(self, image: LoadedImage) -> Evidence | None:
        if not (self.weights / CLASSIFIER_META_FILE).is_file():
            return self.evidence(Signal.SKIPPED, Strength.NONE, f"{self.name}: no trained weights",
                                 error=f"{self.weights}: no trained classifier (run `provenance train detector`)")
        model = self.model
        if min(image.height, image.width) < model.tile:
            return self.evidence(Signal.SKIPPED, Strength.NONE,
                                 f"{self.name}: image smaller than one {model.tile}px tile; the classifier abstains",
                                 error=f"image is {image.width}x{image.height}, under {model.tile}px")
        gate = self.gate
        if gate is not None:
            # computed once per image and gate, for every classifier that asks
            probability = image.derived(("rendered-graphic", gate.source), lambda: gate.probability(image.rgb))
            if probability >= gate.threshold:
                why = (f"it looks computer-rendered (a chart, text, screenshot or diagram: P(rendered) = "
                       f"{probability:.2f}), unlike the photographs and generator output the classifiers learnt")
                return self.evidence(Signal.SKIPPED, Strength.NONE, f"{self.name}: {why}; the classifier abstains",
                                     error=why, details={"rendered_graphic_probability": probability,
                                                         "rendered_gate_threshold": gate.threshold})
        return None

    def score(self, rgb: np.ndarray) -> Evidence:
        return self.from_logits(self.model.score_tiles(rgb)[0])

    def from_logits(self, logits: np.ndarray, unscored: int = 0) -> Evidence:
        """The evidence of one image's tile logits (their mean, calibrated); ``unscored``: tiles of its
        budget an early stop left out."""
        model = self.model
        probability = float(model.probability(np.array([logits.mean()]))[0])
        return self.judge(probability, {"tiles": len(logits), "tile_logit_mean": float(logits.mean()),
                                        "tile_logit_min": float(logits.min()), "tile_logit_max": float(logits.max()),
                                        **({"tiles_unscored": unscored} if unscored else {})})

    def judge(self, probability: float, details: dict | None = None) -> Evidence:
        """The evidence a calibrated probability amounts to at this classifier's operating point."""
        point = self.model.operating_point
        details = {**(details or {}), "threshold": point.threshold, "band_low": point.band_low,
                   "target_fpr": point.target_fpr, "weights": str(self.weights.name), "backend": self.model.backend,
                   "scope": self.model.training.get("scope", OWN_GENERATORS_SCOPE)}
        tiles = f" over {details['tiles']} tiles" if "tiles" in details else ""
        if details.get("tiles_unscored"):
            tiles = (f" over {details['tiles']} of {details['tiles'] + details['tiles_unscored']} tiles (stopped early: "
                     "the other half has never lifted a corpus image this far below the uncertain band into it)")
        where = (f"{self.name} classifier: calibrated P(synthetic) = {_probability_text(probability)}{tiles} "
                 f"(threshold {_probability_text(point.threshold)}, set for <= {point.target_fpr:.0%} false positives on held-out real photos)")
        if probability >= point.threshold:
            return self.evidence(Signal.SYNTHETIC, Strength.MODERATE,
                                 where + "; a statistical guess, not proof", probability=probability, details=details)
        if probability >= point.band_low:
            return self.evidence(Signal.UNCERTAIN, Strength.NONE, where + "; in the uncertain band, so it abstains",
                                 probability=probability, details=details)
        return self.evidence(Signal.NONE, Strength.NONE, where + "; below the uncertain band",
                             probability=probability, details=details)


def _probability_text(p: float) -> str:
    """Two decimals, or four where two would round up to 1.00 (a threshold of 0.9969 is not 1)."""
    text = f"{p:.2f}"
    return f"{p:.4f}" if text == "1.00" and p < 1.0 else text


@register("cnn")
class CNNDetector(ClassifierDetector):
    relative_cost = 40  # 32 tiles, int8
    name = "cnn"
    default_weights = "cnn"


@register("spectral")
class SpectralDetector(ClassifierDetector):
    name = "spectral"
    default_weights = "spectral"


@register("spectral-corpus")
class CorpusSpectralDetector(ClassifierDetector):
    """The spectral family trained on the public corpus of real-world generators and our own output
    (provenance/corpus_detector.py; its model card has the per-family tables)."""
    name = "spectral-corpus"
    default_weights = "spectral-corpus"


@register("cnn-corpus")
class CorpusCNNDetector(CNNDetector):
    """The cnn family trained on the public corpus of real-world generators and our own output
    (provenance/corpus_cnn.py; its model card has the per-family and held-out-family tables)."""
    name = "cnn-corpus"
    default_weights = "cnn-corpus"


@register("surprise")
class SurpriseDetector(ClassifierDetector):
    """How much an image's pixels surprise a model of real photos (ZED-like; detectors/learned/surprise.py).
    No weights ship (the README says why): train with `provenance train detector surprise` and pass
    the folder to `check --classifier`."""
    name = "surprise"
    default_weights = "surprise"
