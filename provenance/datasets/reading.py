"""Read a built dataset back: rows of one split, their images and binary labels (1 = synthetic)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from provenance.imageio import load_image
from .layout import image_path, metadata_path


def read_rows(directory: str | Path, split: str) -> list[dict]:
    metadata = metadata_path(Path(directory), split)
    if not metadata.is_file():
        raise FileNotFoundError(f"{metadata}: missing (is {directory} a dataset built by `provenance dataset build`?)")
    return [json.loads(line) for line in metadata.read_text().splitlines() if line.strip()]


def load_split(directory: str | Path, split: str, generators: tuple[str, ...] | None = None
               ) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    """(images as RGB uint8, labels, rows) for one split, through the same safe loader as ``check``.
    ``generators`` keeps only those generators' synthetic images (and every real one)."""
    rows = read_rows(directory, split)
    if generators is not None:
        rows = [row for row in rows if row["label"] == "real" or row["generator"] in generators]
    images = [load_image(image_path(Path(directory), row)).rgb for row in rows]
    labels = np.array([int(row["label"] == "synthetic") for row in rows])
    return images, labels, rows
