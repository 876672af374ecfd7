"""Metadata markers left by generators: weak evidence (trivially added or stripped), but common.

Only *structured* fields count, never free text written by people: a caption, description,
title, keyword, Artist or Copyright that says "Runway 4L", "a firefly at dusk" or even
"Midjourney" is about the picture, not about the tool that made it. What is read:

* PNG text chunks in a generator's own syntax: AUTOMATIC1111 / Forge "parameters" (Steps, Sampler,
  CFG scale, Seed), ComfyUI "prompt"/"workflow" node graphs (JSON), InvokeAI and NovelAI JSON
  keys, NovelAI's model-hash "Source", Fooocus JSON parameters;
* software fields naming a known generator as a whole token: EXIF Software and
  ProcessingSoftware, PNG "Software", XMP xmp:CreatorTool;
* A1111's parameter block when written to EXIF UserComment (its JPEG/WebP output);
* the IPTC DigitalSourceType in XMP, parsed with an XML parser (whole vocabulary).

C2PA is read by the ``c2pa`` detector. Works on non-image assets too (their XMP).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Any

from provenance.c2pa.vocabulary import (
    CAPTURE,
    SOURCE_TYPE_INFO,
    SYNTHETIC,
    AiInvolvement,
    describe_source_type,
    generator_named_in,
    most_involved,
    source_type_name,
)
from provenance.imageio import LoadedImage

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength

MAX_FIELD_CHARS = 8 * 1024 * 1024  # a ComfyUI workflow can be large; anything bigger is not parsed
MAX_XMP_CHARS = 4 * 1024 * 1024

GENERATION_KEYS = frozenset({
    "steps", "sampler", "sampler_name", "seed", "cfg_scale", "cfg scale", "guidance_scale", "guidance scale",
    "scheduler", "noise_schedule", "denoising_strength", "width", "height", "base_model", "base model",
})
_A1111_STEPS = re.compile(r"Steps: \d+, ")
_NOVELAI_SOURCE = re.compile(r"(Stable Diffusion(?: XL)?|NovelAI Diffusion[\w .]{0,40}) [0-9A-F]{8}")
_DREAM_OPTIONS = re.compile(r"\s-s\s?\d+\s")  # InvokeAI legacy: "prompt" -s 50 -S 42 -W 512 ...

EXIF_SOFTWARE_TAGS = {0x0131: "Software", 0x000B: "ProcessingSoftware"}
EXIF_USER_COMMENT = 0x9286
_XMP_DIGITAL_SOURCE_TYPE = "DigitalSourceType"
_XMP_CREATOR_TOOL = "CreatorTool"
_RDF_RESOURCE = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}resource"
# For packets an XML parser refuses (undeclared prefixes are common): bounded quantifiers only,
# so the scan stays linear in the packet size.
_LOOSE_SOURCE_TYPE = re.compile(
    r"DigitalSourceType[ \t\r\n]{0,8}(?:=[ \t\r\n]{0,8}[\"']|>|[^>]{0,40}?resource=[\"'])"
    r"[ \t\r\n]{0,8}([A-Za-z0-9:/._-]{1,200})"
)


@dataclass(frozen=True)
class MetadataMarker:
    where: str  # e.g. "PNG text 'parameters'", "XMP Iptc4xmpExt:DigitalSourceType", "EXIF Software"
    value: str  # shortened content
    points_to: str  # "ai", "capture" or "other" (an origin that is neither)
    tool: str | None = None
    involvement: str | None = None  # provenance.c2pa.vocabulary.AiInvolvement value

    def to_dict(self) -> dict:
        return {"where": self.where, "value": self.value, "points_to": self.points_to, "tool": self.tool,
                "ai_involvement": self.involvement}


def find_markers(image: Any) -> list[MetadataMarker]:
    """Markers in an image's (or other asset's) text chunks, EXIF and XMP."""
    markers: list[MetadataMarker] = []
    chunks = getattr(image, "text_chunks", {}) or {}
    for key, value in chunks.items():
        tool = _text_chunk_generator(key, value, chunks)
        if tool:
            markers.append(_ai(f"PNG text '{key}'", value, tool))
    for tag, label in EXIF_SOFTWARE_TAGS.items():
        value = _exif_text(image, tag)
        tool = generator_named_in(value)
        if tool:
            markers.append(_ai(f"EXIF {label}", value, tool))
    comment = _exif_text(image, EXIF_USER_COMMENT)
    if comment and _is_a1111_parameters(comment):
        markers.append(_ai("EXIF UserComment", comment, "AUTOMATIC1111 / Forge (generation parameters)"))
    markers.extend(_xmp_markers(getattr(image, "xmp", "") or ""))
    return markers


@register("metadata")
class MetadataDetector(Detector):
    name = "metadata"
    family = "metadata"
    reads_pixels = False

    def detect(self, image: LoadedImage) -> Evidence:
        markers = find_markers(image)
        ai = [m for m in markers if m.points_to == "ai"]
        capture = [m for m in markers if m.points_to == "capture"]
        details = {"markers": [m.to_dict() for m in markers]}
        if ai:
            where = "; ".join(f"{m.where}" + (f" ({m.tool})" if m.tool else "") for m in ai)
            involvement = most_involved(m.involvement for m in ai)
            how = "" if involvement == AiInvolvement.GENERATED else f" [{involvement.replace('_', ' ')}]"
            return self.evidence(
                Signal.SYNTHETIC,
                Strength.WEAK,
                f"generator metadata found{how}: {where} (weak: metadata is easily added or removed)",
                details=details,
                ai_involvement=involvement,
            )
        if capture:
            return self.evidence(
                Signal.NONE,
                Strength.NONE,
                f"metadata claims {capture[0].value} (unsigned, so not relied on)",
                details=details,
            )
        return self.evidence(Signal.NONE, Strength.NONE, "no generator metadata", details=details)


def _ai(where: str, value: str, tool: str | None, involvement: str = AiInvolvement.GENERATED) -> MetadataMarker:
    return MetadataMarker(where, _short(value), "ai", tool, involvement)


def _text_chunk_generator(key: str, value: str, chunks: dict[str, str]) -> str | None:
    """The generator whose own syntax fills this PNG text chunk, if any."""
    name = key.lower()
    if len(value) > MAX_FIELD_CHARS:
        return None
    if name == "parameters":
        if _is_a1111_parameters(value):
            return "AUTOMATIC1111 / Forge (generation parameters)"
        if _generation_json(value):
            return "Fooocus" if "fooocus_scheme" in chunks else "a Stable Diffusion front-end (JSON parameters)"
        return None
    if name == "prompt":
        graph = _json_object(value)
        if graph and any(isinstance(node, dict) and "class_type" in node and "inputs" in node
                         for node in graph.values()):
            return "ComfyUI (prompt graph)"
        return None
    if name == "workflow":
        graph = _json_object(value)
        if graph and isinstance(graph.get("nodes"), list) and ("links" in graph or "last_node_id" in graph):
            return "ComfyUI (workflow)"
        return None
    if name == "invokeai_metadata" and _generation_json(value):
        return "InvokeAI"
    if name == "invokeai_graph" and isinstance((_json_object(value) or {}).get("nodes"), (dict, list)):
        return "InvokeAI (graph)"
    if name == "sd-metadata" and {"image", "model_weights", "app_id"} & set(_json_object(value) or {}):
        return "InvokeAI (legacy sd-metadata)"
    if name == "dream" and value.startswith('"') and _DREAM_OPTIONS.search(value[:4096]):
        return "InvokeAI (legacy 'Dream')"
    if name in ("comment", "generation_data") and _generation_json(value):
        return "NovelAI (generation parameters)" if name == "comment" else "a Stable Diffusion front-end"
    if name == "source" and _NOVELAI_SOURCE.fullmatch(value.strip()[:200]):
        return "NovelAI (model hash)"
    if name == "software":
        return generator_named_in(value)
    return None


def _is_a1111_parameters(text: str) -> bool:
    """AUTOMATIC1111's settings line: "Steps: 20, Sampler: Euler a, CFG scale: 7, Seed: 42, ..."."""
    for line in text[:MAX_FIELD_CHARS].splitlines():
        if _A1111_STEPS.match(line) and "Sampler: " in line and ("CFG scale: " in line or "Seed: " in line):
            return True
    return False


