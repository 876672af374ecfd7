"""Whether a file may hold a C2PA manifest at all: a byte test that spares the native reader.

Importing c2pa and parsing the trust anchors costs about 50 ms; most photos hold no manifest.
"""
from __future__ import annotations

from .vocabulary import c2pa_mime_type


# Containers that embed a manifest store as raw JUMBF (JPEG APP11, PNG caBX, WebP/RIFF chunk, TIFF
# tag, ISO BMFF uuid box): its description box carries the label "c2pa" in plain bytes, and a
# remote manifest is referenced from XMP as dcterms:provenance. PDFs and other assets may compress
# theirs, so they always go to the reader.
def _is_bmff_image(data: bytes) -> bool:
    return data[4:8] == b"ftyp"


RAW_JUMBF_IMAGE_SIGNATURES = {
    "image/jpeg": lambda data: data.startswith(b"\xff\xd8\xff"),
    "image/png": lambda data: data.startswith(b"\x89PNG\r\n\x1a\n"),
    "image/webp": lambda data: data[:4] == b"RIFF" and data[8:12] == b"WEBP",
    "image/tiff": lambda data: data[:4] in (b"II*\x00", b"MM\x00*"),
    "image/heic": _is_bmff_image, "image/heif": _is_bmff_image, "image/avif": _is_bmff_image,
}


def may_hold_manifest(data: bytes, mime_type: str) -> bool:
    """False only when ``data`` is a well-formed container of one of these image types that
    certainly holds no C2PA manifest, embedded or referenced: then the native reader (~50 ms to
    import) is not needed. Every other file, broken ones included, goes to the reader."""
    signature = RAW_JUMBF_IMAGE_SIGNATURES.get(c2pa_mime_type(mime_type))
    if signature is None or not signature(data):
        return True
    return b"c2pa" in data or b"provenance" in data
