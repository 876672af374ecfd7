"""Real C2PA fixtures for tests: tiny media files made here and manifests written by c2pa's Builder.

Nothing here fakes a manifest's JSON: every manifest shape is signed by c2pa-python and read back
by the code under test, so the tests see what c2pa-rs actually writes.
"""
from __future__ import annotations

import io
import struct
import wave
from pathlib import Path
from typing import Any, Sequence

import c2pa
import numpy as np
from PIL import Image

from provenance.c2pa.keys import KeyPaths

IPTC = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def wav_bytes(frames: int = 800) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.arange(frames, dtype="<i2").tobytes())
    return buffer.getvalue()


def pdf_bytes(xmp: bytes | None = None) -> bytes:
    """A one-page PDF with a correct cross-reference table (and an XMP metadata stream if given)."""
    catalog = b"<< /Type /Catalog /Pages 2 0 R%s >>" % (b" /Metadata 4 0 R" if xmp else b"")
    objects = [catalog, b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>"]
    if xmp:
        objects.append(b"<< /Type /Metadata /Subtype /XML /Length %d >>\nstream\n%s\nendstream" % (len(xmp), xmp))
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def flac_bytes() -> bytes:
    """The "fLaC" marker and a STREAMINFO block (8 kHz mono, 16-bit, no frames)."""
    info = struct.pack(">HH", 4096, 4096) + bytes(6) + ((8000 << 44) | (15 << 36)).to_bytes(8, "big") + bytes(16)
    return b"fLaC" + bytes([0x80]) + len(info).to_bytes(3, "big") + info


def svg_bytes() -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
            b'height="10"><rect width="10" height="10"/></svg>\n')


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4_bytes() -> bytes:
    """ftyp + moov (a movie header) + mdat: the smallest ISO-BMFF file c2pa signs and reads."""
    ftyp = _box(b"ftyp", b"isom" + struct.pack(">I", 512) + b"isomiso2mp41")
    matrix = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)
    mvhd = _box(b"mvhd", b"\0\0\0\0" + struct.pack(">IIII", 0, 0, 1000, 0) + struct.pack(">IH", 0x10000, 0x100)
                + b"\0" * 10 + matrix + b"\0" * 24 + struct.pack(">I", 2))
    return ftyp + _box(b"moov", mvhd) + _box(b"mdat", bytes(range(64)))


def jpeg_bytes(grey: int = 120, size: int = 32) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), grey, np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


MEDIA = {  # name: (mime type, bytes maker, suffix)
    "wav": ("audio/wav", wav_bytes, ".wav"),
    "mp4": ("video/mp4", mp4_bytes, ".mp4"),
    "pdf": ("application/pdf", pdf_bytes, ".pdf"),
}


def action(name: str, source_type: str | None = None, **fields: Any) -> dict:
    entry: dict[str, Any] = {"action": name, **fields}
    if source_type:
        entry["digitalSourceType"] = IPTC + source_type
    return entry


def manifest(*actions: dict, generator: str = "test-tool", **extra: Any) -> dict:
    return {"claim_generator_info": [{"name": generator, "version": "1.0"}],
            "assertions": [{"label": "c2pa.actions.v2", "data": {"actions": list(actions)}}], **extra}


class BuilderSigner:
    """Signs any manifest definition with c2pa's Builder, using a test key pair."""

    def __init__(self, keys: KeyPaths):
        self.keys = keys

    def sign(self, definition: dict, data: bytes, mime_type: str = "image/jpeg",
             ingredients: Sequence[tuple[dict, str, bytes]] = ()) -> bytes:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
            c2pa.C2paSigningAlg.ES256, self.keys.signer_cert.read_bytes(), self.keys.signer_key.read_bytes(), None))
        settings = {"builder": {"thumbnail": {"enabled": False}},
                    "verify": {"remote_manifest_fetch": False},
                    "trust": {"user_anchors": self.keys.root_cert.read_text()}}
        output = io.BytesIO()
        with c2pa.Context.from_dict(settings, signer=signer) as context, \
                c2pa.Builder(definition, context=context) as builder:
            for ingredient, ingredient_mime, ingredient_data in ingredients:
                builder.add_ingredient(ingredient, ingredient_mime, io.BytesIO(ingredient_data))
            builder.sign(mime_type, io.BytesIO(data), output)
        return output.getvalue()

    def sign_to(self, path: Path, definition: dict, data: bytes, mime_type: str = "image/jpeg", **kw) -> Path:
        path.write_bytes(self.sign(definition, data, mime_type, **kw))
        return path
