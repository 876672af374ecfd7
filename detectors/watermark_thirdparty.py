"""Stable Diffusion reference-script watermarks (SD 1.x, 2.x, SDXL): public, forgeable marks.

Each (message, colour path) is one test with its own calibrated null (fixed words are not keyed,
so the null is measured per message and path); the smallest p-value is multiplied by the number
of tests and compared with 1e-6.
"""
from __future__ import annotations

import numpy as np

from provenance.imageio import LoadedImage
from provenance.watermark import null_model as wm_calibration
from provenance.watermark import fast, thirdparty
from provenance.watermark.size import size_problem

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength


@register("sd-watermark")
class StableDiffusionWatermarkDetector(Detector):
    name = "sd-watermark"
    family = "watermark"

    def __init__(self, calibration: wm_calibration.Calibration | None = None):
        self.calibration = calibration or wm_calibration.Calibration()

    def scores(self, bgr: "np.ndarray | fast.Transforms") -> list[dict]:
        """One record per (mark, path) test; pass an image's shared :class:`fast.Transforms` to reuse
        the uint8 path's dwtDct votes that our keyed-mark detector computes too."""
        tests = thirdparty.tests()
        counts = thirdparty.match_counts(thirdparty.path_votes(bgr))
        out = []
        for mark, path in tests:
            name = thirdparty.test_name(mark, path)
            matches = counts[name]
            p = self.calibration.null(name).p_value(matches)
            out.append({"test": name, "mark": mark.label, "path": path, "matches": matches, "bits": mark.length,
                        "p_value": p, "corrected_p": min(1.0, p * len(tests))})
        return out

    def detect(self, image: LoadedImage) -> Evidence:
        too_small = size_problem(image.width, image.height, "SD watermarks")
        if too_small:
            return self.evidence(Signal.SKIPPED, Strength.NONE, too_small)
        scores = self.scores(fast.of_image(image))  # shared with our keyed-mark detector
        top = min(scores, key=lambda s: (s["corrected_p"], -s["matches"] / s["bits"]))
        details = {"best": top["test"], "matches": top["matches"], "bits": top["bits"], "tests": len(scores),
                   "results": scores}
        if top["corrected_p"] <= wm_calibration.TARGET_FPR:
            return self.evidence(
                Signal.SYNTHETIC, Strength.MODERATE,
                f"evidence of the {top['mark']} reference-script watermark (a public, forgeable mark): "
                f"{top['matches']}/{top['bits']} bits on the {top['path']} path, corrected p = {top['corrected_p']:.1e}",
                p_value=top["corrected_p"], details=details,
            )
        return self.evidence(
            Signal.NONE, Strength.NONE,
            f"no Stable Diffusion reference-script watermark (best corrected p = {top['corrected_p']:.2g}); "
            "these marks are often absent or destroyed by re-encoding, so this says little",
            p_value=top["corrected_p"], details=details,
        )
