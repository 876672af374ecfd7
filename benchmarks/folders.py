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


class DecodedImages:
    """Iterate ``(kind, source, rgb)`` over labelled roots ("real" first, then "synthetic"), at most
    ``limit`` images per root (0: all); files that do not decode are counted in ``skipped``."""

    def __init__(self, real: list[Path], synthetic: list[Path], limit: int = 0):
        self.roots = [("real", root) for root in real] + [("synthetic", root) for root in synthetic]
        self.limit = limit
        self.skipped = 0

    def __iter__(self):
        from provenance.imageio import ImageLoadError, load_image

        for kind, root in self.roots:
            for path, source in images_by_source(root)[:self.limit or None]:
                try:
                    rgb = load_image(path).rgb
                except ImageLoadError:
                    self.skipped += 1
                    continue
                yield kind, source, rgb
