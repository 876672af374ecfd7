"""Find or remove the embedded C2PA manifest store the way a platform's re-upload pipeline would:
JPEG APP11 (JUMBF) segments and PNG ``caBX`` chunks. Pixels are untouched."""
from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_APP11, _START_OF_SCAN = 0xEB, 0xDA


def _jpeg_segments(jpeg: bytes):
    """(start, end, marker) of each header segment before the image data."""
    position = 2
    while position + 4 <= len(jpeg) and jpeg[position] == 0xFF:
        marker = jpeg[position + 1]
        if marker == _START_OF_SCAN:
            return
        end = position + 2 + int.from_bytes(jpeg[position + 2:position + 4], "big")
        yield position, end, marker
        position = end


def jpeg_manifest_segments(jpeg: bytes) -> bytes:
    """The APP11 segments of a JPEG, concatenated (where C2PA keeps its manifest store)."""
    return b"".join(jpeg[start:end] for start, end, marker in _jpeg_segments(jpeg) if marker == _APP11)


def _png_chunks(png: bytes):
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        end = position + 12 + length
        yield position, end, kind
        position = end


def strip_manifest(data: bytes) -> bytes:
    """``data`` without its embedded C2PA manifest store (JPEG or PNG)."""
    if data[:2] == b"\xff\xd8":
        cut = [(start, end) for start, end, marker in _jpeg_segments(data) if marker == _APP11]
    elif data.startswith(PNG_SIGNATURE):
        cut = [(start, end) for start, end, kind in _png_chunks(data) if kind == b"caBX"]
    else:
        raise ValueError("manifest stripping supports JPEG and PNG only")
    kept, position = [], 0
    for start, end in cut:
        kept.append(data[position:start])
        position = end
    kept.append(data[position:])
    return b"".join(kept)

