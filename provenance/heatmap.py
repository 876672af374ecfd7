"""Where a trained classifier sees generator traces: per-tile calibrated probabilities painted over
a dimmed copy of the image (red = the tile alone would score as likely synthetic)."""
from __future__ import annotations

import numpy as np
from PIL import Image

from detectors.learned.tiles import HEATMAP_MAX_TILES, heatmap


def render_heatmap(rgb: np.ndarray, model) -> Image.Image:
    logits, corners = model.score_tiles(rgb, HEATMAP_MAX_TILES)
    if not corners:
        raise ValueError(f"image is {rgb.shape[1]}x{rgb.shape[0]}, under one {model.tile}px tile")
    probabilities = model.probability(logits)
    scores = heatmap(rgb.shape[:2], corners, probabilities, model.tile)
    base = rgb.astype(np.float32) * 0.45
    covered = ~np.isnan(scores)
    p = np.nan_to_num(scores)[..., None]
    colour = np.array([255, 40, 40], np.float32) * p + np.array([40, 120, 255], np.float32) * (1 - p)
    out = np.where(covered[..., None], base * 0.6 + colour * 0.4, base)
    # outline the tiles above the operating point
    threshold = model.operating_point.threshold if model.operating_point else 0.5
    for (y, x), prob in zip(corners, probabilities):
        if prob >= threshold:
            t = model.tile
            out[y:y + t, [x, x + t - 1]] = (255, 255, 0)
            out[[y, y + t - 1], x:x + t] = (255, 255, 0)
    return Image.fromarray(out.clip(0, 255).astype(np.uint8))
