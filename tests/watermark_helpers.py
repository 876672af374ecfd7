"""Fixtures shared by the watermark tests: photos from scikit-image, made into files in memory."""
from __future__ import annotations

import numpy as np

from provenance.generators.photos import sample_photo
from provenance.imageio import LoadedImage, encode_image, load_image


def photo_bgr(name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    rgb = sample_photo(name)
    if size is not None:
        rgb = rgb[: size[0], : size[1]]
    return np.ascontiguousarray(rgb[:, :, ::-1])


def as_file(bgr: np.ndarray, fmt: str = "PNG", quality: int = 95, name: str = "test.png") -> LoadedImage:
    """Round-trip through an encoded file, as a real check would read it."""
    return load_image(encode_image(np.ascontiguousarray(bgr[:, :, ::-1]), fmt, quality=quality), name=name)
