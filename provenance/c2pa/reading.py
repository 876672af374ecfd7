"""Read and validate the C2PA manifest of an asset held in memory, into a typed report.

Validation is c2pa's: the state is ``Trusted`` (valid, signer chains to one of our anchors),
``Valid`` (valid, signer unknown: ``signingCredential.untrusted``) or ``Invalid``. On top of that
this module answers the question provenance cares about: what origin does the manifest declare?
Real manifests say it in several places, and each finding is a :class:`Declaration` naming the
manifest and the field:

* an action's standard ``digitalSourceType`` (v1 and v2 actions, any action: created, opened,
  placed, edited, ...);
* vendor-prefixed action parameters, e.g. Adobe Firefly's ``c2pa.opened`` with
  ``com.adobe.digitalSourceType`` / ``com.adobe.modelId`` / ``com.adobe.modelVersion``;
* the ingredients' own manifests: through ``parentOf`` an edit of an AI image is AI-derived; through
  ``componentOf`` an AI ingredient placed in a composite makes it ``compositeWithTrainedAlgorithmicMedia``;
* a ``softwareAgent`` or claim generator naming a generator (weak on its own: no origin is stated).
"""
from __future__ import annotations

import io
import json
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from .sniff import may_hold_manifest
from .trust import TrustAnchor, load_trust_anchors

if TYPE_CHECKING:
    import c2pa
from .vocabulary import (
    CAPTURE,
    GENERATIVE_AI,
    SYNTHETIC,
    c2pa_mime_type,
    describe_source_type,
    generator_named_in,
    most_involved,
    source_type_name,
)

ORIGIN_ACTIONS = ("c2pa.created", "c2pa.opened")
# Actions that change content that already exists: a synthetic source type on one of them
# describes what was added (e.g. generative fill), so the asset is a composite, not generated whole.
CONTRIBUTING_ACTIONS = ("c2pa.edited", "c2pa.placed")


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
    assertion: str = "c2pa.actions.v2"  # label of the actions assertion that holds it
    source_type_field: str | None = None  # "digitalSourceType" or e.g. "parameters.com.adobe.digitalSourceType"
    model: str | None = None  # a model named in vendor parameters (e.g. com.adobe.modelId + modelVersion)

    @property
    def field_path(self) -> str:
        return f"{self.assertion} {self.action} {self.source_type_field or 'softwareAgent'}"


@dataclass(frozen=True)
class Declaration:
    """One statement about origin found in the manifest store, and what it means for this asset.

    ``applies_as`` differs from ``source_type`` when the statement comes through an ingredient:
    an AI image placed as a ``componentOf`` ingredient makes the asset a composite with AI.
    ``generator`` alone (a softwareAgent or claim generator naming a generator) states no origin.
    """

    manifest: str  # label of the manifest that holds the field
    field: str  # e.g. "c2pa.actions.v2 c2pa.opened parameters.com.adobe.digitalSourceType"
    source_type: str | None  # what the field says (IPTC name)
    applies_as: str | None  # what it makes this asset; None when it does not describe it
    route: tuple[str, ...] = ()  # ingredients from the active manifest to ``manifest``, e.g. ("parentOf 'a.jpg'",)
    model: str | None = None
    generator: str | None = None  # a generator named by softwareAgent / claim generator

    @property
    def involvement(self) -> str | None:
        return describe_source_type(self.applies_as).involvement if self.applies_as else None

    @property
    def via_ingredient(self) -> bool:
        return bool(self.route)

    def to_dict(self) -> dict:
        meaning = describe_source_type(self.applies_as).meaning if self.applies_as else None
        return {"manifest": self.manifest, "field": self.field, "source_type": self.source_type,
                "applies_as": self.applies_as, "ai_involvement": self.involvement, "meaning": meaning,
                "via": list(self.route), "model": self.model, "generator": self.generator}


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
    declarations: list[Declaration]  # every origin statement, with what it means for this asset
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
        return any(d.applies_as in GENERATIVE_AI for d in self.declarations)

    @property
    def synthetic_declared(self) -> bool:
        return any(d.applies_as in SYNTHETIC for d in self.declarations)

    @property
    def synthetic_declarations(self) -> list[Declaration]:
        return [d for d in self.declarations if d.applies_as in SYNTHETIC]

    @property
    def synthetic_types(self) -> list[str]:
        return sorted({d.applies_as for d in self.synthetic_declarations})

    @property
    def generators_named(self) -> list[Declaration]:
        """softwareAgent / claim generator fields naming a generator: weak, they state no origin."""
        return [d for d in self.declarations if d.generator and not d.applies_as]

    @property
    def ai_involvement(self) -> str | None:
        return most_involved(d.involvement for d in self.declarations)

    @property
    def capture_declared(self) -> bool:
        return self.digital_source_type in CAPTURE and not self.synthetic_declared


# c2pa's native reader can leave threads or locks behind: a child forked after this process read a
# PDF manifest deadlocks in its own reader (measured). Worker pools ask before forking this process.
_native_reader_used = False


def native_reader_used() -> bool:
    """Whether this process has used c2pa's native reader (then it must not be forked to check files)."""
    return _native_reader_used


class ManifestReader:
    """Validates manifests against a fixed set of trust anchors; build once, read many files.

    Remote manifests are never fetched: reading a file must not reach out to a URL it names.
    """

    def __init__(self, trust_anchors: Sequence[str | Path] = (), *, use_trust_store: bool = True):
        self.anchors: list[TrustAnchor] = load_trust_anchors(trust_anchors, use_trust_store=use_trust_store)
        self._context: "c2pa.Context | None" = None

    def _get_context(self) -> "c2pa.Context":
        import c2pa

        global _native_reader_used
        _native_reader_used = True
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
        if not may_hold_manifest(data, mime_type):
            return None
        import c2pa

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
        for label, manifest, _ in _chain(manifests, active_label)
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
        declarations=_declarations(manifests, active_label),
        digital_source_type=origin,
        origin_manifest=origin_label,
        ingredients=[_ingredient(i) for i in active.get("ingredients") or []],
        generation=next(
            (a.get("data") for a in active.get("assertions") or [] if a.get("label") == "com.provenance.generation"),
            None,
        ),
        embedded=embedded,
    )


