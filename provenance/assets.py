"""Assets that are not images: video, audio, PDF and the other formats C2PA can sign.

``check`` reads their C2PA manifest and metadata; pixel detectors skip them. :func:`load_source`
is the one entry point that decides image or other asset, from the bytes rather than the file
name: a header sniff (the ``filetype`` library) routes audio, video and documents here, and
everything else to :func:`provenance.imageio.load_image`, which keeps its own limits and errors.
Size limits are applied before any parsing, as for images.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Union

import filetype
from PIL import Image

from .imageio import ImageLoadError, LoadedImage, LoadLimits, load_image, read_bytes

# MIME types the sniffer reports, spelled the way c2pa's reader lists them (its own list decides).
_C2PA_SPELLING = {"audio/x-flac": "audio/flac", "audio/x-m4a": "audio/mp4", "application/zip": "application/x-zip"}
_DOCUMENT_TYPES = frozenset({
    "application/pdf",
    "application/epub+zip",
    "application/x-zip",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.oasis.opendocument.spreadsheet",
    "application/vnd.oasis.opendocument.presentation",
    "image/svg+xml",  # vector: no pixels to analyse
})
# Image formats C2PA signs that Pillow has no plugin for (without extra packages).
_C2PA_IMAGE_TYPES = frozenset({"image/heic", "image/heif", "image/jxl"})
_JXL_SIGNATURES = (b"\xff\x0a", b"\x00\x00\x00\x0cJXL \r\n\x87\n")
_SNIFF_BYTES = 8192  # enough for every header filetype knows
MAX_XMP_BYTES = 4 * 1024 * 1024
_XMP_START, _XMP_END = b"<x:xmpmeta", b"</x:xmpmeta>"

# Suffixes a directory scan picks up besides images: the media and documents people sign.
ASSET_SUFFIXES = frozenset(".mp4 .m4v .mov .avi .wav .mp3 .flac .m4a .pdf .svg".split())


@dataclass
class LoadedAsset:
    """A non-image file to check: its bytes, its format and the metadata readable without decoding."""

    source: str
    data: bytes
    format: str  # short name, e.g. "WAV", "MP4", "PDF"
    mime_type: str
    kind: str  # audio | video | document | image (an image format with no pixel decoder here, e.g. HEIC)
    xmp: str = ""
    # Same metadata fields as an image, empty here, so metadata readers treat both alike.
    text_chunks: dict[str, str] = field(default_factory=dict)
    exif: dict[int, object] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        return {"format": self.format, "mime_type": self.mime_type, "kind": self.kind,
                "bytes": len(self.data), "notes": list(self.notes)}

    @property
    def why_no_pixels(self) -> str:
        if self.kind == "image":
            return f"no decoder for {self.format} pixels is installed"
        return f"not an image ({self.kind}, {self.format})"


def load_source(
    source: Union[str, Path, bytes], limits: LoadLimits = LoadLimits(), name: str | None = None
) -> LoadedImage | LoadedAsset:
    """An image, or another asset type c2pa reads. Raises :class:`ImageLoadError` for anything else."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "<bytes>"
        if len(data) > limits.max_bytes:
            raise ImageLoadError(
                f"upload is {len(data) / 2**20:.0f} MiB, over the {limits.max_bytes / 2**20:.0f} MiB limit"
            )
    else:
        data = read_bytes(source, limits)
        label = name or str(source)
    asset = sniff_asset(data, label)
    if asset is not None:
        return asset
    return load_image(data, limits, name=label)


def sniff_asset(data: bytes, label: str) -> LoadedAsset | None:
    """A :class:`LoadedAsset` when ``data`` is audio, video or a document c2pa reads; None when it
    is not audio, video or a document. Raises :class:`ImageLoadError` for one c2pa cannot read."""
    head = data[:_SNIFF_BYTES]
    if _svg_mime(head):
        mime_type, extension = "image/svg+xml", "svg"
    elif head.startswith(_JXL_SIGNATURES):
        mime_type, extension = "image/jxl", "jxl"
    else:
        guess = filetype.guess(_after_id3(data)[:_SNIFF_BYTES] or head)
        if guess is None:
            return None
        mime_type, extension = _C2PA_SPELLING.get(guess.mime, guess.mime), guess.extension
    kind = mime_type.split("/", 1)[0]
    notes = []
    if mime_type in _C2PA_IMAGE_TYPES:
        # HEIC or JPEG XL: Pillow cannot decode the pixels here, but the manifest and metadata
        # are still worth reading. A plugin that registers the format sends it to Pillow instead.
        if "." + extension in Image.registered_extensions():
            return None
        notes.append(f"pixels not analysed: no {extension.upper()} decoder installed")
    elif mime_type in _DOCUMENT_TYPES:
        kind = "document"
    elif kind not in ("audio", "video"):
        return None
    if not c2pa_reads(mime_type):
        raise ImageLoadError(f"{extension.upper()} {kind} is neither an image nor a format C2PA can carry")
    return LoadedAsset(source=label, data=data, format=extension.upper(), mime_type=mime_type, kind=kind,
                       xmp=xmp_packet(data), notes=notes)


@cache
def c2pa_reads(mime_type: str) -> bool:
    import c2pa  # only when a non-image arrives; c2pa loads its native library on import

    return mime_type in c2pa.Reader.get_supported_mime_types()


def xmp_packet(data: bytes) -> str:
    """The first XMP packet, found by a linear scan and capped in size (no regex over the file)."""
    start = data.find(_XMP_START)
    if start < 0:
        return ""
    end = data.find(_XMP_END, start, start + MAX_XMP_BYTES)
    if end < 0:
        return ""
    return data[start:end + len(_XMP_END)].decode("utf-8", "replace")


def _after_id3(data: bytes) -> bytes:
    """The bytes after a leading ID3v2 tag: it opens MP3 files, but also FLAC and WAV files that
    tools (c2pa among them) have tagged, so the format is told by what follows it."""
    if not data.startswith(b"ID3") or len(data) < 10:
        return data
    size = 10 + ((data[6] & 0x7F) << 21 | (data[7] & 0x7F) << 14 | (data[8] & 0x7F) << 7 | (data[9] & 0x7F))
    following = data[size:]
    return following if following and filetype.guess(following[:_SNIFF_BYTES]) is not None else data


def _svg_mime(head: bytes) -> str | None:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if (text.startswith(b"<?xml") or text.startswith(b"<svg") or text.startswith(b"<!--")) and b"<svg" in head:
        return "image/svg+xml"
    return None
