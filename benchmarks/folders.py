"""Labelled image folders as the campaigns read them: a source is the first folder level under a root."""
from __future__ import annotations

from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


def images_by_source(root: Path) -> list[tuple[Path, str]]:
    """Every image under ``root``, sorted, with its source (``root/imagenet/... -> imagenet``)."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            parts = path.relative_to(root).parts
            found.append((path, parts[0] if len(parts) > 1 else root.name))
    return found
