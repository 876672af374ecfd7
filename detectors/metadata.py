"""Metadata markers left by generators: weak evidence (trivially added or stripped), but common.

Looks at PNG text chunks (AUTOMATIC1111 "parameters", ComfyUI "prompt"/"workflow", InvokeAI,
NovelAI, Fooocus), XMP (IPTC DigitalSourceType, CreatorTool) and EXIF (Software, UserComment,
ImageDescription).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from provenance.c2pa.vocabulary import CAPTURE as CAPTURE_SOURCE_TYPES
from provenance.c2pa.vocabulary import IPTC_PREFIX
from provenance.c2pa.vocabulary import SYNTHETIC as SYNTHETIC_SOURCE_TYPES
from provenance.imageio import LoadedImage

from . import register
from .base import Detector
from .results import Evidence, Signal, Strength

# Text-chunk keys that only generator front-ends write, with the tool they point to.
GENERATOR_TEXT_KEYS = {
    "parameters": "AUTOMATIC1111 / Forge / Fooocus (generation parameters)",
    "prompt": "ComfyUI (prompt graph)",
    "workflow": "ComfyUI (workflow)",
    "invokeai_metadata": "InvokeAI",
    "invokeai_graph": "InvokeAI",
    "sd-metadata": "InvokeAI (legacy)",
    "dream": "InvokeAI (legacy 'dream')",
    "fooocus_scheme": "Fooocus",
    "generation_data": "a Stable Diffusion front-end (generation_data)",
}
# A key like "prompt" also appears in innocent files; require content that looks generated-by.
_PARAMETERS_PATTERN = re.compile(r"(Steps: *\d+|Sampler: |CFG scale: |Seed: *\d+|\"class_type\"|\"nodes\")")
GENERATOR_NAMES = re.compile(
    r"\b(Midjourney|DALL[\-·\u00b7 ]?E|Stable[ _-]?Diffusion|SDXL|NovelAI|ComfyUI|AUTOMATIC1111|"
    r"InvokeAI|Adobe Firefly|Firefly|Imagen|Leonardo\.?Ai|Ideogram|FLUX\.1|Fooocus|Bing Image Creator|"
    r"Image Creator from Microsoft Designer|GPT-4o|Gemini|Nano Banana|Runway|Kandinsky|DeepFloyd|"
    r"Playground v\d)\b",
    re.IGNORECASE,
)
# One \s* after the ">" (not two in a row): adjacent \s* made a whitespace run quadratic to reject.
_XMP_SOURCE_TYPE = re.compile(
    r"DigitalSourceType(?:\s*=\s*\"|>)\s*(?:" + re.escape(IPTC_PREFIX) + r")?([A-Za-z]+)"
)
_XMP_CREATOR_TOOL = re.compile(r"CreatorTool(?:\s*=\s*\"|>)([^\"<]*)")

EXIF_TAGS = {0x0131: "Software", 0x010E: "ImageDescription", 0x013B: "Artist", 0x9286: "UserComment"}


@dataclass(frozen=True)
class MetadataMarker:
    where: str  # e.g. "PNG text 'parameters'", "XMP DigitalSourceType", "EXIF Software"
    value: str  # shortened content
    points_to: str  # "ai" or "capture"
    tool: str | None = None

    def to_dict(self) -> dict:
        return {"where": self.where, "value": self.value, "points_to": self.points_to, "tool": self.tool}


def find_markers(image: LoadedImage) -> list[MetadataMarker]:
    markers: list[MetadataMarker] = []
    for key, value in image.text_chunks.items():
        tool = GENERATOR_TEXT_KEYS.get(key) or GENERATOR_TEXT_KEYS.get(key.lower())
        if tool and (_PARAMETERS_PATTERN.search(value) or key.lower() not in ("parameters", "prompt")):
            markers.append(MetadataMarker(f"PNG text '{key}'", _short(value), "ai", tool))
        elif key.lower() in ("software", "source", "comment", "description", "author"):
            name = GENERATOR_NAMES.search(value)
            if name:
                markers.append(MetadataMarker(f"PNG text '{key}'", _short(value), "ai", name.group(0)))
    if image.xmp:
        for source_type in _XMP_SOURCE_TYPE.findall(image.xmp):
            if source_type in SYNTHETIC_SOURCE_TYPES:
                markers.append(MetadataMarker("XMP Iptc4xmpExt:DigitalSourceType", source_type, "ai"))
            elif source_type in CAPTURE_SOURCE_TYPES:
                markers.append(MetadataMarker("XMP Iptc4xmpExt:DigitalSourceType", source_type, "capture"))
        for tool in _XMP_CREATOR_TOOL.findall(image.xmp):
            name = GENERATOR_NAMES.search(tool)
            if name:
                markers.append(MetadataMarker("XMP xmp:CreatorTool", _short(tool), "ai", name.group(0)))
    for tag, label in EXIF_TAGS.items():
        value = _exif_text(image, tag)
        if not value:
            continue
        name = GENERATOR_NAMES.search(value)
        if name:
            markers.append(MetadataMarker(f"EXIF {label}", _short(value), "ai", name.group(0)))
        elif _PARAMETERS_PATTERN.search(value):
            markers.append(MetadataMarker(f"EXIF {label}", _short(value), "ai", "generation parameters"))
    return markers


@register("metadata")
class MetadataDetector(Detector):
    name = "metadata"
    family = "metadata"

    def detect(self, image: LoadedImage) -> Evidence:
        markers = find_markers(image)
        ai = [m for m in markers if m.points_to == "ai"]
        capture = [m for m in markers if m.points_to == "capture"]
        details = {"markers": [m.to_dict() for m in markers]}
        if ai:
            where = "; ".join(f"{m.where}" + (f" ({m.tool})" if m.tool else "") for m in ai)
            return self.evidence(
                Signal.SYNTHETIC,
                Strength.WEAK,
                f"generator metadata found: {where} (weak: metadata is easily added or removed)",
                details=details,
            )
        if capture:
            return self.evidence(
                Signal.NONE,
                Strength.NONE,
                f"metadata claims {capture[0].value} (unsigned, so not relied on)",
                details=details,
            )
        return self.evidence(Signal.NONE, Strength.NONE, "no generator metadata", details=details)


def _exif_text(image: LoadedImage, tag: int) -> str:
    value = image.exif.get(tag)
    if isinstance(value, bytes):
        # UserComment starts with an 8-byte charset code.
        raw = value[8:] if value[:8] in (b"ASCII\0\0\0", b"UNICODE\0", b"\0" * 8) else value
        encoding = "utf-16" if value[:8] == b"UNICODE\0" else "utf-8"
        value = raw.decode(encoding, "replace")
    return str(value).strip("\0 ") if value is not None else ""


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
