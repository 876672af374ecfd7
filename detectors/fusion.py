"""Fuse per-detector evidence into one verdict with reasons.

The rule is ordered by how much each kind of evidence can bear, and it is deliberately
asymmetric: calling a real news photo "synthetic" is the worst failure, so only evidence with a
cryptographic or calibrated (FPR <= 1e-6) basis yields ``synthetic``; forgeable or weak signals
yield at most ``likely_synthetic``; and nothing but a trusted manifest yields ``capture_declared``.
When the only synthetic evidence comes from trained classifiers, they must not contradict each other:
one above its threshold while another is confident the image is not synthetic (calibrated
P(synthetic) <= 5%, so confidence means the same for every classifier) is ``inconclusive``. Each
classifier alone is set for <= 1% false positives; this keeps them together from adding up theirs.
Likewise a classifier that abstains (uncertain band) does not outweigh one that is confident.

Alongside the label, :func:`ai_involvement` says *how* AI took part (generated vs edited or
composited with AI vs algorithmic non-AI vs capture ...), taken from the evidence the label rests on.
"""
from __future__ import annotations

from typing import Sequence

from .results import Evidence, Label, Signal, Strength

CONFIDENTLY_NOT_SYNTHETIC = 0.05  # calibrated P(synthetic) at or below which a classifier contradicts another
DECISIVE = (Strength.DECLARED_TRUSTED, Strength.DECLARED, Strength.STRONG)
_RANK = {s: i for i, s in enumerate(
    [Strength.DECLARED_TRUSTED, Strength.DECLARED, Strength.STRONG, Strength.MODERATE, Strength.WEAK, Strength.NONE]
)}


def fuse(evidence: Sequence[Evidence]) -> tuple[Label, list[str]]:
    synthetic = sorted((e for e in evidence if e.signal == Signal.SYNTHETIC), key=lambda e: _RANK[e.strength])
    capture = [e for e in evidence if e.signal == Signal.CAPTURE]
    tampered = [e for e in evidence if e.signal == Signal.TAMPERED]
    unable = [e for e in evidence if e.signal in (Signal.ERROR, Signal.SKIPPED)]
    uncertain = [e for e in evidence if e.signal == Signal.UNCERTAIN]
    trusted_capture = [e for e in capture if e.strength == Strength.DECLARED_TRUSTED]

    reasons = [e.summary for e in synthetic]
    if synthetic and synthetic[0].strength in DECISIVE:
        label = Label.SYNTHETIC
        if capture:
            reasons.append("conflict: " + capture[0].summary)
    elif trusted_capture:
        if synthetic:
            label = Label.INCONCLUSIVE
            reasons.append("conflict: " + trusted_capture[0].summary)
        else:
            label = Label.CAPTURE_DECLARED
            reasons.append(trusted_capture[0].summary)
    elif synthetic:
        dissent = _classifier_dissent(synthetic, evidence)
        label = Label.INCONCLUSIVE if dissent else Label.LIKELY_SYNTHETIC
        reasons.extend("the trained classifiers disagree: " + e.summary for e in dissent)
        reasons.extend(_out_of_scope_reasons(synthetic, evidence))
    elif tampered:
        label = Label.INCONCLUSIVE
        reasons.extend(e.summary for e in tampered)
    elif uncertain and not _classifier_dissent(uncertain, evidence):
        label = Label.INCONCLUSIVE
        reasons.extend(e.summary for e in uncertain)
    elif unable and len(unable) == len(evidence):
        label = Label.INCONCLUSIVE
        reasons.append("no detector could examine this image")
    elif failed := _failed_to_look(evidence):
        label = Label.INCONCLUSIVE
        reasons.append(_FAILED_REASON.format(names=", ".join(e.detector for e in failed)))
    else:
        label = Label.NO_EVIDENCE
        reasons.extend(e.summary for e in capture)  # untrusted capture claims: reported, not relied on
        # valid credentials that claim no AI (e.g. digitalCreation, or no claim at all): said, not weighed
        reasons.extend(e.summary for e in evidence if e.signal == Signal.NONE and e.state)
        reasons.extend(e.summary for e in evidence
                       if e.family == "classifier" and e.signal in (Signal.NONE, Signal.UNCERTAIN))
        reasons.append(
            "no valid AI declaration, known watermark or generator metadata was found; "
            "the absence of marks is not proof that the image is authentic"
        )

    if label in (Label.SYNTHETIC, Label.LIKELY_SYNTHETIC) and tampered:
        reasons.extend(e.summary for e in tampered)
    reasons.extend(_not_examined(unable))
    return label, reasons


