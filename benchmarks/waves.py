"""The WAVES benchmark's distortion attacks (An et al., "WAVES: Benchmarking the Robustness of Image
Watermarks", ICML 2024; umd-huang-lab/WAVES ``distortions/distortions.py`` and ``dev/constants.py``
at 458274b), re-implemented on numpy / PIL / OpenCV without torchvision.

Eight single distortions and four combinations. A relative strength ``s`` in [0, 1] maps linearly
onto WAVES's range for each distortion (rotation 0-45 degrees, resized crop to area 1-0.5, erasing
0-25% of the area, brightness and contrast x1-2, Gaussian blur radius 0-20 (an integer, as WAVES
truncates it), Gaussian noise sd 0-0.1 of full scale, JPEG quality 90-10); a combination applies its
distortions in order, all at the same ``s``. Random placements (crop, erased square) come from the
caller's generator, so every scheme under test meets the same edits.

Departures, all for non-square images (WAVES's own images are square): the resized crop keeps the
image's aspect ratio (WAVES's ratio 1 on a square image) and is scaled back to the image's own width
and height, where WAVES on a 16:9 image would cut a square and stretch it. Noise is rounded to uint8
rather than truncated.
"""
from __future__ import annotations

import io
import math
from typing import Callable

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

RANGES = {  # WAVES distortion_strength_paras: value at s = 0, value at s = 1
    "rotation": (0.0, 45.0),
    "resizedcrop": (1.0, 0.5),
    "erasing": (0.0, 0.25),
    "brightness": (1.0, 2.0),
    "contrast": (1.0, 2.0),
    "blurring": (0.0, 20.0),
    "noise": (0.0, 0.1),
    "compression": (90.0, 10.0),
}

SINGLE = {  # WAVES attack names (dev/constants.py ATTACK_NAMES)
    "Dist-Rotation": ("rotation",),
    "Dist-RCrop": ("resizedcrop",),
    "Dist-Erase": ("erasing",),
    "Dist-Bright": ("brightness",),
    "Dist-Contrast": ("contrast",),
    "Dist-Blur": ("blurring",),
    "Dist-Noise": ("noise",),
    "Dist-JPEG": ("compression",),
}
COMBOS = {  # the paper's groups: geometric, photometric, degradation, all
    "Dist-Com-Geo": ("rotation", "resizedcrop", "erasing"),
    "Dist-Com-Photo": ("brightness", "contrast"),
    "Dist-Com-Deg": ("blurring", "noise", "compression"),
    "Dist-Com-All": tuple(RANGES),
}

Attack = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def absolute(kind: str, relative: float) -> float:
    """WAVES's relative_strength_to_absolute: linear in ``relative``, clamped to the range."""
    if not 0.0 <= relative <= 1.0:
        raise ValueError(f"relative strength must be in [0, 1], got {relative}")
    start, end = RANGES[kind]
    value = start + relative * (end - start)
    return min(max(value, min(start, end)), max(start, end))


def _placement(rows: int, cols: int, area: float, aspect: float, rng: np.random.Generator,
               fits) -> tuple[int, int, int, int] | None:
    """torchvision's tries at a box of ``area`` pixels and width/height ``aspect``, placed uniformly
    at random: (top, left, height, width), or None if it does not fit."""
    width, height = int(round(math.sqrt(area * aspect))), int(round(math.sqrt(area / aspect)))
    if not fits(height, width):
        return None
    return int(rng.integers(0, rows - height + 1)), int(rng.integers(0, cols - width + 1)), height, width


def distort(rgb: np.ndarray, kind: str, value: float, rng: np.random.Generator) -> np.ndarray:
    """One WAVES distortion at an absolute strength ``value`` on an RGB uint8 image."""
    rows, cols = rgb.shape[:2]
    image = Image.fromarray(np.ascontiguousarray(rgb))
    if kind == "rotation":  # torchvision F.rotate on PIL: counter-clockwise, nearest, same size, black corners
        return np.asarray(image.rotate(value, resample=Image.NEAREST))
    if kind == "resizedcrop":  # RandomResizedCrop(scale=(v, v), ratio=(1, 1) on square images), resized back
        placed = _placement(rows, cols, value * rows * cols, cols / rows, rng,
                            lambda h, w: 0 < h <= rows and 0 < w <= cols)
        top, left, height, width = placed or (0, 0, rows, cols)
        crop = image.crop((left, top, left + width, top + height))
        return np.asarray(crop.resize((cols, rows), Image.BILINEAR))
    if kind == "erasing":  # RandomErasing(scale=(v, v), ratio=(1, 1), value=0): a black square
        out = rgb.copy()
        placed = _placement(rows, cols, value * rows * cols, 1.0, rng, lambda h, w: 0 < h < rows and 0 < w < cols)
        if placed:
            top, left, height, width = placed
            out[top:top + height, left:left + width] = 0
        return out
    if kind == "brightness":
        return np.asarray(ImageEnhance.Brightness(image).enhance(value))
    if kind == "contrast":
        return np.asarray(ImageEnhance.Contrast(image).enhance(value))
    if kind == "blurring":
        return np.asarray(image.filter(ImageFilter.GaussianBlur(int(value))))
    if kind == "noise":
        noisy = rgb / 255.0 + rng.standard_normal(rgb.shape) * value
        return np.round(np.clip(noisy, 0.0, 1.0) * 255).astype(np.uint8)
    if kind == "compression":
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(value))
        return np.asarray(Image.open(buffer).convert("RGB"))
    raise ValueError(f"unknown WAVES distortion {kind!r}; have {', '.join(RANGES)}")


def _label(kind: str, value: float) -> str:
    return {"rotation": f"{value:g} deg", "resizedcrop": f"area {value:.2f}", "erasing": f"{value:.0%} erased",
            "brightness": f"x{value:.2f}", "contrast": f"x{value:.2f}", "blurring": f"radius {int(value)}",
            "noise": f"sd {value:.3f}", "compression": f"q{int(value)}"}[kind]


def attack(kinds: tuple[str, ...], relative: float) -> Attack:
    values = [(kind, absolute(kind, relative)) for kind in kinds]

    def apply(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        for kind, value in values:
            rgb = np.ascontiguousarray(distort(rgb, kind, value, rng))
        return rgb

    return apply


def attacks(strengths: list[float]) -> dict[str, Attack]:
    """Every WAVES distortion (8 single, 4 combined) at each relative strength, labelled with WAVES's
    name, ``s`` and the absolute parameters."""
    out = {}
    for relative in strengths:
        for name, kinds in {**SINGLE, **COMBOS}.items():
            detail = ", ".join(_label(kind, absolute(kind, relative)) for kind in kinds)
            out[f"{name} s={relative:g} ({detail})"] = attack(kinds, relative)
    return out