def _chain(manifests: dict[str, dict], active_label: str) -> Iterator[tuple[str, dict, tuple[tuple[str, str], ...]]]:
    """The active manifest and every manifest reachable through its ingredients, each with its
    route: the (relationship, title) of each ingredient on the way."""
    seen = {active_label}
    queue: deque[tuple[str, tuple[tuple[str, str], ...]]] = deque([(active_label, ())])
    while queue:
        label, route = queue.popleft()
        manifest = manifests.get(label)
        if manifest is None:
            continue
        yield label, manifest, route
        for ingredient in manifest.get("ingredients") or []:
            child = ingredient.get("active_manifest")
            if child and child not in seen:
                seen.add(child)
                step = (str(ingredient.get("relationship") or "componentOf"), str(ingredient.get("title") or child))
                queue.append((child, route + (step,)))


# What a synthetic ingredient placed into a composite makes of the composite.
_AS_COMPONENT = {
    "trainedAlgorithmicMedia": "compositeWithTrainedAlgorithmicMedia",
    "trainedAlgorithmicData": "compositeWithTrainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia": "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia": "compositeSynthetic",
    "compositeSynthetic": "compositeSynthetic",
}


def _applies_as(source_type: str, route: tuple[tuple[str, str], ...], action: str = "") -> str | None:
    """What a source type declared by ``action`` in a manifest on ``route`` means for the active asset.

    Through parentOf (this asset is an edit of that one) the origin carries over; through
    componentOf (that asset was placed into this one) only a synthetic origin carries over, as a
    composite; through inputTo (e.g. a reference image given to a generator) nothing does. On an
    edit or a placement, a synthetic source type also makes a composite.
    """
    relationships = {relationship for relationship, _ in route}
    if relationships <= {"parentOf"}:
        return _AS_COMPONENT.get(source_type, source_type) if action in CONTRIBUTING_ACTIONS else source_type
    if relationships <= {"parentOf", "componentOf"}:
        return _AS_COMPONENT.get(source_type)
    return None


def _declarations(manifests: dict[str, dict], active_label: str) -> list[Declaration]:
    found: list[Declaration] = []
    for label, manifest, route in _chain(manifests, active_label):
        via = tuple(f"{relationship} {title!r}" for relationship, title in route)
        direct_line = {relationship for relationship, _ in route} <= {"parentOf"}
        for action in _actions(label, manifest):
            if action.digital_source_type:
                found.append(Declaration(label, action.field_path, action.digital_source_type,
                                         _applies_as(action.digital_source_type, route, action.action), via,
                                         model=action.model or action.software_agent,
                                         generator=generator_named_in(action.software_agent) if direct_line else None))
            elif direct_line and generator_named_in(action.software_agent):
                found.append(Declaration(label, action.field_path, None, None, via, model=action.software_agent,
                                         generator=generator_named_in(action.software_agent)))
        generator = generator_named_in(_claim_generator(manifest))
        if direct_line and generator:
            found.append(Declaration(label, "claim_generator_info", None, None, via, generator=generator))
    return found


def _origin(manifests: dict[str, dict], active_label: str) -> tuple[str | None, str | None]:
    """The source type of the first created/opened action, following opened -> parent manifest."""
    label: str | None = active_label
    seen: set[str] = set()
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
    """Actions of v1 (``c2pa.actions``, softwareAgent a string) and v2 (``c2pa.actions.v2``) assertions."""
    for assertion in manifest.get("assertions") or []:
        assertion_label = str(assertion.get("label", ""))
        if not assertion_label.startswith("c2pa.actions"):
            continue
        for action in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(action, dict):
                continue
            agent = action.get("softwareAgent")
            if isinstance(agent, dict):
                agent = " ".join(str(agent[k]) for k in ("name", "version") if agent.get(k)) or None
            parameters = action.get("parameters") if isinstance(action.get("parameters"), dict) else {}
            source_type, field = _source_type_field(action, parameters)
            yield ActionRecord(
                manifest=label,
                action=str(action.get("action", "")),
                digital_source_type=source_type_name(source_type),
                software_agent=agent if isinstance(agent, str) else None,
                assertion=assertion_label,
                source_type_field=field,
                model=_vendor_model(parameters),
            )


def _source_type_field(action: dict, parameters: dict) -> tuple[str | None, str | None]:
    """The action's source type and where it was written: the standard field first, then a
    parameter (vendors prefix their own, e.g. ``com.adobe.digitalSourceType``)."""
    if isinstance(action.get("digitalSourceType"), str):
        return action["digitalSourceType"], "digitalSourceType"
    for key, value in parameters.items():
        if isinstance(value, str) and (key == "digitalSourceType" or key.endswith(".digitalSourceType")):
            return value, f"parameters.{key}"
    return None, None


def _vendor_model(parameters: dict) -> str | None:
    """A model named in vendor parameters (``<vendor>.modelId`` / ``.modelVersion``)."""
    def value(suffix: str) -> str | None:
        return next((str(v) for k, v in parameters.items() if k.endswith(suffix) and isinstance(v, (str, int, float))),
                    None)

    model, version = value(".modelId"), value(".modelVersion")
    if model and version and version.startswith(model):
        return version
    return " ".join(part for part in (model, version) if part) or None


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
