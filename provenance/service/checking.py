"""The work a request hands to a worker thread: uploads to sources, the check, per-tile scores."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Callable, Sequence

from detectors.learned.tiles import HEATMAP_MAX_TILES
from provenance.check import Checker, NamedBytes, Source
from provenance.imageio import ImageLoadError, load_image

from .uploads import Upload


def sources_from_uploads(uploads: Sequence[Upload]) -> list[Source]:
    """The one place uploads become :class:`Checker` sources: named bytes, never paths."""
    return [NamedBytes(upload.name, upload.data) for upload in uploads]


def check_uploads(checker: Checker, uploads: Sequence[Upload], heatmap: bool = False) -> list[dict]:
    """The records `check --json` prints, one per upload, in order; with ``heatmap`` each decodable
    image also gets a classifier's per-tile scores."""
    records = [verdict.to_dict() for verdict in checker.check(sources_from_uploads(uploads))]
    if heatmap:
        for record, upload in zip(records, uploads):
            record["heatmap"] = None if record["label"] == "error" else tile_scores(checker, upload.data)
    return records


def heatmap_classifier(checker: Checker):
    """The classifier whose tiles a heatmap shows: the CNN when it runs, else another with weights."""
    from detectors.classifiers import ClassifierDetector

    usable = [d for d in checker.detectors
              if isinstance(d, ClassifierDetector) and (d.weights / "classifier.json").is_file()]
    return min(usable, key=lambda d: d.name != "cnn", default=None)


def tile_scores(checker: Checker, data: bytes) -> dict:
    """Calibrated P(synthetic) of each tile the classifier scored, with its top-left corner."""
    detector = heatmap_classifier(checker)
    if detector is None:
        return {"detector": None, "tiles": [], "note": "no trained classifier is running"}
    model = detector.model
    try:
        rgb = load_image(data, checker.config.limits).rgb
    except ImageLoadError as exc:
        return {"detector": detector.name, "tiles": [], "note": str(exc)}
    logits, corners = model.score_tiles(rgb, HEATMAP_MAX_TILES)
    probabilities = model.probability(logits) if len(logits) else []
    return {
        "detector": detector.name,
        "tile": model.tile,
        "width": int(rgb.shape[1]),
        "height": int(rgb.shape[0]),
        "threshold": model.operating_point.threshold if model.operating_point else None,
        "tiles": [{"x": int(x), "y": int(y), "p": round(float(p), 4)} for (y, x), p in zip(corners, probabilities)],
        "note": None if corners else f"image is under one {model.tile}px tile; the classifier abstains",
    }


def describe_detectors(checker: Checker) -> list[dict]:
    """Names, versions, weights hashes and operating points of the detectors this service runs."""
    out = []
    for detector in checker.detectors:
        info = {"name": detector.name, "family": detector.family, "version": package_version("provenance")}
        info.update(_DESCRIBERS.get(detector.family, _nothing_more)(detector))
        out.append(info)
    return out


def _classifier(detector) -> dict:
    weights = Path(detector.weights)
    if not (weights / "classifier.json").is_file():
        return {"weights": None, "note": "no trained weights; the classifier skips every image"}
    point = detector.model.operating_point
    return {
        "weights": weights.name,
        "weights_sha256": {p.name: _sha256(p) for p in sorted(weights.iterdir())
                           if p.is_file() and p.suffix in (".json", ".safetensors", ".onnx")},
        "operating_point": None if point is None else {
            "threshold": point.threshold, "band_low": point.band_low, "target_fpr": point.target_fpr,
            "measured_fpr": getattr(point, "measured_fpr", None)},
    }


def _watermark(detector) -> dict:
    import provenance.watermark
    from provenance.watermark import calibration

    fitted = Path(provenance.watermark.__file__).with_name("calibration.json")
    info = {"decision_level": calibration.TARGET_FPR,
            "calibration_sha256": _sha256(fitted) if fitted.is_file() else None}
    if hasattr(detector, "schemes"):
        from provenance.watermark import decision

        info.update(schemes=[s.name for s in detector.schemes],
                    keys=[decision.key_label(k) for k in detector.keys])  # labels, never the keys
    return info


def _c2pa(detector) -> dict:
    anchors = getattr(detector.reader, "anchors", [])
    return {"version": f"{package_version('provenance')}; c2pa-python {package_version('c2pa-python')}",
            "trust_anchors": len(anchors)}


def _nothing_more(detector) -> dict:
    return {}


_DESCRIBERS: dict[str, Callable[[object], dict]] = {"classifier": _classifier, "watermark": _watermark, "c2pa": _c2pa}


@lru_cache(maxsize=None)
def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


@lru_cache(maxsize=None)
def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