def ai_involvement(evidence: Sequence[Evidence], label: Label) -> str | None:
    """How AI took part, from the evidence that decided ``label``; None when none of it says.

    A synthetic label takes the strongest synthetic evidence that states an involvement (a
    watermark or classifier marks AI content without saying whether it was generated whole or
    edited in). Other labels take the origin declared by a *trusted* manifest (e.g. capture,
    digital creation): an untrusted signer's claim is reported in the reasons but not relied on.
    An inconclusive verdict takes none, since its evidence conflicts or is broken.
    """
    if label in (Label.SYNTHETIC, Label.LIKELY_SYNTHETIC):
        ranked = sorted((e for e in evidence if e.signal == Signal.SYNTHETIC), key=lambda e: _RANK[e.strength])
    elif label in (Label.CAPTURE_DECLARED, Label.NO_EVIDENCE):
        ranked = [e for e in evidence if e.signal in (Signal.CAPTURE, Signal.NONE) and e.state == "Trusted"]
    else:
        return None
    return next((e.ai_involvement for e in ranked if e.ai_involvement), None)


def _not_examined(unable: Sequence[Evidence]) -> list[str]:
    """One line per distinct reason, naming every detector it applies to (e.g. "not an image")."""
    by_reason: dict[str, list[str]] = {}
    for e in unable:
        by_reason.setdefault(e.error or e.summary, []).append(e.detector)
    return [f"not examined by {', '.join(names)}: {reason}" for reason, names in by_reason.items()]


def _classifier_dissent(claims: Sequence[Evidence], evidence: Sequence[Evidence]) -> list[Evidence]:
    """Classifiers confident the image is not synthetic, when classifiers are all that make ``claims``,
    and trained on every kind of generator the claiming classifiers were (``details["scope"]``): a
    classifier that knows only our own generators saying "not synthetic" means "not like our
    generators", no evidence against one trained on real-world generators that fires."""
    if any(e.family != "classifier" for e in claims):
        return []
    claimed = set().union(*(_scope(e) for e in claims))
    return [e for e in evidence if e.family == "classifier" and e.signal == Signal.NONE
            and e.probability is not None and e.probability <= CONFIDENTLY_NOT_SYNTHETIC
            and _covers(e, claimed)]


def _out_of_scope_reasons(claims: Sequence[Evidence], evidence: Sequence[Evidence]) -> list[str]:
    """Say why a confident "not synthetic" did not count, so the verdict does not look self-contradictory."""
    if any(e.family != "classifier" for e in claims):
        return []
    claimed = set().union(*(_scope(e) for e in claims))
    return [f"not weighed: {e.detector} (P(synthetic) = {e.probability:.2f}) was trained only on "
            f"{', '.join(sorted(_scope(e))).replace('-', ' ')}, so its low score says nothing about other generators"
            for e in evidence if e.family == "classifier" and e.signal == Signal.NONE and e.probability is not None
            and e.probability <= CONFIDENTLY_NOT_SYNTHETIC and not _covers(e, claimed)]


def _scope(e: Evidence) -> set[str]:
    """The parts of what a classifier was trained on (empty when its evidence does not say)."""
    scope = (e.details or {}).get("scope")
    return set(scope.split("+")) if scope else set()


def _covers(e: Evidence, claimed: set[str]) -> bool:
    """A classifier whose evidence does not say what it was trained on covers everything (the rule as
    it was before scopes were recorded)."""
    return not _scope(e) or claimed <= _scope(e)


# A detector that should have looked but failed (error, out of memory, out of time) leaves a gap: the
# absence of its evidence means nothing, so "no evidence of synthesis" would claim more than we know.
# (Skipped is different: the detector does not apply, e.g. too small or a format C2PA cannot carry.)
_FAILED_REASON = "{names} failed on this image, so nothing can be said from the absence of evidence"


def _failed_to_look(evidence: Sequence[Evidence]) -> list[Evidence]:
    return [e for e in evidence if e.signal == Signal.ERROR]
