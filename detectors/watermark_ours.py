"""Our keyed invisible watermark (learned, dwtDct and dwtDctSvd by default, rivaGan on request).

Decision: a p-value for the sync bits, Bonferroni-corrected by the number of (scheme, key) tests
(and the learned scheme's views), at <= 1e-6: the calibrated null of the match count for the
classical schemes (``provenance.watermark.null_model``), the exact weighted sign test of the
decoder's confidences for the learned one (``provenance.watermark.soft_sync``). The BCH-protected ID
is read only once the mark is detected, and never decides.
"""
from __future__ import annotations

from typing import Sequence

from provenance.imageio import LoadedImage
from provenance.watermark import null_model as wm_calibration
from provenance.watermark import decision, fast, get, payload
from provenance.watermark.decision import DEFAULT_SCHEMES
from provenance.watermark.size import size_problem

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength


@register("watermark")
class KeyedWatermarkDetector(Detector):
    name = "watermark"
    family = "watermark"

    def __init__(
        self,
        schemes: Sequence[str] = DEFAULT_SCHEMES,
        keys: Sequence[str] = (payload.DEFAULT_KEY,),
        calibration: wm_calibration.Calibration | None = None,
    ):
        if not schemes or not keys:
            raise ValueError("the watermark detector needs at least one scheme and one key")
        self.schemes = [get(name) for name in schemes]  # rivaGan opens its ONNX sessions on first use
        self.keys = tuple(keys)
        self.calibration = calibration or wm_calibration.Calibration()

    @property
    def relative_cost(self) -> int:  # the classical schemes share ~20 ms of transforms; learned ~40 ms
        return 20 + 40 * sum(scheme.name == "learned" for scheme in self.schemes)

    @property
    def tests(self) -> int:
        return len(self.schemes) * len(self.keys)

    def detect(self, image: LoadedImage) -> Evidence:
        too_small = size_problem(image.width, image.height, "invisible watermarks")
        if too_small:
            return self.evidence(Signal.SKIPPED, Strength.NONE, too_small)
        transforms = fast.of_image(image)  # shared with the SD-watermark detector
        results = [
            r for scheme in self.schemes
            for r in decision.decode_scheme(transforms, scheme, self.keys, self.tests, self.calibration)
        ]
        top = decision.best(results)
        details = {
            "scheme": top.scheme,
            "matches": top.matches,
            "bits": top.sync_bits,
            "statistic": top.statistic,
            "id": top.id_text,
            "keys_tried": [decision.key_label(k) for k in self.keys],
            "schemes_tried": [s.name for s in self.schemes],
            "tests": self.tests,
            "results": [r.to_dict() for r in results],
            # what read each learned scheme: onnxruntime-int8 where the CPU has VNNI, else float32
            "backends": {s.name: s.graph_precision for s in self.schemes if hasattr(type(s), "graph_precision")},
        }
        if top.watermark_id is not None:
            details["generator"] = top.watermark_id.generator
            details["serial"] = top.watermark_id.serial
        if top.detected:
            public = "; the key is the public default, so anyone could have added this mark" if top.key.startswith("default") else ""
            return self.evidence(
                Signal.SYNTHETIC, Strength.STRONG,
                f"keyed invisible watermark found ({top.scheme}, {top.evidence_text}, "
                f"corrected p = {top.corrected_p:.1e}; {top.id_text}){public}",
                p_value=top.corrected_p, details=details,
            )
        return self.evidence(
            Signal.NONE, Strength.NONE,
            f"no keyed invisible watermark found (best: {top.scheme}, {top.evidence_text}, "
            f"corrected p = {top.corrected_p:.2g}); a missing mark is not proof of authenticity, "
            "since cropping, rotation or heavy re-encoding removes it",
            p_value=top.corrected_p, details=details,
        )
