"""Crop registration for the learned mark: find where a crop sat in the marked frame, from the image alone.

The decoder is positional: it reads a crop only when the crop is put back at its place and scale in
the 128 px working frame (a shift of 6 working px or a 1.08x scale reads chance). A crop's scale and
offset are unknown, and a dense grid of views would need about 2,000 decodes. Registration does it
in a few decoder passes instead, using two properties of the network:

- its convolutional trunk is translation-equivariant (stride 8): the features of the crop placed on
  an empty canvas hold, window by window, the features of every placement of the crop whose offset
  differs by whole 8 px cells; the linear read-out evaluated on every window is one convolution of
  the features with the read-out's weights;
- on a marked image read in place its logits are large (mean |logit| 2-4 against about 1 elsewhere,
  measured on held-out photos), and this score uses no key.

So for each crop scale on a log grid the read-out runs at every cell offset and a few sub-cell
offsets (``coarse_phases``: one trunk pass each); where that finds a confident placement, the best
scales are refined at finer sub-cell offsets (``phases``), the best placements are re-scored on
their real views and nudged by a pixel and a percent, and the ``candidates`` placements with the
largest mean |logit| become views. The score is sharp: it halves about 2 working px or 2% in scale
off the true placement, hence the dense grid. Because the score ignores the key, the views it picks
are, on an unmarked image, as good as any fixed views for a random key: each is one more test in the
Bonferroni correction, no more (the calibration reads them too).

The trunk passes are most of a search's cost. Where a distilled scorer sits beside the weights
(:mod:`.scorer`: a narrow trunk trained here to reproduce these scores, the same read-out), its
export ranks the placements instead; the shortlist is still re-scored on real views by the real
decoder, and the scorer sees no key either, so the bound above stands whichever ranks.

Measured (benchmarks/watermark_learned.py, RESUME.md session 4): see the model card.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

import cv2
import numpy as np


@dataclass(frozen=True)
class RegistrationConfig:
    min_keep: float = 0.69  # smallest crop searched, as a fraction of each side of the marked frame
    scale_step: float = 0.05  # log step between crop scales (the score halves 2% off the true scale)
    coarse_phases: tuple[int, ...] = (0, 4)  # sub-cell offsets (working px, each axis) tried at every scale
    refine_above: float = 1.3  # refine only where the coarse search's best mean |logit| reaches this:
    # on the shipped weights 5% of unmarked crops do, and all but 3% of marked ones (session-4 notes)
    refine_scales: int = 2  # the best scales are refined at the finer phases
    int8_refine_scales: int = 3  # ... where int8 graphs score placements: their coarser ranking misses
    # a few half-area crops at 2, which one more scale finds again (model card, "int8 graphs")
    phases: tuple[int, ...] = (0, 2, 4, 6)  # sub-cell offsets (working px, each axis) at the refined scales
    shortlist: int = 6  # placements re-scored on their real views (the trunk's windows are approximate)
    refine: int = 1  # the best of them are nudged, round by round, on real views:
    nudges: tuple[tuple[float, float], ...] = ((1.0, 0.01),)  # per round: +-px each axis, +-scale fraction
    candidates: int = 4  # views read; each one counts in the correction
    separation: float = 4.0  # two picked placements differ by more than this many working px or 3% in scale
    exact_above: float | None = 1.5  # with a fast (distilled) scorer: where its coarse best reaches this,
    # the search is redone on the exact scores, so a crop that looks marked is placed as without it
    # (1.3 redid it for a quarter of unmarked images, at 1.5 the same crops are found: model card);
    # None: the fast scores alone (cheaper, fewer crops found)
    read_unconfident: bool = False  # a decision reads the candidates' views even where the search found
    # nothing confident (its best under refine_above, so it decoded none of them); False: it reads only
    # the fixed views there, still correcting for every view (model card: what it costs and saves)

    def scales(self) -> np.ndarray:
        """Crop scales searched, largest first (1, the whole frame, is the plain view)."""
        steps = int(np.floor(np.log(1 / self.min_keep) / self.scale_step + 1e-9))
        return np.exp(-self.scale_step * np.arange(1, steps + 1))


@dataclass(frozen=True)
class Placement:
    score: float  # mean |logit| of the read-out at this placement
    keep: float  # the crop's side as a fraction of the frame's
    x: float  # the crop's top-left corner in the working frame (px)
    y: float

    def view_at(self, size: int) -> tuple[float, float]:
        """The placement as :class:`~.scheme.View` ``at`` fractions of the room left over."""
        room = (1 - self.keep) * size
        return (self.x / room, self.y / room)


class Registration:
    """Placements of a (possibly cropped) image in the working frame, ranked by the decoder's confidence.

    ``score_canvases`` maps canvases (N, 3, H, W) float32 RGB in [0, 1] (H, W = size plus whole cells)
    to the mean |logit| of the read-out at every whole-cell window (N, H/stride - cells + 1, ...):
    :class:`.networks.PlacementScores`, on onnxruntime (``learned.placements.onnx``) or torch."""

    def __init__(self, net, score_canvases: Callable[[np.ndarray], np.ndarray],
                 config: RegistrationConfig = RegistrationConfig(), stride: int | None = None,
                 fast: Callable[[np.ndarray], np.ndarray] | None = None):
        if net.decoder_head != "flatten":
            raise ValueError("registration needs the positional (flatten) decoder head")
        self.config, self.size, self.score_canvases = config, net.size, score_canvases
        self.fast = fast  # a cheaper scorer with the same windows (:mod:`.scorer`): ranks first
        # px between the scorer's windows: the trunk's stride as Decoder builds it, or half of it for
        # the dense (a-trous) scorer, which covers the half-cell phases in one pass
        self.stride = stride or 2 ** (1 + sum(1 for i in range(net.decoder_blocks - 1) if i in (0, 2)))

    def coarse_phases(self) -> list[tuple[int, int]]:
        """(x, y) sub-window offsets every crop scale is scored at."""
        return self._phases(self.config.coarse_phases)

    def refinement_phases(self) -> list[tuple[int, int]]:
        """The further offsets the best scales are scored at where the coarse search is confident."""
        first = self.coarse_phases()
        return [phase for phase in self._phases(self.config.phases) if phase not in first]

    def _phases(self, offsets: tuple[int, ...]) -> list[tuple[int, int]]:
        """(x, y) sub-window offsets to place a crop at: a window spacing or more is covered already."""
        kept = [p for p in offsets if p < self.stride]
        return [(px, py) for py in kept for px in kept]

    def canvases(self, small: np.ndarray, phases: list[tuple[int, int]]) -> np.ndarray:
        """(phases, 3, H, W) float32: ``small`` (RGB float, h x w) on empty canvases, at the last whole-
        window offset plus each sub-window phase, so the scorer's windows are its placements."""
        size, cell = self.size, self.stride
        h, w = small.shape[:2]
        nx, ny = (size - w) // cell, (size - h) // cell
        canvas = np.zeros((len(phases), 3, size + cell * ny, size + cell * nx), np.float32)
        for i, (px, py) in enumerate(phases):
            y0, x0 = cell * ny + py, cell * nx + px
            part = small[: canvas.shape[2] - y0, : canvas.shape[3] - x0]
            canvas[i, :, y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part.transpose(2, 0, 1)
        return canvas

    def crop_scales(self, base: np.ndarray) -> dict[float, np.ndarray]:
        """The search base (RGB float) resized to every crop scale searched, largest first."""
        return {keep: cv2.resize(base, (max(self.stride, round(self.size * keep)),) * 2, interpolation=cv2.INTER_AREA)
                for keep in self.config.scales()}

    def _scores(self, small: np.ndarray, phases: list[tuple[int, int]],
                scorer: Callable[[np.ndarray], np.ndarray] | None = None) -> list[tuple[float, float, float]]:
        """(score, x, y) of every placement of ``small`` (RGB float, h x w) at the given sub-cell phases,
        by ``scorer`` (default: the exact one)."""
        size, cell = self.size, self.stride
        h, w = small.shape[:2]
        nx, ny = (size - w) // cell, (size - h) // cell
        # (phases, ny + 1, nx + 1): window start (ny - cy, nx - cx); a dense scorer adds one more window
        # per axis that would start past the crop's corner
        score = (scorer or self.score_canvases)(self.canvases(small, phases))[:, : ny + 1, : nx + 1]
        out = []
        for i, (px, py) in enumerate(phases):
            for j in range(ny + 1):
                for k in range(nx + 1):
                    out.append((float(score[i, j, k]), float(cell * (nx - k) + px), float(cell * (ny - j) + py)))
        return out

    def select(self, bgr: np.ndarray, confidence: Callable[[list[Placement]], np.ndarray],
               base: np.ndarray | None = None) -> list[Placement]:
        """The ``candidates`` placements of ``bgr`` whose real views the decoder reads most confidently:
        the trunk's ``shortlist``, re-scored by ``confidence`` (mean |logit| of each placement's real
        view), the best ``refine`` of them nudged around, then the best distinct ones."""
        config = self.config
        pool = self.placements(bgr, config.shortlist, base)
        if not pool or pool[0].score < config.refine_above:  # nothing the decoder is sure of: no refinement
            return pool[: config.candidates]
        pool = [replace(p, score=float(c)) for p, c in zip(pool, confidence(pool))]
        for d, f in config.nudges:
            best = sorted(pool, key=lambda p: -p.score)[: config.refine]
            nudged = [replace(p, x=p.x + dx, y=p.y + dy) for p in best for dx, dy in ((-d, 0), (d, 0), (0, -d), (0, d))]
            nudged += [replace(p, keep=p.keep * g) for p in best for g in (1 - f, 1 + f)]
            if nudged:
                pool += [replace(p, score=float(c)) for p, c in zip(nudged, confidence(nudged))]
        return self._distinct(pool, config.candidates)

    def _distinct(self, pool: list[Placement], count: int) -> list[Placement]:
        picked: list[Placement] = []
        for p in sorted(pool, key=lambda p: -p.score):
            if all(abs(p.keep / q.keep - 1) > 0.03 or abs(p.x - q.x) + abs(p.y - q.y) > self.config.separation
                   for q in picked):
                picked.append(p)
                if len(picked) == count:
                    break
        return picked

    def base(self, bgr: np.ndarray) -> np.ndarray:
        """The image squeezed to twice the working size, RGB uint8: what the search resamples."""
        side = 2 * self.size
        image = np.ascontiguousarray(bgr)
        while min(image.shape[:2]) >= 4 * side:  # exact 2x2 means first: 2.5x faster at 1080p than one
            # area resize at a fractional ratio, and within 0.2 grey levels of it on average
            h, w = image.shape[:2]
            image = cv2.resize(image[: h // 2 * 2, : w // 2 * 2], (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)[:, :, ::-1])

    def placements(self, bgr: np.ndarray, count: int, base: np.ndarray | None = None) -> list[Placement]:
        """The ``count`` best-scoring (by the trunk's windows), mutually distinct placements of ``bgr``
        (``base``: its :meth:`base`, where the caller has it)."""
        config = self.config
        base = (self.base(bgr) if base is None else base).astype(np.float32) / 255
        smalls = self.crop_scales(base)
        first = self.coarse_phases()
        scorer = self.fast  # None: the exact scores
        coarse = self._coarse(smalls, first, scorer)
        if scorer is not None and config.exact_above is not None and coarse and coarse[0][0] >= config.exact_above:
            scorer, coarse = None, self._coarse(smalls, first, None)  # looks marked: place it exactly
        return self._refined(coarse, smalls, count, scorer)

    def _coarse(self, smalls: dict[float, np.ndarray], first: list[tuple[int, int]], scorer) -> list[tuple]:
        """(best score, scale, placements) per crop scale, best scale first."""
        coarse = []
        for keep, small in smalls.items():
            found = self._scores(small, first, scorer)
            coarse.append((max(s for s, _, _ in found), keep, found))
        return sorted(coarse, key=lambda item: -item[0])

    def _refined(self, coarse: list[tuple], smalls: dict[float, np.ndarray], count: int, scorer) -> list[Placement]:
        """The coarse placements and, where the best is confident, the best scales' finer phases."""
        config = self.config
        found = [Placement(s, keep, x, y) for _, keep, scored in coarse for s, x, y in scored]
        extra = self.refinement_phases()
        refined = coarse[: config.refine_scales] if coarse and coarse[0][0] >= config.refine_above else []
        for _, keep, _ in refined:
            if extra:
                found += [Placement(s, keep, x, y) for s, x, y in self._scores(smalls[keep], extra, scorer)]
        return self._distinct(found, count)
