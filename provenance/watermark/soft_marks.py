"""Soft decisions on the public Stable Diffusion marks: a statistic on the decoded coefficients
themselves, correlated with the known word, on every colour path.

imwatermark's ``dwtDct`` decoder votes one bit per 4x4 block of the Haar LL band of U (is the
block's largest non-DC coefficient, modulo 36, above 18?) and then takes a majority per payload
bit. A lightly damaged mark, or a word with many 0-bits (which dwtDct embeds badly), then reads
76-86 of 136 bits: no better than chance at the hard threshold, although nearly every block still
leans the right way. Here every block keeps its *phase* ``-sin(2 pi v / 36)`` (+1 at the centre of
a 1-cell, -1 at a 0-cell), and the decision is a two-sample t statistic across bit positions:

1. phases on the block grid, minus their 3x3 local mean (a high-pass: smooth or flat regions make
   neighbouring blocks' phases alike, which a periodic word would otherwise pick up);
2. the mean high-passed phase of the blocks carrying each bit position ``i`` (block ``k`` carries
   bit ``k mod L``, as in imwatermark);
3. Student's t between the positions whose word bit is 1 and those whose bit is 0 (one-sided),
   within column classes: on a grid ``cols`` blocks wide, position ``i`` only ever sees columns
   ``c`` with ``c = i (mod g)``, ``g = gcd(cols, L)`` (8 for SD 1.x on every width that is a multiple
   of 64 px). A texture that varies from column to column (a door's panels, a fence) then shifts
   whole classes of positions, and a word whose 1-bits fall unevenly across the classes picks
   that up: a 384 px crop of a real photo read t = 7.0 against a 1e-6 threshold of 6.15. So each
   class's mean is removed from the positions and from the word, and t is the regression slope of
   the one on the other (``L - g - 1`` degrees of freedom). Where ``g`` exceeds
   :data:`MAX_COLUMN_CLASSES` the word cannot be told from the columns and the test is undefined
   (t = 0: it never fires; the hard decision still runs).

If the centred per-position means were independent and normal on unmarked images, t would follow
Student's t with ``L - g - 1`` degrees of freedom; p-values use :func:`soft_dof`, the fewest
degrees of freedom any allowed ``g`` leaves (a heavier tail, so a smaller ``g`` reads
conservatively). The calibration run measures the null on unmarked variants
(:func:`provenance.watermark.null_statistics.summarise_soft`) and the p-value is never lighter than
that reference. Each (word, colour path) is one test, and the SD detector corrects for all of its
tests, hard and soft (:func:`test_count`). A hit is evidence of an SD reference-script mark (public
and forgeable), never proof.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from . import fast, thirdparty

STATISTIC = "t"  # the suffix of a soft test's name: "sd1/uint8/t"
# Per-position means that differ by less than this are equal but for rounding: t would be a ratio
# of rounding errors. Phases are in [-1, 1]; on a natural image the means spread by ~0.01 or more,
# while a grey image on the float32 path (U = 0.5 plus float32 rounding) spreads by ~1e-6.
DEGENERATE_SPREAD = 1e-4
STATISTIC_TEXT = "soft t (high-passed dwtDct block phases vs the word, across bit positions, within column classes)"
# Column classes (gcd of the grid's width in blocks and the word length) a soft test separates; past
# this the word's pattern repeats with the columns (SD 2.x at widths that are multiples of 256 px).
MAX_COLUMN_CLASSES = 16


def soft_tests() -> list[tuple[thirdparty.KnownMark, str]]:
    """Every fixed word on every colour path (not only the paths its reference embedder uses)."""
    return [(mark, path) for mark in thirdparty.KNOWN_MARKS for path in thirdparty.PATH_OPTIONS]


def soft_test_name(mark: thirdparty.KnownMark, path: str) -> str:
    return f"{mark.name}/{path}/{STATISTIC}"


def test_count() -> int:
    """The SD detector's Bonferroni factor: words x paths x statistics actually tried."""
    return len(thirdparty.tests()) + len(soft_tests())


