"""Vectorised decoders for imwatermark's ``dwtDct`` and ``dwtDctSvd``, bit-identical to the library.

imwatermark decodes with a Python loop over 4x4 blocks of the Haar LL band of the U channel
(32,400 blocks at 1080p). Here the per-block votes are computed once per image and colour path
(:func:`block_votes`), and any payload length is then a cheap aggregation
(:meth:`BlockVotes.bits`): bit ``i`` is the mean vote of the blocks whose row-major index is
``i (mod L)``, and ``bit = mean * 255 > 127`` exactly as imwatermark computes it.

Colour paths: ``float_path`` converts the pixels to float32 before ``cv2.cvtColor`` as the SDXL
reference embedders do (OpenCV then centres U at 0.5 instead of 128, so other coefficients are
read); ``swap_rgb`` reverses the channel order first (old diffusers embedded RGB as if BGR).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import pywt

from .size import size_problem

METHODS = ("dwtDct", "dwtDctSvd")
SCALE = 36  # imwatermark's quantisation step for the U channel
BLOCK = 4  # block side in the LL band (8x8 pixels)


@dataclass(frozen=True)
class BlockVotes:
    """One vote (0/1) per 4x4 LL block, in imwatermark's row-major block order."""

    method: str
    votes: np.ndarray  # uint8, shape (n_blocks,)
    float_path: bool = False
    swap_rgb: bool = False

    @property
    def n_blocks(self) -> int:
        return int(self.votes.size)

    def counts(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """(ones, blocks) per bit position for a payload of ``length`` bits."""
        if length <= 0:
            raise ValueError("payload length must be positive")
        slot = np.arange(self.votes.size) % length
        ones = np.bincount(slot, weights=self.votes, minlength=length)
        blocks = np.bincount(slot, minlength=length)
        return ones, blocks

    def fractions(self, length: int) -> np.ndarray:
        """Per-bit vote fractions (soft bits); NaN where a bit has no block."""
        ones, blocks = self.counts(length)
        with np.errstate(invalid="ignore", divide="ignore"):
            return ones / blocks

    def bits(self, length: int) -> np.ndarray:
        # Same float arithmetic as imwatermark: exact integer sum / count, then * 255 > 127.
        # A bit with no block is NaN there, which compares False: kept for identity.
        with np.errstate(invalid="ignore"):
            return self.fractions(length) * 255 > 127


def _u_channel(bgr: np.ndarray, float_path: bool, swap_rgb: bool) -> np.ndarray:
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {bgr.shape}")
    rows, cols = bgr.shape[:2]
    problem = size_problem(cols, rows)
    if problem:
        raise ValueError(problem)
    image = bgr[:, :, ::-1] if swap_rgb else bgr
    image = np.ascontiguousarray(image, dtype=np.float32 if float_path else image.dtype)
    yuv = cv2.cvtColor(image, cv2.COLOR_BGR2YUV)
    return yuv[: rows // 4 * 4, : cols // 4 * 4, 1]


def _blocks(ll: np.ndarray) -> np.ndarray:
    """(n_blocks, 16) view of the LL band's 4x4 blocks in row-major block order."""
    br, bc = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    tiles = ll[: br * BLOCK, : bc * BLOCK].reshape(br, BLOCK, bc, BLOCK).swapaxes(1, 2)
    return tiles.reshape(br * bc, BLOCK * BLOCK)


def _votes_max_coefficient(blocks: np.ndarray) -> np.ndarray:
    # imwatermark: pos = argmax(|flat[1:]|) + 1 (first maximum on ties, as np.argmax); vote = |v| % 36 > 18.
    pos = np.argmax(np.abs(blocks[:, 1:]), axis=1) + 1
    value = np.abs(blocks[np.arange(blocks.shape[0]), pos])
    return (value % SCALE > 0.5 * SCALE).astype(np.uint8)


def _votes_top_singular_value(blocks: np.ndarray) -> np.ndarray:
    # imwatermark takes s[0] of svd(cv2.dct(block)). The orthonormal DCT leaves singular values
    # unchanged, so s0 = sqrt(largest eigenvalue of B^T B) of the raw block, batched, equals it up
    # to rounding; the few blocks whose s0 lies within rounding of a decision edge (0 or 18 mod 36:
    # flat regions land exactly on them) are recomputed the library's way: bit-identical.
    mats = blocks.reshape(-1, BLOCK, BLOCK).astype(np.float64)
    gram = np.matmul(mats.transpose(0, 2, 1), mats)
    s0 = np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0))
    residue = s0 % SCALE
    votes = (residue > 0.5 * SCALE).astype(np.uint8)
    tolerance = 256 * np.finfo(blocks.dtype).eps * np.maximum(s0, 1.0)
    edge = np.minimum(np.minimum(residue, SCALE - residue), np.abs(residue - 0.5 * SCALE))
    for k in np.flatnonzero(edge <= tolerance):
        exact = np.linalg.svd(cv2.dct(np.ascontiguousarray(blocks[k].reshape(BLOCK, BLOCK))))[1][0]
        votes[k] = int((exact % SCALE) > SCALE * 0.5)
    return votes


_VOTERS = {"dwtDct": _votes_max_coefficient, "dwtDctSvd": _votes_top_singular_value}


def block_votes(bgr: np.ndarray, method: str, *, float_path: bool = False, swap_rgb: bool = False) -> BlockVotes:
    """Per-block votes of ``method`` on a BGR image (the expensive part; do it once per path)."""
    try:
        voter = _VOTERS[method]
    except KeyError:
        raise ValueError(f"no fast decoder for {method!r}; have {', '.join(METHODS)}") from None
    u = _u_channel(bgr, float_path, swap_rgb)
    ll, _ = pywt.dwt2(u, "haar")  # the same call as imwatermark, hence the same LL values
    return BlockVotes(method, voter(_blocks(ll)), float_path, swap_rgb)


def decode(bgr: np.ndarray, length: int, method: str, **path) -> np.ndarray:
    """Bits as ``imwatermark.WatermarkDecoder('bits', length).decode(bgr, method)`` returns them."""
    return block_votes(bgr, method, **path).bits(length)
