"""The ``c2pa`` detector: validate an asset's C2PA manifest and report what origin it declares.

Works on every format c2pa reads (images, video, audio, PDF, ...): it needs the bytes, not pixels.

Signal and strength:
  no manifest                        -> none
  Trusted/Valid, synthetic declared  -> synthetic, declared_trusted / declared (signer not trusted);
                                        the declaration may sit in an ingredient's manifest
  Trusted/Valid, capture declared    -> capture, declared_trusted / declared (signer not trusted)
  Trusted/Valid, only a generator named as softwareAgent / claim generator
                                     -> synthetic, weak (a tool name is not a declaration)
  Trusted/Valid, neither             -> none (the summary says what it does declare)
  Invalid                            -> tampered: the credentials were broken after signing, so
                                        nothing they declare can be relied on
  unsupported format, remote-only    -> skipped; unparseable C2PA data -> error
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from provenance.c2pa.sniff import may_hold_manifest
from provenance.c2pa.vocabulary import INVOLVEMENT_ORDER, AiInvolvement, describe_source_type
from provenance.imageio import LoadedImage

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength

if TYPE_CHECKING:  # the reader (c2pa, ssl) is imported when a file may hold a manifest
    from provenance.c2pa.reading import Declaration, ManifestReader, ManifestReport


@dataclass(frozen=True)
class C2paDetectorConfig:
    trust_anchors: tuple[Path, ...] = field(default_factory=tuple)  # PEM files or directories of them
    use_trust_store: bool = True  # also trust the user's and the shipped trust store


@register("c2pa")
class C2paManifestDetector(Detector):
    name = "c2pa"
    family = "c2pa"
    reads_pixels = False

    def __init__(self, trust_anchors: Sequence[str | Path] = (), use_trust_store: bool = True):
        self.config = C2paDetectorConfig(tuple(Path(p) for p in trust_anchors), use_trust_store)
        self._reader: ManifestReader | None = None
        if self.config.trust_anchors:
            _ = self.reader  # the user's anchors are read now, so a bad --trust file fails once, up front

    @property
    def reader(self) -> ManifestReader:
        """The validating reader, built on first need: most photos hold no manifest, and the
        native reader and the trust store cost ~50 ms to load."""
        if self._reader is None:
            from provenance.c2pa.reading import ManifestReader

            self._reader = ManifestReader(self.config.trust_anchors, use_trust_store=self.config.use_trust_store)
        return self._reader

    def detect(self, image: LoadedImage) -> Evidence:
        if not may_hold_manifest(image.data, image.mime_type):
            return self.evidence(Signal.NONE, Strength.NONE, "no C2PA manifest", details={"manifest": False})
        from provenance.c2pa.reading import ManifestReadError

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
        involvement = report.ai_involvement
        if report.synthetic_declared:
            summary = f"{subject} declares {_synthetic_phrase(report)}"
            return self.evidence(Signal.SYNTHETIC, strength, summary, state=state, details=details,
                                 ai_involvement=involvement)
        if report.capture_declared:
            summary = f"{subject} declares capture ({report.digital_source_type})"
            return self.evidence(Signal.CAPTURE, strength, summary, state=state, details=details,
                                 ai_involvement=involvement)
        if report.generators_named:
            named = "; ".join(f"{d.generator} in {_where(d)}" for d in report.generators_named)
            summary = (f"{subject} names a generator ({named}) but declares no origin "
                       "(weak: a tool's name is not a statement that this content was generated)")
            return self.evidence(Signal.SYNTHETIC, Strength.WEAK, summary, state=state, details=details)
        if report.digital_source_type:
            info = describe_source_type(report.digital_source_type)
            origin = f"declares origin {info.name} ({info.meaning}), neither capture nor synthetic"
        else:
            origin = "makes no claim about how the content was made"
        summary = f"{subject} {origin}"
        return self.evidence(Signal.NONE, Strength.NONE, summary, state=state, details=details,
                             ai_involvement=involvement)


def _state_phrase(report: ManifestReport) -> str:
    return "trusted" if report.trusted else "valid"


def _primary(declarations: list[Declaration]) -> Declaration:
    """The declaration that best describes the asset: most AI involvement, then its own manifest first."""
    return min(declarations, key=lambda d: (INVOLVEMENT_ORDER.index(d.involvement or AiInvolvement.UNKNOWN),
                                            len(d.route)))


def _where(d: Declaration) -> str:
    if not d.route:
        return f"{d.field} of the active manifest"
    return f"{d.field} of manifest {d.manifest}, ingredient {' > '.join(d.route)}"


def _synthetic_phrase(report: ManifestReport) -> str:
    d = _primary(report.synthetic_declarations)
    model = f", model {d.model}" if d.model else ""
    said = f"{d.source_type}{model}"
    placed = any(step.startswith("componentOf") for step in d.route)
    if d.involvement == AiInvolvement.GENERATED and not d.route:
        return f"AI generation ({said}) in {_where(d)}"
    if d.involvement == AiInvolvement.GENERATED:
        return (f"AI generation ({said}) in an earlier manifest it keeps as an ingredient ({_where(d)}): "
                "this content is derived from AI-generated content")
    if d.involvement == AiInvolvement.EDITED and placed:
        return (f"a composite with AI-generated content ({d.applies_as}): it places an ingredient whose "
                f"manifest declares {said} ({_where(d)})")
    if d.involvement == AiInvolvement.EDITED:
        return f"editing or compositing with AI ({said}) in {_where(d)}"
    return f"synthetic (non-AI algorithmic) content ({d.applies_as}; {said}) in {_where(d)}"


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
        "ai_involvement": report.ai_involvement,
        "declarations": [d.to_dict() for d in report.declarations],
        "synthetic_declared": report.synthetic_declared,
        "synthetic_declared_in": sorted({d.manifest for d in report.synthetic_declarations}),
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
