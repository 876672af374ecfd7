"""The ``learned`` watermark scheme: our trained encoder/decoder behind the common scheme interface.

Embedding resizes the image to the networks' working size, asks the encoder for a residual there,
upsamples the residual to the image (bilinear) and adds it times ``strength``: any image size, a
flat cost. Decoding reads one resized view and, with ``search=True`` (the default), a few more: the
mirror, rotations of +-10 degrees, and crops put back where registration (:mod:`.registration`)
finds they sat in the marked frame (a fixed 3x3 grid of crop views with ``registration=None``),
keeping the best one; :attr:`LearnedScheme.trials` says how many, so a decision can divide its
false-positive budget by it.

The scheme carries 128 bits, the keyed payload of the other schemes (64 key-scrambled sync bits
decide "marked", 64 carry the BCH-protected ID). Weights come from a safetensors file (never a
pickle); the decoder can also run on onnxruntime from an exported ``.onnx`` beside it, so reading
a mark needs no torch. Where the CPU has VNNI (:func:`provenance.precision.use_int8`) and the
exports' int8 forms sit beside them (``learned.*.int8.onnx``, written by
:func:`.export.export_int8`), those run instead: the same search about 1.5x faster (model card).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator, Sequence

import cv2
import numpy as np

from ..marking import MarkingError
from .. import payload, soft_sync
from ..null_model import TARGET_FPR, Calibration
from ..payload import PAYLOAD_BITS
from ..schemes import SCHEMES, WatermarkScheme
from .registration import Registration, RegistrationConfig

if TYPE_CHECKING:
    from ..decision import DecodeResult

SHIPPED_WEIGHTS = Path(__file__).with_name("weights") / "learned.safetensors"
TEST_NAME = "learned/uint8"  # the null's name in a calibration file beside the weights

@dataclass(frozen=True)
class _Reading:
    bgr: np.ndarray
    base: np.ndarray  # RGB uint8 at the working size
    search_base: np.ndarray | None  # RGB uint8 at twice it, for registration
    aspect: float  # width / height before resizing


@dataclass(frozen=True)
class View:
    """One re-aligned reading: undo a rotation by ``angle`` degrees, or a crop that kept ``keep`` of
    each side with its top-left corner at ``at`` (fractions of the room left over), or a mirror."""

    angle: float = 0.0
    keep: float = 1.0
    at: tuple[float, float] = (0.5, 0.5)
    mirror: bool = False

    def matrix(self, size: int, aspect: float = 1.0) -> np.ndarray:
        """2x3 affine map from the resized image (``aspect`` = its width / height before resizing) to
        the view that re-aligns it with the embedded one."""
        if self.keep != 1.0:  # shrink the crop back to its size in the original and put it in place
            x, y = ((1 - self.keep) * size * f for f in self.at)
            return np.array([[self.keep, 0, x], [0, self.keep, y]], dtype=np.float64)
        # the rotation happened in the image's own pixels: conjugate it by the squeeze to size x size
        m = cv2.getRotationMatrix2D((0.0, 0.0), self.angle, 1.0)[:, :2]
        m = m * np.array([[1.0, 1.0 / aspect], [aspect, 1.0]])
        centre = np.full(2, size / 2 - 0.5)
        return np.hstack([m, (centre - m @ centre)[:, None]])


# The fixed views read when searching: the networks are trained for small geometry (a few degrees,
# crops of ~15% of a side); these cover the mirror and rotations of +-10 degrees. Crops are found by
# registration (:mod:`.registration`), which adds its own views; without it, a 3x3 grid of crop views
# (the design before registration: a crop lines up with it only by chance) is read instead.
SEARCH_VIEWS: tuple[View, ...] = (View(), View(mirror=True), View(angle=-10.0), View(angle=10.0))
CROP_GRID_VIEWS: tuple[View, ...] = (
    View(keep=0.85), *(View(keep=0.71, at=(x, y)) for y in (0.0, 0.5, 1.0) for x in (0.0, 0.5, 1.0)),
)


class MissingWeights(MarkingError):
    pass


def onnx_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".decoder.onnx")


def placements_onnx_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".placements.onnx")


def scorer_path(weights: str | Path) -> Path:
    """Where a distilled placement scorer (:mod:`.scorer`) for learned weights ``weights`` sits."""
    return Path(weights).with_suffix(".scorer.safetensors")


def scorer_onnx_path(weights: str | Path) -> Path:
    """Its ONNX export, which the scheme runs on onnxruntime (no torch)."""
    return Path(weights).with_suffix(".scorer.onnx")


def calibration_path(weights: str | Path) -> Path:
    return Path(weights).with_suffix(".calibration.json")


# The residual's scale when none is asked for. 1.2 (PSNR 40.1 dB, the floor is 40) rather than 1
# (41.7 dB): on 200 + 100 distinct corpus photos it reads half-area crops at a random position in 98% /
# 96% at 512 px / 1080p instead of 95.5% / 94% (benchmarks/watermark_learned --embed-strengths, README).
DEFAULT_STRENGTH = 1.2


@SCHEMES.register("learned")
class LearnedScheme(WatermarkScheme):
    name = "learned"
    capacity: ClassVar[int] = PAYLOAD_BITS

    def __init__(self, weights: str | Path | None = None, strength: float | None = None, search: bool = True,
                 backend: str = "auto", registration: RegistrationConfig | None = RegistrationConfig(),
                 soft: bool = True, distilled: bool = True, int8: bool | None = None):
        """``int8``: run the exported graphs' int8 forms where they sit beside them (None: where the
        CPU has VNNI, :func:`provenance.precision.use_int8`); the torch backend is always float32."""
        if backend not in ("auto", "torch", "onnx"):
            raise ValueError(f"backend must be auto, torch or onnx, not {backend!r}")
        self.weights = Path(weights) if weights else SHIPPED_WEIGHTS
        self.strength = DEFAULT_STRENGTH if strength is None else float(strength)
        self.search = search
        self.backend = backend
        self.soft = soft  # decide on confidence-weighted sync bits (exact test), not hard matches
        self.registration = registration if search else None  # None: read the fixed crop grid instead
        self.distilled = distilled  # rank placements with the distilled scorer beside the weights, if any
        self.int8 = int8
        self._encoder = self._decoder = self._onnx = self._net = self._registration = None
        self._int8_placements = False  # the placement scores run on an int8 graph (see new_registration)
        self._target_rms = None

    @property
    def fixed_views(self) -> tuple[View, ...]:
        if not self.search:
            return SEARCH_VIEWS[:1]
        return SEARCH_VIEWS if self.registration else SEARCH_VIEWS + CROP_GRID_VIEWS

    @property
    def trials(self) -> int:
        """Views read per decode (the factor a decision must correct for): the fixed ones and the
        registered ones (always ``candidates`` of them, chosen without the key)."""
        return len(self.fixed_views) + (self.registration.candidates if self.registration else 0)

    def _check_weights(self) -> None:
        if not self.weights.is_file():
            raise MissingWeights(f"no trained weights for the learned watermark at {self.weights}; "
                                 "none ship yet: train them with 'provenance train watermark'")

    def _session(self, float_graph: Path):
        """An onnxruntime session (1 thread) of the export ``float_graph``, or of its int8 form where
        this scheme runs int8 and a current one sits beside it (:func:`provenance.onnx_int8.open_session`)."""
        from provenance.onnx_int8 import open_session
        from provenance.precision import use_int8

        return open_session(float_graph, use_int8() if self.int8 is None else self.int8)

    @property
    def graph_precision(self) -> str:
        """What reads the mark: ``onnxruntime-int8`` / ``onnxruntime-fp32`` (the decoder's graph), or ``torch-fp32``."""
        self._load()
        if self._onnx is None:
            return "torch-fp32"
        from provenance.onnx_int8 import is_int8

        return "onnxruntime-int8" if is_int8(self._onnx) else "onnxruntime-fp32"

    def _load_torch(self) -> None:
        if self._encoder is not None:
            return
        self._check_weights()
        from .weights import load_networks, read_metadata

        self._encoder, self._decoder, self._net = load_networks(self.weights)
        _, extra = read_metadata(self.weights)
        if self._net.bits != self.capacity:
            raise MissingWeights(f"{self.weights}: the network carries {self._net.bits} bits, the scheme {self.capacity}")
        self._target_rms = float(extra.get("target_rms", 0.0085))

    def _load_onnx(self) -> bool:
        """Open the exported decoder if there is one (and onnxruntime); False: use torch."""
        if self._onnx is not None:
            return True
        path = onnx_path(self.weights)
        if self.backend == "torch" or not path.is_file():
            if self.backend == "onnx":
                raise MissingWeights(f"no ONNX decoder at {path}; export it with provenance.watermark.learned.export")
            return False
        self._check_weights()
        from .weights import read_metadata

        self._onnx = self._session(path)
        self._net, _ = read_metadata(self.weights)
        return True

    def embed(self, bgr: np.ndarray, bits: np.ndarray) -> np.ndarray:
        import torch

        self.check_image(bgr)
        bits = np.asarray(bits, dtype=bool)
        self.check_length(bits.size)
        self._load_torch()
        h, w = bgr.shape[:2]
        view = self._resized_rgb(bgr)
        with torch.inference_mode():
            x = torch.from_numpy(view).permute(2, 0, 1)[None].float() / 255
            residual = self._encoder(x, torch.from_numpy(bits[None].astype(np.float32)), self._target_rms)
        residual_bgr = np.ascontiguousarray(residual[0].flip(0).permute(1, 2, 0).numpy() * (255.0 * self.strength))
        residual_bgr = cv2.resize(residual_bgr, (w, h), interpolation=cv2.INTER_LINEAR)
        # one saturating, rounding pass (12x faster at 1080p than numpy float round-trips)
        return cv2.add(np.ascontiguousarray(bgr), residual_bgr, dtype=cv2.CV_8U)

    def _resized_rgb(self, bgr: np.ndarray) -> np.ndarray:
        """The working-size RGB view (area-averaged when shrinking)."""
        size = self._net.size
        h, w = bgr.shape[:2]
        small = cv2.resize(np.ascontiguousarray(bgr), (size, size),
                           interpolation=cv2.INTER_AREA if min(h, w) > size else cv2.INTER_CUBIC)
        return np.ascontiguousarray(small[:, :, ::-1])

    def registered_views(self, bgr: np.ndarray, base: np.ndarray | None = None,
                         search_base: np.ndarray | None = None,
                         read: dict[View, np.ndarray] | None = None) -> list[View]:
        """Exactly ``registration.candidates`` crop views placed by :class:`.Registration`, chosen by
        the decoder's confidence (no key). ``base``/``search_base``: the image at the working size /
        twice it, where the caller has them; ``read``, where given, receives the logits of every
        view the search decoded (none where it found nothing confident), so the chosen ones need not
        be decoded again."""
        if self._registration is None:
            self._registration = self.new_registration()
        size = self._net.size
        search_base = self._registration.base(bgr) if search_base is None else search_base
        base = self._resized_rgb(bgr) if base is None else base
        read = {} if read is None else read

        def confidence(placements) -> np.ndarray:  # key-free: how sure the decoder is, whatever the word
            views = [View(keep=p.keep, at=p.view_at(size)) for p in placements]
            logits = self._run(self._warp(base, views, bgr.shape[1] / bgr.shape[0]))
            read.update(zip(views, logits))
            return np.abs(logits).mean(axis=1)

        placements = self._registration.select(bgr, confidence, search_base)
        views = [View(keep=p.keep, at=p.view_at(size)) for p in placements]
        return (views + [View()] * self.registration.candidates)[: self.registration.candidates]

    def _placement_scorer(self):
        """(canvases -> placement scores, px between windows): :class:`.networks.PlacementScores`, on
        onnxruntime where its export sits beside the weights (and the backend allows), else torch
        (the dense form)."""
        path = placements_onnx_path(self.weights)
        if self.backend != "torch" and path.is_file():
            from provenance.onnx_int8 import is_int8

            session = self._session(path)
            self._int8_placements = bool(is_int8(session))
            return _onnx_scorer(session)
        from .networks import PlacementScores

        self._load_torch()
        return _torch_scorer(PlacementScores(self._decoder, dense=True).eval())

    def _distilled_scorer(self):
        """The distilled scorer beside the weights (:mod:`.scorer`) as (canvases -> scores, stride), on
        onnxruntime or torch like the decoder; None where there is none (or ``distilled`` is off)."""
        if not self.distilled or not scorer_path(self.weights).is_file():
            return None
        if self.backend != "torch" and scorer_onnx_path(self.weights).is_file():
            return _onnx_scorer(self._session(scorer_onnx_path(self.weights)))
        from .scorer import load_scorer

        return _torch_scorer(load_scorer(scorer_path(self.weights), self.weights))

    def _load(self) -> None:
        """The decoder on onnxruntime where it can be, else torch."""
        if not (self.backend != "torch" and self._load_onnx()):
            self._load_torch()

    def new_registration(self) -> Registration:
        """Crop registration for these weights, with their placement scorer (:meth:`_placement_scorer`);
        on an int8 placement graph it refines ``int8_refine_scales`` crop scales."""
        if self._net is None:
            self._load()
        scorer, stride = self._placement_scorer()
        distilled = self._distilled_scorer()
        if distilled is not None and distilled[1] != stride:  # an older plain export: windows 8 px apart
            distilled = None
        config = self.registration
        if self._int8_placements:
            config = replace(config, refine_scales=config.int8_refine_scales)
        return Registration(self._net, scorer, config, stride, fast=distilled[0] if distilled else None)

    def _reading(self, bgr: np.ndarray) -> "_Reading":
        """The image at the working size (and, when registering, twice it): one resize of a possibly
        large image serves the fixed views and the search."""
        aspect = bgr.shape[1] / bgr.shape[0]
        if not self.registration:
            return _Reading(bgr, self._resized_rgb(bgr), None, aspect)
        if self._registration is None:
            self._registration = self.new_registration()
        search_base = self._registration.base(bgr)
        size = self._net.size
        base = np.ascontiguousarray(cv2.resize(search_base, (size, size), interpolation=cv2.INTER_AREA))
        return _Reading(bgr, base, search_base, aspect)

    def _registered_logits(self, reading: "_Reading", every_view: bool = True) -> np.ndarray:
        """Logits of the registered views: those the search already decoded are not decoded again;
        with ``every_view`` False, none where the search found nothing confident (and decoded none)."""
        read: dict[View, np.ndarray] = {}
        views = self.registered_views(reading.bgr, reading.base, reading.search_base, read)
        if not read and not every_view:
            return np.empty((0, self.capacity))
        missing = list(dict.fromkeys(v for v in views if v not in read))
        if missing:
            read.update(zip(missing, self._run(self._warp(reading.base, missing, reading.aspect))))
        return np.stack([read[v] for v in views])

    def _warp(self, base: np.ndarray, chosen: Sequence[View], aspect: float) -> np.ndarray:
        size = self._net.size
        out = []
        for v in chosen:
            view = base[:, ::-1] if v.mirror else base
            if v.angle or v.keep != 1.0:
                view = cv2.warpAffine(np.ascontiguousarray(view), v.matrix(size, aspect), (size, size),
                                      flags=cv2.INTER_LINEAR)
            out.append(np.ascontiguousarray(view))
        return np.stack(out).transpose(0, 3, 1, 2).astype(np.float32) / 255

    def _logits(self, bgr: np.ndarray) -> np.ndarray:
        return np.concatenate(list(self.staged_logits(bgr)))

    def staged_logits(self, bgr: np.ndarray, every_view: bool = True) -> Iterator[np.ndarray]:
        """Logits of the fixed views, then (when searching crops) of the registered views: a caller
        whose decision is already made on the first can skip the search, the costly part. With
        ``every_view`` False, the registered views only where the search found a confident placement
        (an unmarked image's usual case: 4 decodes fewer)."""
        self.check_image(bgr)
        self._load()
        reading = self._reading(bgr)
        yield self._run(self._warp(reading.base, self.fixed_views, reading.aspect))
        if self.registration:
            yield self._registered_logits(reading, every_view)

    def _run(self, views: np.ndarray) -> np.ndarray:
        """Logits (N, bits) of views (N, 3, size, size), on onnxruntime where loaded, else torch."""
        if self._onnx is not None:
            return self._onnx.run(None, {self._onnx.get_inputs()[0].name: views})[0].astype(np.float64)
        import torch

        self._load_torch()
        with torch.inference_mode():
            return self._decoder(torch.from_numpy(views)).double().numpy()

    def decode_soft(self, bgr: np.ndarray, length: int) -> np.ndarray:
        """P(bit = 1) per bit; with ``search``, from the view whose word is most confident."""
        self.check_length(length)
        logits = self._logits(bgr)
        best = int(np.argmax(np.abs(logits).mean(axis=1)))
        return 1.0 / (1.0 + np.exp(-logits[best]))

    def decide(self, bgr: np.ndarray, keys: Sequence[str], tests: int, level: float):
        """Decisions for ``keys`` with this weights' own null (beside them), corrected for the views
        read times ``tests`` (the caller's schemes x keys); see :func:`decode_learned`."""
        return decode_learned(bgr, self, keys, level=level, tests=tests)

    def decode_all(self, bgr: np.ndarray) -> np.ndarray:
        """Hard words of every searched view, (trials, 128) bool: score each, then correct by trials."""
        return self._logits(bgr) > 0

    def decode_logits(self, bgr: np.ndarray) -> np.ndarray:
        """Logits of every searched view, (trials, 128) float64 (> 0 reads a 1)."""
        return self._logits(bgr)


def _onnx_scorer(session):
    """(canvases -> scores, window spacing from the graph's ``stride`` metadata) on an onnxruntime session."""
    name = session.get_inputs()[0].name
    stride = int(session.get_modelmeta().custom_metadata_map.get("stride", 0)) or None  # older exports: plain
    return (lambda canvases: session.run(None, {name: canvases})[0]), stride


def _torch_scorer(module):
    import torch

    def run(canvases: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return module(torch.from_numpy(canvases)).numpy()
    return run, module.stride


def decode_learned(bgr: np.ndarray, scheme: LearnedScheme, keys: Sequence[str] = (payload.DEFAULT_KEY,),
                   calibration: Calibration | None = None, other_tests: int = 1,
                   level: float = TARGET_FPR, tests: int | None = None) -> list[DecodeResult]:
    """One result per key from the best view, p corrected for views x keys x ``other_tests`` (or
    views x ``tests``, where a caller has already counted keys and schemes).

    With ``scheme.soft`` (the default) p is the exact weighted sign test of :mod:`..soft_sync` on the
    sync bits' logits; otherwise the hard match count read against the null calibrated for
    ``scheme``'s weights (:mod:`.calibrate`).

    The fixed views are read first; crop registration, most of the cost, runs only when no key is
    detected on them, and (unless ``read_unconfident``) its views are read only where it found a
    confident placement. The correction always counts every view, so stopping early or reading fewer
    changes no false-positive bound: a view passing the corrected level decides whatever the others
    read."""
    tests = scheme.trials * (tests if tests is not None else len(keys) * other_tests)
    null = None if scheme.soft else (calibration or Calibration(calibration_path(scheme.weights))).null(TEST_NAME)
    read: list[np.ndarray] = []
    every_view = scheme.registration is None or scheme.registration.read_unconfident
    for logits in scheme.staged_logits(bgr, every_view):
        read.append(logits)
        results = _decisions(np.concatenate(read), scheme, keys, tests, level, null)
        if any(r.detected for r in results):
            break
    return results


def _decisions(logits: np.ndarray, scheme: LearnedScheme, keys: Sequence[str], tests: int, level: float,
               null) -> list[DecodeResult]:
    """Per key, the best of the views read so far (``logits``: views x bits), p corrected by ``tests``."""
    from ..decision import DecodeResult, key_label

    words = logits > 0
    layout = payload.layout_for(scheme.capacity)
    patterns = payload.sync_patterns(keys, scheme.name, layout.sync_bits)
    matches = (words[None, :, : layout.sync_bits] == patterns[:, None, :]).sum(axis=2)  # (keys, views)
    if null is None:
        votes = soft_sync.signed_weights(logits[:, : layout.sync_bits])
        views, p_values = soft_sync.best_view_p_values(votes, patterns)
    else:
        views = np.argmax(matches, axis=1)
        p_values = [null.p_value(int(matches[k, v])) for k, v in enumerate(views)]
    results = []
    for k, key in enumerate(keys):
        view, p = int(views[k]), float(p_values[k])
        corrected = min(1.0, p * tests)
        detected = corrected <= level
        wm_id, errors = payload.read_id(words[view], key, scheme.name, scheme.capacity) if detected else (None, -1)
        results.append(DecodeResult(scheme.name, key_label(key), int(matches[k, view]), layout.sync_bits, p,
                                    corrected, tests, detected, True, wm_id, errors,
                                    statistic=soft_sync.STATISTIC if scheme.soft else "matches"))
    return results
