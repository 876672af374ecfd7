"""Native-resolution tiling: classifiers never resize an image (resizing erases generator traces
and is the classic shortcut); they score fixed-size tiles and average the tile logits."""
from __future__ import annotations

import numpy as np

# A heatmap is drawn for one image a person looks at: it shows more of the image than the tile
# budget a check spends (the model's max_tiles).
HEATMAP_MAX_TILES = 64


def tile_grid(height: int, width: int, tile: int, max_tiles: int) -> list[tuple[int, int]]:
    """Top-left corners of non-overlapping tiles covering the image's centre, at most ``max_tiles``
    of them, spread evenly when there are more (so cost stays bounded on 4K images)."""
    rows, cols = height // tile, width // tile
    if rows == 0 or cols == 0:
        return []
    y0, x0 = (height - rows * tile) // 2, (width - cols * tile) // 2
    corners = [(y0 + r * tile, x0 + c * tile) for r in range(rows) for c in range(cols)]
    if len(corners) > max_tiles:
        keep = np.linspace(0, len(corners) - 1, max_tiles).round().astype(int)
        corners = [corners[i] for i in keep]
    return corners


def cut_tiles(rgb: np.ndarray, tile: int, max_tiles: int) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """(n, tile, tile, 3) uint8 tiles and their corners."""
    corners = tile_grid(rgb.shape[0], rgb.shape[1], tile, max_tiles)
    if not corners:
        return np.zeros((0, tile, tile, 3), np.uint8), []
    return np.stack([rgb[y:y + tile, x:x + tile] for y, x in corners]), corners


def heatmap(shape: tuple[int, int], corners: list[tuple[int, int]], scores: np.ndarray, tile: int) -> np.ndarray:
    """A (H, W) float map with each tile's score painted over its area (NaN where no tile was scored)."""
    out = np.full(shape, np.nan, dtype=np.float32)
    for (y, x), score in zip(corners, scores):
        out[y:y + tile, x:x + tile] = score
    return out
