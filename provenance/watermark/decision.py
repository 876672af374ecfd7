"""Decoding our keyed marks and deciding, with calibrated and corrected p-values.

A library entry point for the detector and the CLI: decode each scheme once, score the decoded
word against every key (the word does not depend on the key), and Bonferroni-correct the
calibrated p-value by the number of (scheme, key) tests.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import fast, get, payload
from .null_model import TARGET_FPR, Calibration
from .schemes import WatermarkScheme

# The schemes a check decodes unless told otherwise: the classical ones earlier releases embedded,
# and the learned one generators embed now (rivaGan costs seconds per image).
DEFAULT_SCHEMES = ("dwtDct", "dwtDctSvd", "learned")


def key_label(key: str) -> str:
    """How a key is named in reports: secret keys are never printed."""
    if key == payload.DEFAULT_KEY:
        return "default (public)"
    return "key sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]


@dataclass
class DecodeResult:
    scheme: str
    key: str  # label from key_label, never the key itself
    matches: int
    sync_bits: int
    p_value: float  # calibrated, for this one test
    corrected_p: float  # times the number of tests
    tests: int
    detected: bool
    carries_id: bool
    watermark_id: payload.WatermarkId | None = None
    id_errors_corrected: int = -1
    statistic: str = "matches"  # what p is computed from: the hard match count, or soft_sync.STATISTIC

    @property
    def evidence_text(self) -> str:
        """The decision's basis, e.g. "50/64 sync bits" (", confidence-weighted" for a soft test)."""
        weighted = ", confidence-weighted" if self.statistic != "matches" else ""
        return f"{self.matches}/{self.sync_bits} sync bits{weighted}"

    @property
    def id_text(self) -> str:
        if self.watermark_id is not None:
            return str(self.watermark_id)
        if not self.carries_id:
            return f"no ID ({self.scheme} has no room for one)"
        return "ID unreadable" if self.detected else "ID not read (no mark detected)"

    def to_dict(self) -> dict:
        out = {
            "scheme": self.scheme,
            "key": self.key,
            "matches": self.matches,
            "sync_bits": self.sync_bits,
            "p_value": self.p_value,
            "corrected_p": self.corrected_p,
            "tests": self.tests,
            "statistic": self.statistic,
            "detected": self.detected,
            "id": None,
            "id_text": self.id_text,
        }
        if self.watermark_id is not None:
            out["id"] = {"generator": self.watermark_id.generator, "serial": self.watermark_id.serial,
                         "bit_errors_corrected": self.id_errors_corrected}
        return out


def decode_scheme(
    bgr: "np.ndarray | fast.Transforms",
    scheme: WatermarkScheme,
    keys: Sequence[str],
    tests: int,
    calibration: Calibration,
    level: float = TARGET_FPR,
) -> list[DecodeResult]:
    """Decode ``scheme`` once and score the word against every key; ``tests`` is the Bonferroni factor.
    ``bgr`` may be an image's shared :class:`fast.Transforms`. A scheme with its own null and views
    (``scheme.decide``, the learned one) decides for itself, given the same factor."""
    if hasattr(scheme, "decide"):
        return scheme.decide(getattr(bgr, "bgr", bgr), keys, tests, level)
    layout = payload.layout_for(scheme.capacity)
    null = calibration.null(f"{scheme.name}/uint8")
    bits = scheme.decode_bits(bgr, layout.length)
    results = []
    for key in keys:
        matches, n = payload.sync_matches(bits, key, scheme.name, scheme.capacity)
        p = null.p_value(matches)
        corrected = min(1.0, p * tests)
        detected = corrected <= level
        wm_id, errors = payload.read_id(bits, key, scheme.name, scheme.capacity) if detected else (None, -1)
        results.append(
            DecodeResult(scheme.name, key_label(key), matches, n, p, corrected, tests, detected, layout.has_id, wm_id, errors)
        )
    return results


def decode_watermark(
    bgr: np.ndarray,
    schemes: Sequence[str] = DEFAULT_SCHEMES,
    keys: Sequence[str] = (payload.DEFAULT_KEY,),
    calibration: Calibration | None = None,
) -> list[DecodeResult]:
    """Every (scheme, key) result for a BGR uint8 image, corrected for all of them together."""
    calibration = calibration or Calibration()
    tests = len(schemes) * len(keys)
    return [r for name in schemes for r in decode_scheme(bgr, get(name), keys, tests, calibration)]


def best(results: Sequence[DecodeResult]) -> DecodeResult:
    return min(results, key=lambda r: (r.corrected_p, -r.matches))
