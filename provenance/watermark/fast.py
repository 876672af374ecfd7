"""Vectorised decoders for imwatermark's ``dwtDct`` and ``dwtDctSvd``, bit-identical to the library.

imwatermark decodes with a Python loop over 4x4 blocks of the Haar LL band of the U channel
(32,400 blocks at 1080p). Here the per-block votes are computed once per image and colour path
(:func:`block_votes`), and any payload length is then a cheap aggregation
(:meth:`BlockVotes.bits`): bit ``i`` is the mean vote of the blocks whose row-major index is
``i (mod L)``, and ``bit = mean * 255 > 127`` exactly as imwatermark computes it.

One shared transform pass: :class:`Transforms` holds a decoded image's U plane, Haar LL band and
4x4 blocks per colour path, and the votes per (method, path), each computed on first use; every
dwtDct-family decoder (our keyed mark and the Stable Diffusion marks) reads them from the same
object (:func:`of_image` keeps one per loaded image), so the colour conversion, DWT and dwtDct
votes of the uint8 path are computed once per image, not once per detector.

Colour paths: ``float_path`` converts the pixels to float32 before ``cv2.cvtColor`` as the SDXL
reference embedders do (OpenCV then centres U at 0.5 instead of 128, so other coefficients are
read); ``swap_rgb`` reverses the channel order first (old diffusers embedded RGB as if BGR).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..once import ComputedOnce
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


def _check_shape(bgr: np.ndarray) -> None:
    if bgr.ndim != 3 or bgr.shape[2] != 3:
        raise ValueError(f"expected an HxWx3 image, got shape {bgr.shape}")
    rows, cols = bgr.shape[:2]
    problem = size_problem(cols, rows)
    if problem:
        raise ValueError(problem)


STRIP_ROWS = 64  # float colour conversion in full-width strips of this many rows (see _u_channel)


def _u_channel(bgr: np.ndarray, float_path: bool, swap_rgb: bool) -> np.ndarray:
    rows, cols = bgr.shape[:2]
    if not float_path:
        image = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if swap_rgb else bgr
        return cv2.extractChannel(cv2.cvtColor(image, cv2.COLOR_BGR2YUV)[: rows // 4 * 4, : cols // 4 * 4], 1)
    # The float32 copy and its YUV image of a 1080p picture are 25 MB each: made whole, most of
    # their cost is faulting in fresh pages. Strips of whole rows stay in cache. A strip starts on a
    # multiple of 64 pixels of the whole image, so OpenCV's vector loop splits the pixels exactly as
    # it does for the whole image: the same U, bit for bit (tests/test_watermark_fast.py checks).
    bgr = np.ascontiguousarray(bgr)
    u = np.empty((rows // 4 * 4, cols // 4 * 4), np.float32)
    for top in range(0, u.shape[0], STRIP_ROWS):
        strip = bgr[top:min(top + STRIP_ROWS, u.shape[0])]
        if swap_rgb:
            strip = cv2.cvtColor(strip, cv2.COLOR_BGR2RGB)  # a plain channel copy
        u[top:top + len(strip)] = cv2.cvtColor(strip.astype(np.float32), cv2.COLOR_BGR2YUV)[:, : u.shape[1], 1]
    return u


_HAAR = 0.7071067811865476  # pywt.Wavelet("haar").dec_lo[0]
HAAR_STRIP_ROWS = 16  # rows of the LL band per strip in haar_ll


def haar_ll(plane: np.ndarray) -> np.ndarray:
    """``pywt.dwt2(plane, "haar")[0]`` for even-sized planes, bit for bit and several times faster:
    the same float operations in the same order (pairs along axis 0 first, then axis 1), without
    computing the three detail bands. uint8 planes are computed in float64, float32 ones in float32,
    as pywt does. Whole-width strips of rows keep the intermediates in cache (elementwise
    operations: a strip gives the same bits as the whole plane)."""
    dtype = np.float32 if plane.dtype == np.float32 else np.float64
    rows, cols = plane.shape[0] // 2, plane.shape[1]
    ll = np.empty((rows, cols // 2), dtype)
    strip = min(rows, HAAR_STRIP_ROWS)
    pairs, even, half = np.empty((strip, cols), dtype), np.empty((strip, cols), dtype), np.empty((strip, cols // 2), dtype)
    for top in range(0, rows, strip):
        n = min(strip, rows - top)
        source = plane[2 * top: 2 * (top + n)]
        np.multiply(source[1::2], _HAAR, out=pairs[:n], dtype=dtype)
        np.multiply(source[0::2], _HAAR, out=even[:n], dtype=dtype)
        pairs[:n] += even[:n]
        out = ll[top: top + n]
        np.multiply(pairs[:n, 1::2], _HAAR, out=out)
        np.multiply(pairs[:n, 0::2], _HAAR, out=half[:n])
        out += half[:n]
    return ll


def _blocks(ll: np.ndarray) -> np.ndarray:
    """(n_blocks, 16) view of the LL band's 4x4 blocks in row-major block order."""
    br, bc = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    tiles = ll[: br * BLOCK, : bc * BLOCK].reshape(br, BLOCK, bc, BLOCK).swapaxes(1, 2)
    return tiles.reshape(br * bc, BLOCK * BLOCK)


