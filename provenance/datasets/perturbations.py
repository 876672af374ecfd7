"""Perturbations a dataset applies to real and synthetic images alike, timm-style: a registry of
small classes, each drawing its parameters from a seeded RNG and applying them deterministically.

Parameters are drawn once, at planning time, and stored with the image's labels, so every
perturbation is reproducible from ``metadata.jsonl`` alone.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

from provenance.registry import Registry

PERTURBATIONS: Registry["Perturbation"] = Registry("perturbation")


class Perturbation:
    """Subclasses are frozen dataclasses with ``low``/``high``: the range of their main parameter,
    drawn uniformly and recorded under the name ``parameter``."""
    name: str = ""
    parameter: str = ""
    low: float
    high: float

    def draw(self, rng: np.random.Generator) -> dict:
        return {self.parameter: _uniform(rng, self.low, self.high)}

    def apply(self, rgb: np.ndarray, params: dict) -> np.ndarray:
        raise NotImplementedError


def _uniform(rng: np.random.Generator, low: float, high: float, digits: int = 3) -> float:
    return round(float(rng.uniform(low, high)), digits)


def _resized(rgb: np.ndarray, factor: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    size = (max(1, round(w * factor)), max(1, round(h * factor)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BICUBIC))


def jpeg_round_trip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


POSTED_CROP_QUALITY = 90


def posted_crop(rgb: np.ndarray, side: int, rng: np.random.Generator,
                quality: int = POSTED_CROP_QUALITY) -> np.ndarray | None:
    """A ``side`` px square at a random position, re-saved as JPEG: a crop of a photo as it is posted
    online. None when the image is smaller."""
    h, w = rgb.shape[:2]
    if min(h, w) < side:
        return None
    top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
    return jpeg_round_trip(np.ascontiguousarray(rgb[top:top + side, left:left + side]), quality)


@PERTURBATIONS.register("resize")
@dataclass(frozen=True)
class Resize(Perturbation):
    low: float = 0.5
    high: float = 1.5
    name, parameter = "resize", "factor"

    def apply(self, rgb, params):
        return _resized(rgb, params["factor"])


@PERTURBATIONS.register("crop")
@dataclass(frozen=True)
class Crop(Perturbation):
    """Keep a random window of ``keep`` times each side (then no resize: the image gets smaller)."""
    low: float = 0.6
    high: float = 0.95
    name, parameter = "crop", "keep"

    def draw(self, rng):
        return {**super().draw(rng), "x": _uniform(rng, 0, 1), "y": _uniform(rng, 0, 1)}

    def apply(self, rgb, params):
        h, w = rgb.shape[:2]
        ch, cw = max(1, round(h * params["keep"])), max(1, round(w * params["keep"]))
        y, x = round((h - ch) * params["y"]), round((w - cw) * params["x"])
        return np.ascontiguousarray(rgb[y:y + ch, x:x + cw])


@PERTURBATIONS.register("blur")
@dataclass(frozen=True)
class Blur(Perturbation):
    low: float = 0.4
    high: float = 1.5
    name, parameter = "blur", "sigma"

    def apply(self, rgb, params):
        return np.asarray(Image.fromarray(rgb).filter(ImageFilter.GaussianBlur(params["sigma"])))


@PERTURBATIONS.register("noise")
@dataclass(frozen=True)
class Noise(Perturbation):
    """Additive Gaussian noise with ``sigma`` in 8-bit levels."""
    low: float = 2.0
    high: float = 8.0
    name, parameter = "noise", "sigma"

    def draw(self, rng):
        return {**super().draw(rng), "noise_seed": int(rng.integers(2**31))}

    def apply(self, rgb, params):
        noise = np.random.default_rng(params["noise_seed"]).normal(0, params["sigma"], rgb.shape)
        return (rgb.astype(np.float32) + noise).round().clip(0, 255).astype(np.uint8)


@PERTURBATIONS.register("brightness")
@dataclass(frozen=True)
class Brightness(Perturbation):
    low: float = 0.7
    high: float = 1.3
    name, parameter = "brightness", "factor"

    def apply(self, rgb, params):
        return np.asarray(ImageEnhance.Brightness(Image.fromarray(rgb)).enhance(params["factor"]))


@PERTURBATIONS.register("screenshot")
@dataclass(frozen=True)
class Screenshot(Perturbation):
    """What sharing a screenshot does: downscale, then a lossy re-encode."""
    low: float = 0.5
    high: float = 0.8
    quality_low: int = 60
    quality_high: int = 85
    name, parameter = "screenshot", "factor"

    def draw(self, rng):
        return {**super().draw(rng), "quality": int(rng.integers(self.quality_low, self.quality_high + 1))}

    def apply(self, rgb, params):
        return jpeg_round_trip(_resized(rgb, params["factor"]), params["quality"])


def apply_all(rgb: np.ndarray, steps: list[dict]) -> np.ndarray:
    """Apply recorded steps ``[{"name": ..., "params": {...}}, ...]`` in order."""
    for step in steps:
        rgb = PERTURBATIONS.create(step["name"]).apply(rgb, step["params"])
    return np.ascontiguousarray(rgb)
