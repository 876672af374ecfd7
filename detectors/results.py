"""Typed, JSON-serialisable results: one :class:`Evidence` per detector, one :class:`Verdict` per image."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from enum import Enum


class Signal(str, Enum):
    """What a piece of evidence points to."""

    SYNTHETIC = "synthetic"  # declares or indicates AI generation
    CAPTURE = "capture"  # declares a camera capture (only a manifest can)
    TAMPERED = "tampered"  # credentials present but broken
    NONE = "none"  # looked, found nothing
    UNCERTAIN = "uncertain"  # a classifier score in its abstention band
    SKIPPED = "skipped"  # could not look (image too small, format unsupported)
    ERROR = "error"  # the detector failed on this input


class Strength(str, Enum):
    """How far a piece of evidence can be trusted, independent of its direction."""

    DECLARED_TRUSTED = "declared_trusted"  # cryptographically valid, signer on the trust list
    DECLARED = "declared"  # cryptographically valid, signer not on the trust list
    STRONG = "strong"  # statistical detection with a calibrated false-positive rate <= 1e-6
    MODERATE = "moderate"  # a forgeable public mark, or a calibrated classifier above threshold
    WEAK = "weak"  # metadata: trivially added or removed
    NONE = "none"


class Label(str, Enum):
    SYNTHETIC = "synthetic"
    LIKELY_SYNTHETIC = "likely_synthetic"
    INCONCLUSIVE = "inconclusive"
    NO_EVIDENCE = "no_evidence_of_synthesis"
    CAPTURE_DECLARED = "capture_declared"
    ERROR = "error"


LABEL_MEANING = {
    Label.SYNTHETIC: "synthetic: declared by a valid manifest or carries a detected keyed watermark",
    Label.LIKELY_SYNTHETIC: "likely synthetic: weaker or forgeable evidence of generation",
    Label.INCONCLUSIVE: "inconclusive: evidence is broken, conflicting or could not be read",
    Label.NO_EVIDENCE: "no evidence of synthesis found (which is not proof of authenticity)",
    Label.CAPTURE_DECLARED: "capture declared by a trusted C2PA manifest",
    Label.ERROR: "error: the file could not be checked",
}


@dataclass
class Evidence:
    detector: str
    family: str  # c2pa | watermark | metadata | classifier
    signal: Signal
    strength: Strength
    summary: str  # one sentence: what was found and why it matters
    p_value: float | None = None
    probability: float | None = None
    state: str | None = None  # e.g. the C2PA validation state
    details: dict = field(default_factory=dict)
    error: str | None = None
    # How AI took part, as this evidence states it (provenance.c2pa.vocabulary.AiInvolvement);
    # None when the detector cannot tell (e.g. a watermark marks AI content but not how it was made).
    ai_involvement: str | None = None

    def to_dict(self) -> dict:
        out = asdict(self)
        out["signal"] = self.signal.value
        out["strength"] = self.strength.value
        return _finite(out)


@dataclass
class Verdict:
    source: str
    label: Label
    reasons: list[str]
    evidence: list[Evidence] = field(default_factory=list)
    image: dict | None = None
    error: str | None = None
    seconds: float = 0.0
    ai_involvement: str | None = None  # from the evidence the label rests on; see detectors.fusion

    @property
    def meaning(self) -> str:
        return LABEL_MEANING[self.label]

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "label": self.label.value,
            "meaning": self.meaning,
            "ai_involvement": self.ai_involvement,
            "reasons": list(self.reasons),
            "evidence": [e.to_dict() for e in self.evidence],
            "image": self.image,
            "error": self.error,
            "seconds": round(self.seconds, 4),
        }

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)


def _finite(value):
    """JSON has no NaN/inf: non-finite floats become null (JSON-valid, and not mistaken for a number)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
