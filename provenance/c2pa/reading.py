"""Read and validate the C2PA manifest of an image held in memory, into a typed report.

Validation is c2pa's: the state is ``Trusted`` (valid, signer chains to one of our anchors),
``Valid`` (valid, signer unknown: ``signingCredential.untrusted``) or ``Invalid``. On top of that
this module answers the question provenance cares about: what origin does the manifest declare?
It follows the provenance chain through ingredient manifests, so an AI image that was later
opened and re-signed still declares AI.
"""
from __future__ import annotations

import io
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import c2pa

from .trust import TrustAnchor, load_trust_anchors
from .vocabulary import CAPTURE, GENERATIVE_AI, SYNTHETIC, c2pa_mime_type, source_type_name

ORIGIN_ACTIONS = ("c2pa.created", "c2pa.opened")


class ManifestReadError(ValueError):
    """The C2PA data could not be examined. ``kind``: unsupported, remote or unreadable."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class StatusCode:
    code: str
    explanation: str = ""


@dataclass(frozen=True)
class SignerInfo:
    common_name: str | None
    issuer: str | None
    algorithm: str | None
    signed_at: str | None  # only with a time stamp; we sign without one


@dataclass(frozen=True)
class ActionRecord:
    manifest: str  # label of the manifest that holds the action
    action: str
    digital_source_type: str | None  # IPTC name (or the URI when not IPTC's)
    software_agent: str | None


@dataclass(frozen=True)
class IngredientRecord:
    title: str | None
    relationship: str | None
    format: str | None
    manifest: str | None  # the ingredient's own manifest, when it had one
    recorded_failures: list[str]  # failure codes recorded when the ingredient was added


@dataclass
class ManifestReport:
    validation_state: str  # Trusted | Valid | Invalid
    active_manifest: str
    failures: list[StatusCode]  # of the active manifest (signingCredential.untrusted included)
    ingredient_failures: list[StatusCode]  # found when re-validating ingredient manifests now
    signer: SignerInfo
    claim_generator: str | None
    actions: list[ActionRecord]  # of the active manifest
    declared_actions: list[ActionRecord]  # every action with a source type, whole chain
    digital_source_type: str | None  # the origin, following parentOf ingredients
    origin_manifest: str | None
    ingredients: list[IngredientRecord]
    generation: dict | None  # our own com.provenance.generation assertion
    embedded: bool

    @property
    def trusted(self) -> bool:
        return self.validation_state == "Trusted"

    @property
    def valid(self) -> bool:
        return self.validation_state in ("Trusted", "Valid")

    @property
    def ai_declared(self) -> bool:
        return any(a.digital_source_type in GENERATIVE_AI for a in self.declared_actions)

    @property
    def synthetic_declared(self) -> bool:
        return any(a.digital_source_type in SYNTHETIC for a in self.declared_actions)

    @property
    def synthetic_types(self) -> list[str]:
        return sorted({a.digital_source_type for a in self.declared_actions if a.digital_source_type in SYNTHETIC})

    @property
    def capture_declared(self) -> bool:
        return self.digital_source_type in CAPTURE and not self.synthetic_declared


class ManifestReader:
    """Validates manifests against a fixed set of trust anchors; build once, read many files.

    Remote manifests are never fetched: reading a file must not reach out to a URL it names.
    """

    def __init__(self, trust_anchors: Sequence[str | Path] = (), *, use_trust_store: bool = True):
        self.anchors: list[TrustAnchor] = load_trust_anchors(trust_anchors, use_trust_store=use_trust_store)
        self._context: c2pa.Context | None = None

    def _get_context(self) -> c2pa.Context:
        if self._context is None:
            settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
            if self.anchors:
                settings["trust"] = {"user_anchors": "".join(a.pem for a in self.anchors)}
            self._context = c2pa.Context.from_dict(settings)
        return self._context

    def close(self) -> None:
        if self._context is not None:
            self._context.close()
            self._context = None

    def read(self, data: bytes, mime_type: str) -> ManifestReport | None:
        """The report for the manifest in ``data``, or None when there is none."""
        mime_type = c2pa_mime_type(mime_type)
        if mime_type not in c2pa.Reader.get_supported_mime_types():
            raise ManifestReadError("unsupported", f"C2PA is not defined for {mime_type}")
        try:
            reader = c2pa.Reader.try_create(mime_type, io.BytesIO(data), None, self._get_context())
            if reader is None:
                return None
            with reader:
                store = json.loads(reader.json())
                embedded = reader.is_embedded()
        except c2pa.C2paError.NotSupported as exc:
            # The format is one c2pa supports, so the bytes themselves were not recognised.
            raise ManifestReadError(
                "unreadable", f"C2PA reader does not recognise these bytes as {mime_type}: {_first_line(exc)}"
            ) from None
        except c2pa.C2paError as exc:  # base class too: remote-only manifests raise it
            message = _first_line(exc)
            kind = "remote" if "remote" in message.lower() else "unreadable"
            if kind == "remote":
                message = f"manifest is stored remotely and remote fetching is off ({message})"
            raise ManifestReadError(kind, message) from None
        return _report(store, embedded)


def _report(store: dict, embedded: bool) -> ManifestReport:
    manifests: dict[str, dict] = store.get("manifests") or {}
    active_label = store.get("active_manifest") or ""
    active = manifests.get(active_label, {})
    results = store.get("validation_results") or {}
    failures = [_status(f) for f in (results.get("activeManifest") or {}).get("failure", [])]
    ingredient_failures = [
        _status(f)
        for delta in results.get("ingredientDeltas") or []
        for f in (delta.get("validationDeltas") or {}).get("failure", [])
    ]
    if not results and store.get("validation_status"):  # older stores report only the flat list
        failures = [_status(f) for f in store["validation_status"]]

    declared = [
        action
        for label, manifest in _chain(manifests, active_label)
        for action in _actions(label, manifest)
        if action.digital_source_type
    ]
    origin, origin_label = _origin(manifests, active_label)
    signature = active.get("signature_info") or {}
    return ManifestReport(
        validation_state=store.get("validation_state") or "Invalid",
        active_manifest=active_label,
        failures=failures,
        ingredient_failures=ingredient_failures,
        signer=SignerInfo(
            common_name=signature.get("common_name"),
            issuer=signature.get("issuer"),
            algorithm=signature.get("alg"),
            signed_at=signature.get("time"),
        ),
        claim_generator=_claim_generator(active),
        actions=list(_actions(active_label, active)),
        declared_actions=declared,
        digital_source_type=origin,
        origin_manifest=origin_label,
        ingredients=[_ingredient(i) for i in active.get("ingredients") or []],
        generation=next(
            (a.get("data") for a in active.get("assertions") or [] if a.get("label") == "com.provenance.generation"),
            None,
        ),
        embedded=embedded,
    )


def _chain(manifests: dict[str, dict], active_label: str) -> Iterator[tuple[str, dict]]:
    """The active manifest and every manifest reachable through its ingredients."""
    seen = {active_label}
    queue = deque([active_label])
    while queue:
        label = queue.popleft()
        manifest = manifests.get(label)
        if manifest is None:
            continue
        yield label, manifest
        for ingredient in manifest.get("ingredients") or []:
            child = ingredient.get("active_manifest")
            if child and child not in seen:
                seen.add(child)
                queue.append(child)


def _origin(manifests: dict[str, dict], active_label: str) -> tuple[str | None, str | None]:
    """The source type of the first created/opened action, following opened -> parent manifest."""
    label, seen = active_label, set()
    while label and label not in seen:
        seen.add(label)
        manifest = manifests.get(label) or {}
        first = next((a for a in _actions(label, manifest) if a.action in ORIGIN_ACTIONS), None)
        if first is None:
            return None, None
        if first.action == "c2pa.created" or first.digital_source_type:
            return first.digital_source_type, label
        parent = next(
            (i for i in manifest.get("ingredients") or [] if i.get("relationship") == "parentOf"), None
        )
        label = parent.get("active_manifest") if parent else None
    return None, None


def _actions(label: str, manifest: dict) -> Iterator[ActionRecord]:
    for assertion in manifest.get("assertions") or []:
        if not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            agent = action.get("softwareAgent")
            if isinstance(agent, dict):
                agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k)) or None
            yield ActionRecord(
                manifest=label,
                action=str(action.get("action", "")),
                digital_source_type=source_type_name(action.get("digitalSourceType")),
                software_agent=agent if isinstance(agent, str) else None,
            )


def _ingredient(ingredient: dict) -> IngredientRecord:
    recorded = ((ingredient.get("validation_results") or {}).get("activeManifest") or {}).get("failure") or []
    if not recorded:
        recorded = ingredient.get("validation_status") or []
    return IngredientRecord(
        title=ingredient.get("title"),
        relationship=ingredient.get("relationship"),
        format=ingredient.get("format"),
        manifest=ingredient.get("active_manifest"),
        recorded_failures=[str(f.get("code")) for f in recorded if isinstance(f, dict)],
    )


def _claim_generator(manifest: dict) -> str | None:
    info = manifest.get("claim_generator_info")
    if isinstance(info, list) and info and isinstance(info[0], dict):
        return " ".join(str(info[0][k]) for k in ("name", "version") if info[0].get(k)) or None
    generator = manifest.get("claim_generator")
    return str(generator) if generator else None


def _status(entry: dict) -> StatusCode:
    return StatusCode(code=str(entry.get("code", "")), explanation=str(entry.get("explanation", "")))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