def largest_coefficients(ll: np.ndarray) -> np.ndarray:
    """Each 4x4 block's largest |coefficient| after the first, in row-major block order: the value
    imwatermark's dwtDct reads (it takes pos = argmax(|flat[1:]|) + 1, then |flat[pos]|). A running
    maximum over the 15 coefficients' strided views of the LL band: no copy of the blocks (at 1080p
    0.2-0.3 ms against 0.9 ms with the copy)."""
    br, bc = ll.shape[0] // BLOCK, ll.shape[1] // BLOCK
    grid = ll[: br * BLOCK, : bc * BLOCK].reshape(br, BLOCK, bc, BLOCK)  # a view: [block row, i, block col, j]
    value = np.abs(grid[:, 0, :, 1])
    for position in range(2, BLOCK * BLOCK):
        np.maximum(value, np.abs(grid[:, position // BLOCK, :, position % BLOCK]), out=value)
    return value.ravel()


def _votes_max_coefficient(value: np.ndarray) -> np.ndarray:
    # imwatermark: vote = |flat[pos]| % 36 > 18, from :func:`largest_coefficients`
    return (value % SCALE > 0.5 * SCALE).astype(np.uint8)


def _votes_top_singular_value(blocks: np.ndarray) -> np.ndarray:
    # imwatermark takes s0 = the top singular value of cv2.dct(block); the orthonormal DCT leaves
    # singular values unchanged, so s0^2 is the top eigenvalue of the raw block's Gram matrix G.
    # Most blocks are decided without an eigensolver (a per-matrix LAPACK call costs ~1 us, the
    # bulk of the time): lam1 is bracketed between a Rayleigh quotient (a lower bound) and an upper
    # bound from trace and Frobenius norm; when the whole bracket, widened far beyond rounding,
    # falls between two decision edges (multiples of 18), the vote is the library's. Other blocks
    # go through :func:`_votes_exact`: bit-identical either way.
    gram = _gram_by_entry(blocks)
    lower, upper = _top_eigenvalue_bracket(gram)
    # widened far beyond rounding: in the Gram matrix and the bounds (~1e-15 of s0, as
    # s0 >= ||B||_F / 2), and in the library's SVD, which runs in the blocks' own precision
    margin = max(256 * np.finfo(blocks.dtype).eps, 1e-12)
    low, high = np.sqrt(lower) * (1 - margin), np.sqrt(upper) * (1 + margin)
    with np.errstate(invalid="ignore"):
        decided = (np.floor(low / (0.5 * SCALE)) == np.floor(high / (0.5 * SCALE))) & (lower > 0)
    votes = (np.floor(0.5 * (low + high) / (0.5 * SCALE)) % 2 == 1).astype(np.uint8)  # s0 mod 36 in (18, 36)
    undecided = np.flatnonzero(~decided)
    if len(undecided):
        votes[undecided] = _votes_exact(blocks[undecided], np.moveaxis(gram[:, :, undecided], 2, 0))
    return votes


def _gram_by_entry(blocks: np.ndarray) -> np.ndarray:
    """Each block's Gram matrix B^T B, laid out (4, 4, n_blocks): ten long vector products, ~6x
    faster than numpy's batched matmul over 32,400 tiny matrices."""
    n = blocks.shape[0]
    entries = np.ascontiguousarray(blocks.T, dtype=np.float64).reshape(BLOCK, BLOCK, n)  # [row, col, block]
    gram = np.empty((BLOCK, BLOCK, n))
    for i in range(BLOCK):
        for j in range(i, BLOCK):
            total = entries[0, i] * entries[0, j]
            for k in range(1, BLOCK):
                total += entries[k, i] * entries[k, j]
            gram[i, j] = gram[j, i] = total
    return gram


def _top_eigenvalue_bracket(gram: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) bounds on the largest eigenvalue of each PSD 4x4 matrix.

    lower: the moment ratio e^T G^4 e / e^T G^3 e for the basis vector e of the largest diagonal
    entry (ratios of successive moments of a PSD matrix increase towards lam1).
    upper: with T = trace and F = squared Frobenius norm, the other three eigenvalues sum to
    T - lam1 and their squares (>= (T - lam1)^2 / 3) to F - lam1^2, so
    lam1 <= (T + sqrt(12 F - 3 T^2)) / 4. Both are tight to second order when one eigenvalue
    dominates, as in nearly every image block.
    """
    n = gram.shape[2]  # gram: (4, 4, n), as :func:`_gram_by_entry` lays it out
    diagonal = gram[np.arange(BLOCK), np.arange(BLOCK)]  # (4, n)
    column = gram[:, np.argmax(diagonal, axis=0), np.arange(n)]  # G e, (4, n)
    twice = (gram * column[np.newaxis]).sum(axis=1)  # G^2 e
    with np.errstate(invalid="ignore", divide="ignore"):
        lower = (twice * twice).sum(axis=0) / (column * twice).sum(axis=0)
    trace = diagonal.sum(axis=0)
    frobenius = (gram * gram).sum(axis=(0, 1))
    upper = (trace + np.sqrt(np.maximum(12 * frobenius - 3 * trace ** 2, 0.0))) / 4
    return np.nan_to_num(lower, nan=0.0), upper


def _votes_exact(blocks: np.ndarray, gram: np.ndarray) -> np.ndarray:
    """Votes from an eigensolver's s0; the few blocks whose s0 lies within rounding of a decision
    edge (0 or 18 mod 36: flat regions land exactly on them) are recomputed the library's way."""
    s0 = np.sqrt(np.maximum(np.linalg.eigvalsh(gram)[:, -1], 0.0))
    residue = s0 % SCALE
    votes = (residue > 0.5 * SCALE).astype(np.uint8)
    tolerance = 256 * np.finfo(blocks.dtype).eps * np.maximum(s0, 1.0)
    edge = np.minimum(np.minimum(residue, SCALE - residue), np.abs(residue - 0.5 * SCALE))
    near = np.flatnonzero(edge <= tolerance)
    if len(near):
        # the library's computation for these blocks, its svd batched: the same LAPACK call per
        # matrix (full U and V, as np.linalg.svd's defaults), so the same s0 to the last bit
        # Flat regions repeat the same few blocks thousands of times: each distinct block once.
        # (compared as raw bytes: np.unique's axis=0 sort is ~15x slower)
        rows = np.ascontiguousarray(blocks[near])
        _, first, which = np.unique(rows.view(np.dtype((np.void, rows.strides[0]))).ravel(),
                                    return_index=True, return_inverse=True)
        dcts = np.stack([cv2.dct(np.ascontiguousarray(rows[k].reshape(BLOCK, BLOCK))) for k in first])
        exact = np.linalg.svd(dcts)[1][:, 0]
        votes[near] = (exact % SCALE > SCALE * 0.5).astype(np.uint8)[which.reshape(-1)]
    return votes


# method -> (what it votes from, the voter): dwtDct reads the largest coefficients (shared with the
# soft decisions of provenance.watermark.soft_marks), dwtDctSvd the whole blocks
_VOTERS = {"dwtDct": ("largest_coefficients", _votes_max_coefficient),
           "dwtDctSvd": ("blocks", _votes_top_singular_value)}


class Transforms:
    """One image's dwtDct-family transforms, computed once per colour path and reused by every
    decoder: (float_path, swap_rgb) -> LL blocks, and (method, path) -> votes."""

    def __init__(self, bgr: np.ndarray):
        _check_shape(bgr)
        self.bgr = bgr
        # Detectors may read one image from several threads: each transform is computed once, and
        # different colour paths at the same time.
        self._ll, self._blocks, self._largest, self._votes = ComputedOnce(), ComputedOnce(), ComputedOnce(), ComputedOnce()

    def ll(self, float_path: bool = False, swap_rgb: bool = False) -> np.ndarray:
        """The Haar LL band of U on one colour path."""
        return self._ll.get((float_path, swap_rgb), lambda: haar_ll(_u_channel(self.bgr, float_path, swap_rgb)))

    def blocks(self, float_path: bool = False, swap_rgb: bool = False) -> np.ndarray:
        """(n_blocks, 16) copy of the LL band's 4x4 blocks (what dwtDctSvd reads)."""
        return self._blocks.get((float_path, swap_rgb), lambda: _blocks(self.ll(float_path, swap_rgb)))

    def largest_coefficients(self, float_path: bool = False, swap_rgb: bool = False) -> np.ndarray:
        """Each block's largest |non-DC coefficient| (:func:`largest_coefficients`), once per path."""
        return self._largest.get((float_path, swap_rgb),
                                 lambda: largest_coefficients(self.ll(float_path, swap_rgb)))

    def votes(self, method: str, float_path: bool = False, swap_rgb: bool = False) -> BlockVotes:
        try:
            source, voter = _VOTERS[method]
        except KeyError:
            raise ValueError(f"no fast decoder for {method!r}; have {', '.join(METHODS)}") from None
        return self._votes.get((method, float_path, swap_rgb), lambda: BlockVotes(
            method, voter(getattr(self, source)(float_path, swap_rgb)), float_path, swap_rgb))


def of_image(image) -> Transforms:
    """The :class:`Transforms` of a loaded image, kept on the image itself so that every detector
    looking at this image shares them, and they go when the image goes."""
    return image.derived("watermark-transforms", lambda: Transforms(_bgr(image)))


def _bgr(image) -> np.ndarray:
    bgr = vars(image).get("bgr")  # already made for another detector
    if bgr is None:
        # OpenCV's channel swap is a plain copy, 30x faster than numpy's reversed-stride copy at 1080p
        bgr = cv2.cvtColor(np.ascontiguousarray(image.rgb), cv2.COLOR_RGB2BGR)
    return bgr


def transforms(image: "np.ndarray | Transforms") -> Transforms:
    return image if isinstance(image, Transforms) else Transforms(image)


def pixels(image: "np.ndarray | Transforms") -> np.ndarray:
    return image.bgr if isinstance(image, Transforms) else image


def block_votes(image: "np.ndarray | Transforms", method: str, *, float_path: bool = False,
                swap_rgb: bool = False) -> BlockVotes:
    """Per-block votes of ``method`` on a BGR image or its :class:`Transforms` (the expensive part;
    pass the same Transforms to decode several payloads, paths or methods from one image)."""
    return transforms(image).votes(method, float_path=float_path, swap_rgb=swap_rgb)


def decode(bgr: "np.ndarray | Transforms", length: int, method: str, **path) -> np.ndarray:
    """Bits as ``imwatermark.WatermarkDecoder('bits', length).decode(bgr, method)`` returns them."""
    return block_votes(bgr, method, **path).bits(length)
