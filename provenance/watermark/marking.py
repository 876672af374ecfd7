"""Put our keyed mark into pixels: the one embedding path used by the CLI, the demo and generators."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import payload
from .schemes import SCHEMES
from .size import size_problem

DEFAULT_SCHEME = "learned"  # survives crops, rotation, resizing, JPEG 50 and screenshots (README robustness tables)


class MarkingError(ValueError):
    """The image cannot carry the requested mark; one line naming the problem."""


@dataclass(frozen=True)
class Mark:
    scheme: str = DEFAULT_SCHEME
    key: str = payload.DEFAULT_KEY
    watermark_id: payload.WatermarkId | None = None
    strength: float | None = None  # the learned scheme's residual scale; None: its default (the classical schemes have none)


def embed_mark(rgb: np.ndarray, mark: Mark = Mark()) -> np.ndarray:
    """Return a marked copy of ``rgb`` (H x W x 3 uint8)."""
    if mark.strength is not None and mark.scheme != "learned":
        raise MarkingError(f"{mark.scheme} has no strength setting (only the learned scheme does)")
    scheme = SCHEMES.create(mark.scheme, **({"strength": mark.strength} if mark.strength is not None else {}))
    height, width = rgb.shape[:2]
    if height * width < scheme.min_pixels:
        raise MarkingError(size_problem(width, height))
    layout = payload.layout_for(scheme.capacity)
    if mark.watermark_id is not None and not layout.has_id:
        raise MarkingError(f"{mark.scheme} carries {layout.length} bits: no room for an ID")
    bits = payload.encode_payload(mark.key, mark.scheme, scheme.capacity, mark.watermark_id)
    marked_bgr = scheme.embed(np.ascontiguousarray(rgb[:, :, ::-1]), bits)
    return np.ascontiguousarray(marked_bgr[:, :, ::-1])


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)
