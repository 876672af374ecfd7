"""Is an image computer-rendered (a chart, text, a screenshot, a diagram) rather than a photograph
or a generator's picture? The trained classifiers learnt photographs against generator output; on
rendered graphics their scores mean nothing (in the uncertain band on most public charts, diagrams
and screenshots, and past their thresholds on 36 of 200 charts: ``benchmarks/rendered_graphics.py``),
so a classifier abstains on an image this gate calls rendered.

The gate is a logistic regression on cheap statistics of up to 1,024 8x8 blocks sampled on a grid
(about 1 ms at 1080p): how many blocks are exactly flat or nearly so (rendering leaves exact flats,
cameras and generators leave noise), how concentrated the palette is, how grey, how two-toned the
textured blocks are (text, lines), and how often neighbouring pixels repeat exactly. It is trained
by ``provenance train detector rendered-gate`` (:mod:`provenance.rendered_gate`) on graphics
rendered here against the corpus's photos, generated images and captioned photos, and ships as
JSON: loading it runs no code.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

GATE_FILE = "gate.json"
FORMAT = "rendered-graphic-gate/1"
MAX_BLOCKS = 1024
BLOCK = 8
# block range (largest per-channel max - min over the block's pixels): [0], [1, 2], [3, 5], ...
RANGE_EDGES = (0, 1, 3, 6, 11, 21, 41, 81, 161, 256)
TEXTURED_RANGE = 41  # blocks with at least this range are "textured" (edges, text, detail)
FEATURE_NAMES = tuple(f"blocks with range {a}-{b - 1}" for a, b in zip(RANGE_EDGES[:-1], RANGE_EDGES[1:])) + (
    "palette share of the commonest colour", "palette share of the 4 commonest", "palette share of the 16 commonest",
    "distinct colours (of 4,096 at 4 bits)", "grey pixels", "two-tone pixels in textured blocks",
    "horizontal neighbours exactly equal", "textured blocks")


def sampled_planes(rgb: np.ndarray) -> np.ndarray:
    """Up to about ``MAX_BLOCKS`` 8x8 blocks on an even grid, as (3, n, 8, 8) uint8 channel planes."""
    height, width = rgb.shape[0] // BLOCK, rgb.shape[1] // BLOCK
    step = max(1, int(np.ceil(np.sqrt(height * width / MAX_BLOCKS))))
    grid = rgb[: height * BLOCK, : width * BLOCK].reshape(height, BLOCK, width, BLOCK, 3)[::step][:, :, ::step]
    return np.ascontiguousarray(grid.transpose(4, 0, 2, 1, 3)).reshape(3, -1, BLOCK, BLOCK)


def rendering_features(rgb: np.ndarray) -> np.ndarray:
    """The gate's statistics of an HxWx3 uint8 image (at least 8x8), in ``FEATURE_NAMES`` order."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) < BLOCK:
        raise ValueError(f"expected an HxWx3 image of at least {BLOCK}x{BLOCK} pixels, got shape {rgb.shape}")
    planes = sampled_planes(rgb)
    n = planes.shape[1]
    flat = planes.reshape(3, n, BLOCK * BLOCK)
    ranges = flat.max(axis=2) - flat.min(axis=2)
    block_range = np.maximum(np.maximum(ranges[0], ranges[1]), ranges[2])
    bins = len(RANGE_EDGES) - 1
    histogram = np.bincount(np.searchsorted(RANGE_EDGES, block_range, side="right") - 1, minlength=bins)[:bins] / n
    r, g, b = (plane.astype(np.int32) for plane in planes)
    counts = np.sort(np.bincount((((r >> 4) << 8) | ((g >> 4) << 4) | (b >> 4)).ravel(), minlength=4096))[::-1]
    total = counts.sum()
    grey = np.mean(np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b) < 12)
    textured = block_range >= TEXTURED_RANGE
    two_tone = 0.0
    if textured.any():
        luma = ((r[textured] + g[textured] + b[textured]) / 3.0).reshape(-1, BLOCK * BLOCK)
        low, high = luma.min(axis=1, keepdims=True), luma.max(axis=1, keepdims=True)
        near = 0.12 * np.maximum(high - low, 1)
        two_tone = float(np.mean((luma - low <= near) | (high - luma <= near)))
    packed = (r << 16) | (g << 8) | b
    repeats = np.mean(packed[:, :, 1:] == packed[:, :, :-1])
    return np.concatenate([histogram, [counts[0] / total, counts[:4].sum() / total, counts[:16].sum() / total,
                                       (counts > 0).sum() / 4096, grey, two_tone, repeats, textured.mean()]])


def model_inputs(features: np.ndarray) -> np.ndarray:
    """Features and their logarithms (shares near 0 and near 1 both matter)."""
    features = np.atleast_2d(np.asarray(features, np.float64))
    return np.concatenate([features, np.log(features + 1e-3)], axis=1)


class NotFittedError(ValueError):
    pass


@dataclass
class RenderedGraphicGate:
    """scikit-learn shaped: ``fit(features, is_rendered)``, ``predict_proba(features)``; ``threshold``
    is set by whoever trains it (``provenance.rendered_gate``) and ``record`` says how."""

    threshold: float = 0.5
    C: float = 1.0
    mean: np.ndarray | None = None
    scale: np.ndarray | None = None
    coef: np.ndarray | None = None
    intercept: float = 0.0
    record: dict = field(default_factory=dict)
    source: str = ""  # the folder it was loaded from: classifiers sharing a gate share its score of an image

    def fit(self, features: np.ndarray, is_rendered: np.ndarray) -> "RenderedGraphicGate":
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        x = model_inputs(features)
        scaler = StandardScaler().fit(x)
        regression = LogisticRegression(C=self.C, max_iter=5000).fit(scaler.transform(x), np.asarray(is_rendered, int))
        self.mean, self.scale = scaler.mean_, scaler.scale_
        self.coef, self.intercept = regression.coef_.ravel(), float(regression.intercept_[0])
        return self

    def check_is_fitted(self) -> None:
        if self.coef is None:
            raise NotFittedError("this RenderedGraphicGate is not fitted yet: call fit() or load() first")

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """P(rendered graphic) per row of features."""
        self.check_is_fitted()
        z = (model_inputs(features) - self.mean) / self.scale @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def probability(self, rgb: np.ndarray) -> float:
        return float(self.predict_proba(rendering_features(rgb))[0])

    def save(self, folder: str | Path) -> Path:
        self.check_is_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / GATE_FILE
        path.write_text(json.dumps({
            "format": FORMAT, "features": list(FEATURE_NAMES), "threshold": self.threshold, "C": self.C,
            "mean": self.mean.tolist(), "scale": self.scale.tolist(), "coef": self.coef.tolist(),
            "intercept": self.intercept, "record": self.record}, indent=1) + "\n")
        return path

    @classmethod
    def load(cls, folder: str | Path) -> "RenderedGraphicGate":
        path = Path(folder) / GATE_FILE
        meta = json.loads(path.read_text())
        if meta.get("format") != FORMAT or tuple(meta.get("features", ())) != FEATURE_NAMES:
            raise ValueError(f"{path}: not a {FORMAT} gate with this release's features")
        return cls(threshold=float(meta["threshold"]), C=float(meta["C"]), mean=np.asarray(meta["mean"]),
                   scale=np.asarray(meta["scale"]), coef=np.asarray(meta["coef"]),
                   intercept=float(meta["intercept"]), record=meta.get("record", {}), source=str(path.resolve()))
