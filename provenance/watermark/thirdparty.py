"""Public watermarks embedded by Stable Diffusion reference scripts (all imwatermark ``dwtDct``).

These words are fixed and published, so anyone can embed or strip them: a hit is evidence that an
SD reference script (or someone imitating one) touched the image, never proof.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _bytes_bits(data: bytes) -> np.ndarray:
    return np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(bool)


@dataclass(frozen=True)
class KnownMark:
    name: str
    label: str
    bits: np.ndarray
    paths: tuple[str, ...]  # colour paths on which the reference embedders write it

    @property
    def length(self) -> int:
        return int(self.bits.size)


# Path names: "uint8" = imwatermark on uint8 BGR; "float32" = pixels as float32 0-255 before
# cv2.cvtColor (generative-models / diffusers SDXL); "float32-rgb" = the same without the RGB->BGR
# flip (older diffusers).
PATH_OPTIONS = {
    "uint8": dict(float_path=False, swap_rgb=False),
    "float32": dict(float_path=True, swap_rgb=False),
    "float32-rgb": dict(float_path=True, swap_rgb=True),
}

KNOWN_MARKS = (
    # CompVis/stable-diffusion scripts/txt2img.py: set_watermark('bytes', "StableDiffusionV1".encode())
    KnownMark("sd1", "Stable Diffusion 1.x", _bytes_bits(b"StableDiffusionV1"), ("uint8",)),
    # Stability-AI/stablediffusion scripts/txt2img.py: "SDV2"
    KnownMark("sd2", "Stable Diffusion 2.x", _bytes_bits(b"SDV2"), ("uint8",)),
    # generative-models sgm/inference WatermarkEmbedder: 0xB3EC907BB19E as 48 bits
    KnownMark(
        "sdxl",
        "Stable Diffusion XL",
        np.array([int(b) for b in bin(0xB3EC907BB19E)[2:].zfill(48)], dtype=bool),
        ("uint8", "float32", "float32-rgb"),
    ),
)


def tests() -> list[tuple[KnownMark, str]]:
    """Every (mark, path) pair the SD detector tests; the Bonferroni factor is its length."""
    return [(mark, path) for mark in KNOWN_MARKS for path in mark.paths]


def test_name(mark: KnownMark, path: str) -> str:
    return f"{mark.name}/{path}"


def path_votes(bgr: "np.ndarray | fast.Transforms") -> dict:
    """``dwtDct`` block votes of a BGR uint8 image (or its shared transforms) on every colour path the reference embedders use."""
    from .fast import block_votes

    return {path: block_votes(bgr, "dwtDct", **options) for path, options in PATH_OPTIONS.items()}


def match_counts(votes: dict) -> dict[str, int]:
    """Bits of each known mark matched on its paths, by test name: the one SD-mark score that the
    detector turns into p-values and the calibration run measures on unmarked photos."""
    return {test_name(mark, path): int(np.count_nonzero(votes[path].bits(mark.length) == mark.bits))
            for mark, path in tests()}
