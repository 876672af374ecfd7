"""Read the folder layouts public detection benchmarks use, next to our imagefolder metadata.

``0_real`` / ``1_fake`` folders (CNNDetection, UnivFD, NPR, AIGCDetectBenchmark and most that
followed), one pair per generator, possibly nested (``test/progan/car/0_real``)::

    DIR/<generator>[/<category>...]/0_real/*.png
    DIR/<generator>[/<category>...]/1_fake/*.png

The generator of an image is the first folder under DIR on its path (``.`` when the pair sits at
DIR itself). Rows look like ours (``label``, ``generator``, ``perturbation``) so the same report
code strata them; ``source`` names the folder a real image came from.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np

from .layout import METADATA_FILE
from .external import IMAGE_SUFFIXES

CLASS_FOLDERS = {"0_real": "real", "1_fake": "synthetic"}


def is_real_fake_layout(directory: str | Path) -> bool:
    return any(p.is_dir() and p.name.lower() in CLASS_FOLDERS for p in Path(directory).rglob("*"))


def real_fake_rows(directory: str | Path) -> list[dict]:
    directory = Path(directory)
    rows = []
    for folder in sorted(p for p in directory.rglob("*") if p.is_dir() and p.name.lower() in CLASS_FOLDERS):
        relative = folder.parent.relative_to(directory)
        generator = relative.parts[0] if relative.parts else "."
        label = CLASS_FOLDERS[folder.name.lower()]
        for path in sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES):
            rows.append({"path": str(path), "file_name": str(path.relative_to(directory)), "label": label,
                         "generator": generator if label == "synthetic" else "none", "source": str(relative),
                         "perturbation": "none", "split": "test"})
    if not rows:
        raise FileNotFoundError(f"{directory}: no images in 0_real/1_fake folders")
    return rows


def load_any(directory: str | Path, split: str, on_skip: Callable[[str, str], None] | None = None
             ) -> tuple[list[np.ndarray], np.ndarray, list[dict]]:
    """(images, labels, rows) from our imagefolder layout (one split) or a 0_real/1_fake tree (all of it).
    Unreadable files of a public tree are skipped and reported through ``on_skip(path, problem)``."""
    from provenance.imageio import ImageLoadError, load_image
    from .reading import load_split

    directory = Path(directory)
    if (directory / split / METADATA_FILE).is_file() or not is_real_fake_layout(directory):
        return load_split(directory, split)
    images, kept = [], []
    for row in real_fake_rows(directory):
        try:
            images.append(load_image(row["path"]).rgb)
        except ImageLoadError as exc:
            if on_skip:
                on_skip(row["path"], str(exc).splitlines()[0])
            continue
        kept.append(row)
    labels = np.array([int(row["label"] == "synthetic") for row in kept])
    return images, labels, kept
