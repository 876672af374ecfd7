"""The ``c2pa`` detector: validate an image's C2PA manifest and report what origin it declares.

Signal and strength:
  no manifest                        -> none
  Trusted/Valid, synthetic declared  -> synthetic, declared_trusted / declared (signer not trusted)
  Trusted/Valid, capture declared    -> capture, declared_trusted / declared (signer not trusted)
  Trusted/Valid, neither             -> none (the summary says what it does declare)
  Invalid                            -> tampered: the credentials were broken after signing, so
                                        nothing they declare can be relied on
  unsupported format, remote-only    -> skipped; unparseable C2PA data -> error
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

from provenance.c2pa.reading import ManifestReader, ManifestReadError, ManifestReport
from provenance.c2pa.vocabulary import GENERATIVE_AI, SYNTHETIC
from provenance.imageio import LoadedImage

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength


@dataclass(frozen=True)
class C2paDetectorConfig:
    trust_anchors: tuple[Path, ...] = field(default_factory=tuple)  # PEM files or directories of them
    use_trust_store: bool = True  # also trust the user's and the shipped trust store


@register("c2pa")
class C2paManifestDetector(Detector):
    name = "c2pa"
    family = "c2pa"

    def __init__(self, trust_anchors: Sequence[str | Path] = (), use_trust_store: bool = True):
        self.config = C2paDetectorConfig(tuple(Path(p) for p in trust_anchors), use_trust_store)
        # Reads the anchors now, so a bad --trust file fails once, up front, not per image.
        self.reader = ManifestReader(self.config.trust_anchors, use_trust_store=use_trust_store)

    def detect(self, image: LoadedImage) -> Evidence:
        try:
            report = self.reader.read(image.data, image.mime_type)
        except ManifestReadError as exc:
            signal = Signal.ERROR if exc.kind == "unreadable" else Signal.SKIPPED
            summary = {
                "unsupported": f"C2PA cannot be read from {image.format} files",
                "remote": "the C2PA manifest is stored remotely and was not fetched",
                "unreadable": "C2PA data is present but could not be parsed",
            }[exc.kind]
            return self.evidence(signal, Strength.NONE, summary, error=str(exc))
        if report is None:
            return self.evidence(Signal.NONE, Strength.NONE, "no C2PA manifest", details={"manifest": False})

        details = _details(report)
        state = report.validation_state
        if not report.valid:
            return self.evidence(Signal.TAMPERED, Strength.NONE, _invalid_summary(report), state=state,
                                 details=details)

        strength = Strength.DECLARED_TRUSTED if report.trusted else Strength.DECLARED
        trust_note = "" if report.trusted else " (signer not on the trust list)"
        subject = f"{_state_phrase(report)} C2PA manifest by {report.signer.common_name or 'an unnamed signer'}"
        subject += trust_note
        if report.synthetic_declared:
            summary = f"{subject} declares {_synthetic_phrase(report)}"
            return self.evidence(Signal.SYNTHETIC, strength, summary, state=state, details=details)
        if report.capture_declared:
            summary = f"{subject} declares capture ({report.digital_source_type})"
            return self.evidence(Signal.CAPTURE, strength, summary, state=state, details=details)
        origin = (
            f"declares origin {report.digital_source_type}, neither capture nor synthetic"
            if report.digital_source_type
            else "makes no claim about how the image was made"
        )
        summary = f"{subject} {origin}"
        return self.evidence(Signal.NONE, Strength.NONE, summary, state=state, details=details)


def _state_phrase(report: ManifestReport) -> str:
    return "trusted" if report.trusted else "valid"


def _synthetic_phrase(report: ManifestReport) -> str:
    types = report.synthetic_types
    kind = "AI generation" if any(t in GENERATIVE_AI for t in types) else "synthetic (non-AI algorithmic) content"
    declared_in = {a.manifest for a in report.declared_actions if a.digital_source_type in SYNTHETIC}
    where = "" if report.active_manifest in declared_in else " in an earlier manifest it keeps as an ingredient"
    return f"{kind} ({', '.join(types)}){where}"


def _invalid_summary(report: ManifestReport) -> str:
    codes = sorted({f.code for f in report.failures + report.ingredient_failures if f.code})
    text = f"C2PA manifest fails validation ({', '.join(codes) or 'no failure code given'})"
    if report.synthetic_declared:
        text += f"; it declares {_synthetic_phrase(report)}, which suggests but does not prove AI origin"
    elif report.capture_declared:
        text += f"; its capture claim ({report.digital_source_type}) cannot be relied on"
    return text


def _details(report: ManifestReport) -> dict:
    return {
        "manifest": True,
        "validation_state": report.validation_state,
        "trusted": report.trusted,
        "failures": [{"code": f.code, "explanation": f.explanation} for f in report.failures],
        "ingredient_failures": [
            {"code": f.code, "explanation": f.explanation} for f in report.ingredient_failures
        ],
        "active_manifest": report.active_manifest,
        "signer": {
            "common_name": report.signer.common_name,
            "issuer": report.signer.issuer,
            "algorithm": report.signer.algorithm,
        },
        "signed_at": report.signer.signed_at,
        "claim_generator": report.claim_generator,
        "actions": [
            {"action": a.action, "digitalSourceType": a.digital_source_type, "softwareAgent": a.software_agent}
            for a in report.actions
        ],
        "digital_source_type": report.digital_source_type,
        "ai_declared": report.ai_declared,
        "synthetic_declared": report.synthetic_declared,
        "synthetic_declared_in": sorted(
            {a.manifest for a in report.declared_actions if a.digital_source_type in SYNTHETIC}
        ),
        "capture_declared": report.capture_declared,
        "ingredients": {
            "count": len(report.ingredients),
            "items": [
                {
                    "title": i.title,
                    "relationship": i.relationship,
                    "has_manifest": i.manifest is not None,
                    "recorded_failures": i.recorded_failures,
                }
                for i in report.ingredients
            ],
        },
        "generation": report.generation,
        "embedded": report.embedded,
    }
