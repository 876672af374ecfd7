"""Stable Diffusion reference-script watermarks (SD 1.x, 2.x, SDXL): public, forgeable marks.

Two decisions per fixed word, each with its own null calibrated on unmarked photos:

* hard: imwatermark's bits matched on the colour paths the reference embedders use;
* soft (:mod:`provenance.watermark.soft_marks`): a t statistic of the decoded coefficients'
  phases against the known word, on every colour path (uint8, float32, float32 with swapped
  channels). It still reads marks that re-encoding or dwtDct's weak 0-bits leave at 76-86 of 136
  hard bits.

Every (word, path, statistic) is one test; the smallest p-value is multiplied by the number of
tests and compared with 1e-6.
"""
from __future__ import annotations

import numpy as np

from provenance.imageio import LoadedImage
from provenance.watermark import null_model as wm_calibration
from provenance.watermark import fast, soft_marks, thirdparty
from provenance.watermark.size import size_problem

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength


@register("sd-watermark")
class StableDiffusionWatermarkDetector(Detector):
    relative_cost = 15
    name = "sd-watermark"
    family = "watermark"

    def __init__(self, calibration: wm_calibration.Calibration | None = None):
        self.calibration = calibration or wm_calibration.Calibration()

    def scores(self, bgr: "np.ndarray | fast.Transforms") -> list[dict]:
        """One record per test, hard (``decision: "hard"``, matched bits) and soft (``"soft"``, t),
        each with its calibrated threshold after the correction for all tests; pass an image's
        shared :class:`fast.Transforms` to reuse the transforms our keyed-mark detector computes too."""
        transforms = fast.transforms(bgr)
        tests = soft_marks.test_count()
        level = wm_calibration.TARGET_FPR / tests
        out = []
        counts = thirdparty.match_counts(thirdparty.path_votes(transforms))
        for mark, path in thirdparty.tests():
            name = thirdparty.test_name(mark, path)
            null = self.calibration.null(name)
            p = null.p_value(counts[name])
            out.append({"test": name, "decision": "hard", "mark": mark.label, "path": path,
                        "matches": counts[name], "bits": mark.length, "threshold": null.threshold(level),
                        "p_value": p, "corrected_p": min(1.0, p * tests)})
        statistics = soft_marks.soft_statistics(transforms)
        for mark, path in soft_marks.soft_tests():
            name = soft_marks.soft_test_name(mark, path)
            null = self.calibration.null(name)
            p = null.p_value(statistics[name])
            out.append({"test": name, "decision": "soft", "statistic": soft_marks.STATISTIC, "mark": mark.label,
                        "path": path, "t": round(statistics[name], 3), "bits": mark.length,
                        "threshold": round(null.threshold(level), 3), "p_value": p, "corrected_p": min(1.0, p * tests)})
        return out

    def detect(self, image: LoadedImage) -> Evidence:
        too_small = size_problem(image.width, image.height, "SD watermarks")
        if too_small:
            return self.evidence(Signal.SKIPPED, Strength.NONE, too_small)
        shared = fast.of_image(image)  # shared with our keyed-mark detector
        for options in thirdparty.PATH_OPTIONS.values():
            if options["float_path"]:
                # the float paths first: only this detector reads them, while our keyed-mark
                # detector may be computing the uint8 path on another thread right now
                shared.largest_coefficients(**options)
        scores = self.scores(shared)
        top = min(scores, key=lambda s: s["corrected_p"])
        hard = [s for s in scores if s["decision"] == "hard"]
        best_hard = min(hard, key=lambda s: (s["corrected_p"], -s["matches"] / s["bits"]))
        details = {"best": top["test"], "decision": top["decision"], "tests": len(scores),
                   "best_hard": {k: best_hard[k] for k in ("test", "matches", "bits", "threshold", "corrected_p")},
                   "results": scores}
        if top["corrected_p"] <= wm_calibration.TARGET_FPR:
            same_word_hard = min((s for s in hard if s["mark"] == top["mark"]), key=lambda s: s["corrected_p"])
            return self.evidence(
                Signal.SYNTHETIC, Strength.MODERATE,
                f"evidence of the {top['mark']} reference-script watermark (a public, forgeable mark): "
                f"{_describe(top, len(scores))}, corrected p = {top['corrected_p']:.1e}"
                + ("" if top is same_word_hard else f"; hard decision {_hard_text(same_word_hard)}"),
                p_value=top["corrected_p"], details=details,
            )
        return self.evidence(
            Signal.NONE, Strength.NONE,
            f"no Stable Diffusion reference-script watermark (best corrected p = {top['corrected_p']:.2g} over "
            f"{len(scores)} tests, {_describe(top, len(scores))}); these marks are often absent or destroyed "
            "by re-encoding, so this says little",
            p_value=top["corrected_p"], details=details,
        )


def _hard_text(score: dict) -> str:
    return (f"{score['matches']}/{score['bits']} bits on the {score['path']} path "
            f"(threshold {score['threshold']}/{score['bits']})")


def _describe(score: dict, tests: int) -> str:
    """Which word, path and statistic decided, and its calibrated threshold at FPR 1e-6 over all tests."""
    if score["decision"] == "soft":
        return (f"soft decision {soft_marks.STATISTIC} = {score['t']:.1f} for the {score['mark']} word on the "
                f"{score['path']} path (correlation of the decoded coefficients with the known {score['bits']}-bit "
                f"word; calibrated threshold {score['threshold']:.2f} for FPR 1e-6 over {tests} tests)")
    return (f"hard decision {score['matches']}/{score['bits']} bits of the {score['mark']} word on the "
            f"{score['path']} path (calibrated threshold {score['threshold']}/{score['bits']} for FPR 1e-6 "
            f"over {tests} tests)")