def _json_object(text: str) -> dict | None:
    stripped = text.lstrip()
    if not stripped.startswith("{"):
        return None
    try:
        value = json.loads(stripped)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _generation_json(text: str) -> bool:
    """A JSON object with at least two generation settings (steps, sampler, seed, CFG, ...)."""
    value = _json_object(text)
    return value is not None and len({str(k).lower() for k in value} & GENERATION_KEYS) >= 2


def _xmp_markers(xmp: str) -> list[MetadataMarker]:
    """DigitalSourceType and CreatorTool from the XMP packet, read with an XML parser.

    XMP forbids DTDs, so a packet with one is not parsed (no entity expansion). From a packet the
    parser refuses only DigitalSourceType values are taken, and only exact vocabulary URIs.
    """
    if not xmp or len(xmp) > MAX_XMP_CHARS or "<!DOCTYPE" in xmp or "<!ENTITY" in xmp:
        return []
    markers: list[MetadataMarker] = []
    try:
        root = ET.fromstring(xmp.strip().strip("\0"))
    except ET.ParseError:
        for value in _LOOSE_SOURCE_TYPE.findall(xmp):
            _xmp_field(_XMP_DIGITAL_SOURCE_TYPE, value, markers)
        return markers
    for element in root.iter():
        for attribute, value in element.attrib.items():
            _xmp_field(_local(attribute), value, markers)
        local = _local(element.tag)
        if local in (_XMP_DIGITAL_SOURCE_TYPE, _XMP_CREATOR_TOOL):
            _xmp_field(local, element.get(_RDF_RESOURCE) or (element.text or "").strip(), markers)
    return markers


