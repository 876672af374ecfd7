"""``spectral``: hand-made noise-residual, Fourier and block-DCT features with a linear model.

Cheap (a few ms per tile), explainable (each feature is a named frequency band or statistic) and
the baseline the CNN must beat. Per 128-pixel tile:

- azimuthal log-power spectrum of the high-pass residual (upsampling leaves excess power at high
  radii) and probes at the N/2, N/4, N/8 peaks that transposed or nearest upsampling leaves;
- histogram of the integer residual (sensor noise vs generator smoothness);
- correlation of the colour channels' residuals (demosaicing couples them in camera images);
- mean log-magnitude of each 8x8 block-DCT coefficient (JPEG history, equal across our classes).

The model is linear (standardise + logistic regression), so the mean of tile logits equals the
logit of the mean tile features: the image score and the heatmap agree.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from provenance.shipped import CLASSIFIER_WEIGHTS_FILES

from .base import CLASSIFIERS, ImageClassifier

RADIAL_BINS = 24
HIST_RANGE = 10
PEAKS = ((2, 0), (0, 2), (2, 2), (4, 0), (0, 4), (4, 4), (8, 0), (0, 8))  # N/k offsets


@dataclass(frozen=True)
class SpectralConfig:
    tile: int = 128
    max_tiles: int = 64
    C: float = 1.0  # inverse regularisation of the logistic regression
    augmented_copies: int = 2  # per training image, besides the original (same draws for both classes)


def _grey(tiles: np.ndarray) -> np.ndarray:
    return tiles.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def _residual(planes: np.ndarray) -> np.ndarray:
    """x minus the mean of its 4 neighbours (periodic edges), per (..., H, W) plane."""
    # shifted slices summed in place: np.roll copies the whole array four times (8x slower)
    out = np.empty_like(planes)
    out[..., 1:] = planes[..., :-1]
    out[..., 0] = planes[..., -1]
    out[..., :-1] += planes[..., 1:]
    out[..., -1] += planes[..., 0]
    out[..., 1:, :] += planes[..., :-1, :]
    out[..., 0, :] += planes[..., -1, :]
    out[..., :-1, :] += planes[..., 1:, :]
    out[..., -1, :] += planes[..., 0, :]
    out *= -0.25
    out += planes
    return out


def _radial_index(size: int) -> np.ndarray:
    f = np.fft.fftfreq(size)
    radius = np.sqrt(f[:, None] ** 2 + f[None, :] ** 2) / np.sqrt(0.5)
    return np.minimum((radius * RADIAL_BINS).astype(int), RADIAL_BINS - 1)


@lru_cache(maxsize=4)
def _spectrum_constants(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The Hann window; and for the half spectrum ``rfft2`` returns, each coefficient's radial bin
    and weight, so that weighted bin sums over the half plane equal the sums over the full plane (a
    real tile's power is point-symmetric: columns 1 .. N/2-1 stand for two columns each); the bins'
    sizes in the full plane; the full plane's bin index."""
    window = np.hanning(size).astype(np.float32)
    index = _radial_index(size)
    half = size // 2 + 1
    multiplicity = np.full(half, 2.0)
    multiplicity[0] = 1.0
    if size % 2 == 0:
        multiplicity[-1] = 1.0
    counts = np.bincount(index.ravel(), minlength=RADIAL_BINS).astype(np.float64)
    return (window[:, None] * window[None, :], index[:, :half].ravel(),
            np.broadcast_to(multiplicity, (size, half)).ravel(), counts, index)


@lru_cache(maxsize=4)
def _dct_matrix(size: int = 8) -> np.ndarray:
    """Orthonormal DCT-II: ``D @ block @ D.T`` is scipy's ``dctn(block, norm="ortho")``."""
    k, i = np.arange(size)[:, None], np.arange(size)[None, :]
    matrix = np.sqrt(2 / size) * np.cos(np.pi * (2 * i + 1) * k / (2 * size))
    matrix[0] /= np.sqrt(2)
    return matrix.astype(np.float32)