def block_phases(image: "np.ndarray | fast.Transforms", float_path: bool = False, swap_rgb: bool = False) -> np.ndarray:
    """QIM phase of each block's largest non-DC LL coefficient, on the block grid (rows, cols).

    The same coefficient as imwatermark's vote (first maximum of ``|flat[1:]|``); the vote is
    ``phase < 0`` up to the edges of the cells."""
    transforms = fast.transforms(image)
    rows, cols = transforms.bgr.shape[:2]
    value = transforms.largest_coefficients(float_path, swap_rgb)  # shared with the dwtDct votes
    phases = -np.sin((2 * np.pi / fast.SCALE) * value.astype(np.float64))
    return phases.reshape(rows // (2 * fast.BLOCK), cols // (2 * fast.BLOCK))


def high_pass(grid: np.ndarray) -> np.ndarray:
    """The grid minus its 3x3 local mean (mirrored at the borders)."""
    return grid - cv2.blur(grid, (3, 3), borderType=cv2.BORDER_REFLECT)


def column_classes(length: int) -> int:
    """The most column classes a soft test on a word of ``length`` bits allows: its largest divisor
    up to :data:`MAX_COLUMN_CLASSES` (8 for SD 1.x's 136 bits, 16 for SD 2.x and SDXL)."""
    return max(g for g in range(1, MAX_COLUMN_CLASSES + 1) if length % g == 0)


def soft_dof(length: int) -> int:
    """Degrees of freedom of the reference t for a word of ``length`` bits (see the module docstring)."""
    return length - column_classes(length) - 1


def word_t(values: np.ndarray, word: np.ndarray) -> float:
    """t of the per-position means of ``values`` (a grid of blocks, row-major; block k carries bit
    position k mod L) against ``word``, both centred within the grid's column classes. 0 when
    undefined: too many column classes, or positions that do not differ (grey images, stripes)."""
    rows, cols = values.shape
    length = word.size
    classes = math.gcd(cols, length)
    if classes > column_classes(length):
        return 0.0
    slot = np.arange(rows * cols) % length
    means = np.bincount(slot, weights=values.ravel(), minlength=length) / np.maximum(
        np.bincount(slot, minlength=length), 1)
    if not np.ptp(means) > DEGENERATE_SPREAD:  # grey images, stripes, gradients
        return 0.0
    position_class = np.arange(length) % classes
    per_class = np.bincount(position_class, minlength=classes)

    def centred(v: np.ndarray) -> np.ndarray:
        return v - (np.bincount(position_class, weights=v, minlength=classes) / per_class)[position_class]

    levels, bits = centred(means), centred(word.astype(np.float64))
    spread = float(bits @ bits)
    if not spread > 0:  # the word is constant within every class: nothing to test
        return 0.0
    slope = float(bits @ levels) / spread
    residual = levels - slope * bits
    variance = float(residual @ residual) / (length - classes - 1)
    if not variance > 0:
        return 0.0
    return slope / math.sqrt(variance / spread)


def unstratified_t(values: np.ndarray, word: np.ndarray) -> float:
    """The statistic shipped before column classes (pooled two-sample t across all positions at
    once, ``L - 2`` dof), kept as the baseline that ``benchmarks/sd_watermark_soft`` and the tests
    compare :func:`word_t` with."""
    length = word.size
    slot = np.arange(values.size) % length
    means = np.bincount(slot, weights=values.ravel(), minlength=length) / np.maximum(
        np.bincount(slot, minlength=length), 1)
    if not np.ptp(means) > DEGENERATE_SPREAD:
        return 0.0
    ones, zeros = means[word], means[~word]
    pooled = (np.sum((ones - ones.mean()) ** 2) + np.sum((zeros - zeros.mean()) ** 2)) / (length - 2)
    if not pooled > 0:
        return 0.0
    return float((ones.mean() - zeros.mean()) / math.sqrt(pooled * (1 / ones.size + 1 / zeros.size)))


def soft_statistics(image: "np.ndarray | fast.Transforms", statistic=None) -> dict[str, float]:
    """t of every (word, path) soft test on a BGR uint8 image (>= 256x256) or its shared
    :class:`fast.Transforms`, by test name (``statistic``: :func:`word_t` unless given)."""
    transforms = fast.transforms(image)
    statistic = statistic or word_t
    high = {path: high_pass(block_phases(transforms, **options)) for path, options in thirdparty.PATH_OPTIONS.items()}
    return {soft_test_name(mark, path): statistic(high[path], mark.bits) for mark, path in soft_tests()}