def _xmp_field(name: str, value: str, markers: list[MetadataMarker]) -> None:
    if name == _XMP_DIGITAL_SOURCE_TYPE and value:
        source_type = source_type_name(value.strip())
        if source_type not in SOURCE_TYPE_INFO:
            return
        info = describe_source_type(source_type)
        points_to = "ai" if source_type in SYNTHETIC else "capture" if source_type in CAPTURE else "other"
        markers.append(MetadataMarker("XMP Iptc4xmpExt:DigitalSourceType", source_type, points_to,
                                      info.meaning if points_to == "ai" else None, info.involvement))
    elif name == _XMP_CREATOR_TOOL:
        tool = generator_named_in(value)
        if tool:
            markers.append(_ai("XMP xmp:CreatorTool", value, tool))


def _local(name: str) -> str:
    return name.rsplit("}", 1)[-1]


def _exif_text(image: Any, tag: int) -> str:
    value = (getattr(image, "exif", {}) or {}).get(tag)
    if isinstance(value, bytes):
        # UserComment starts with an 8-byte charset code.
        raw = value[8:] if value[:8] in (b"ASCII\0\0\0", b"UNICODE\0", b"\0" * 8) else value
        encoding = "utf-8"
        if value[:8] == b"UNICODE\0":
            # UCS-2 in either byte order (A1111 writes big-endian); text starts with a Latin letter.
            encoding = "utf-16" if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else (
                "utf-16-be" if raw[:1] == b"\0" else "utf-16-le")
        value = raw.decode(encoding, "replace")
    return str(value).strip("\0 ") if value is not None else ""


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text[: limit * 4].split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