def tile_features(tiles: np.ndarray) -> np.ndarray:
    """(n, T, T, 3) uint8 -> (n, F) float32 features, every step batched over the tiles."""
    n, size = tiles.shape[0], tiles.shape[1]
    grey = _grey(tiles)
    residual = _residual(grey)
    window, half_index, weight, counts, index = _spectrum_constants(size)
    spectrum = np.fft.rfft2(residual * window)
    power = np.log(spectrum.real ** 2 + spectrum.imag ** 2 + 1e-3)  # (n, T, T/2 + 1)
    # one bincount for all tiles (tile k's bins at k * RADIAL_BINS ...): no BLAS call, whose
    # spinning threads cost more than the work on a busy 2-core machine
    slots = (np.arange(n) * RADIAL_BINS)[:, None] + half_index[None, :]
    radial = np.bincount(slots.ravel(), weights=(power.reshape(n, -1) * weight).ravel(),
                         minlength=n * RADIAL_BINS).reshape(n, RADIAL_BINS) / counts
    peaks = []
    for ky, kx in PEAKS:
        y, x = (size // ky if ky else 0), (size // kx if kx else 0)
        peaks.append(power[:, y, x] - radial[:, index[y, x]])
    clipped = np.clip(np.round(residual), -HIST_RANGE, HIST_RANGE).astype(np.intp) + HIST_RANGE
    bins = 2 * HIST_RANGE + 1
    clipped += (np.arange(n) * bins)[:, None, None]
    hist = np.bincount(clipped.ravel(), minlength=n * bins).reshape(n, bins) / (size * size)
    # channel-first and contiguous: reductions along a strided axis run ~25x slower
    colour = _residual(np.ascontiguousarray(np.moveaxis(tiles, -1, 1), dtype=np.float32))  # (n, 3, T, T)
    flat = colour.reshape(n, 3, -1)
    flat = flat - flat.mean(axis=2, keepdims=True)
    norms = np.sqrt((flat ** 2).sum(axis=2)) + 1e-6
    corr = [(flat[:, a] * flat[:, b]).sum(axis=1) / (norms[:, a] * norms[:, b]) for a, b in ((0, 1), (1, 2), (0, 2))]
    return np.concatenate([radial, np.stack(peaks, 1), np.log(hist + 1e-4), np.stack(corr, 1),
                           _block_dct(grey)], axis=1).astype(np.float32)


def _block_dct(grey: np.ndarray) -> np.ndarray:
    """Mean log-magnitude of each 8x8 block-DCT coefficient, per (n, T, T) plane: (n, 64)."""
    n, size = grey.shape[0], grey.shape[1] - grey.shape[1] % 8
    blocks = (grey[:, :size, :size] - 128).reshape(n, size // 8, 8, size // 8, 8).transpose(0, 1, 3, 2, 4)
    d = _dct_matrix(8)
    # stacked 8x8 products; one large (N*8, 8) product would start OpenBLAS threads, whose
    # spinning costs 10x the work on a busy 2-core machine
    coefficients = d @ blocks @ d.T
    return np.log(np.abs(coefficients) + 1).reshape(n, -1, 64).mean(axis=1)


@CLASSIFIERS.register("spectral")
class SpectralClassifier(ImageClassifier):
    family = "spectral"
    Config = SpectralConfig

    def __init__(self, **config):
        super().__init__(**config)
        self.model = None

    def fit(self, images, labels, seed: int = 0, steps: int | None = None, out=None, on_log=None
            ) -> "SpectralClassifier":
        """Every tile of every training image, and of ``augmented_copies`` augmented versions of it,
        is one sample labelled as its image. ``steps``, ``out`` and ``on_log`` are the iterative
        families' fit options: a closed-form fit has no steps, checkpoints or progress to report."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        from .augment import augment

        if len(set(np.asarray(labels, int).tolist())) != 2:
            raise ValueError("training needs both real and synthetic images")
        features, targets = [], []
        for i, (rgb, label) in enumerate(zip(images, labels)):
            versions = [rgb] + [augment(rgb, np.random.default_rng([seed, i, k]))
                                for k in range(self.config.augmented_copies)]
            for version in versions:
                tiles = self._tiles(version)
                if len(tiles):
                    features.append(tile_features(tiles))
                    targets += [int(label)] * len(tiles)
        if not features:
            raise ValueError(f"no training image is at least {self.tile}px on both sides")
        pipeline = make_pipeline(StandardScaler(), LogisticRegression(C=self.config.C, max_iter=2000,
                                                                       random_state=seed))
        pipeline.fit(np.concatenate(features), np.array(targets))
        self.model = LinearTileModel.from_pipeline(pipeline)
        self._fitted = True
        self.training = {"tiles": len(targets), "images": len(images), "synthetic": int(np.sum(labels)),
                         "seed": seed}
        return self

    def _tiles(self, rgb):
        from .tiles import cut_tiles

        return cut_tiles(rgb, self.tile, self.max_tiles)[0]

    def tile_logits(self, tiles):
        if not len(tiles):
            return np.zeros(0)
        return self.logits_from_features(self.tile_features(tiles))

    def shared_features_key(self):
        return ("spectral-tile-features", self.tile, self.max_tiles)

    def tile_features(self, tiles):
        # chunks of 16 tiles keep the float intermediates (several arrays per tile) to ~20 MB
        return np.concatenate([tile_features(tiles[i:i + 16]) for i in range(0, len(tiles), 16)])

    def logits_from_features(self, features):
        self._check_fitted()
        return self.model.decision_function(features)

    def _save_weights(self, directory: Path) -> None:
        """Plain arrays in safetensors, not a pickle: loading a shipped model must not run code."""
        from safetensors.numpy import save_file

        save_file(asdict(self.model), str(directory / WEIGHTS_FILE))

    def _load_weights(self, directory: Path) -> None:
        from safetensors.numpy import load_file

        self.model = LinearTileModel(**load_file(str(directory / WEIGHTS_FILE)))


WEIGHTS_FILE = CLASSIFIER_WEIGHTS_FILES["spectral"]


@dataclass(frozen=True)
class LinearTileModel:
    """The fitted standardise + logistic-regression pipeline as arrays: the same decision function."""
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray

    @classmethod
    def from_pipeline(cls, pipeline) -> "LinearTileModel":
        scaler, regression = pipeline[0], pipeline[-1]
        return cls(scaler.mean_.astype(np.float64), scaler.scale_.astype(np.float64),
                   regression.coef_[0].astype(np.float64), regression.intercept_.astype(np.float64))

    def decision_function(self, features: np.ndarray) -> np.ndarray:
        return ((features - self.mean) / self.scale) @ self.coef + self.intercept[0]
