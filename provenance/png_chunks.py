"""PNG chunks whose checksum is wrong, where that need not cost the pixels.

Pillow refuses a PNG outright when any chunk's CRC is wrong. Files from the wild carry text chunks
(a generator's workflow, a caption) edited by hand after the file was written, without fixing the
CRC: the pixels are intact, and the edited chunk is itself worth telling the user about. An
ancillary chunk (the PNG spec's lower-case first letter: tEXt, iTXt, eXIf, ...) with a wrong CRC is
therefore given its correct one in a copy that Pillow can read; a critical chunk (IHDR, PLTE, IDAT,
IEND) with a wrong CRC still fails the file.
"""
from __future__ import annotations

import struct
import zlib

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def with_ancillary_checksums_fixed(data: bytes) -> tuple[bytes, list[str]] | None:
    """A copy of a PNG's bytes with every ancillary chunk's CRC made right, and the names of the
    chunks that had a wrong one; ``None`` when nothing would change that (not a PNG, no wrong
    ancillary CRC, a wrong critical CRC, or a chunk table that runs past the end of the file)."""
    if not data.startswith(SIGNATURE):
        return None
    fixed = bytearray(data)
    repaired: list[str] = []
    offset = len(SIGNATURE)
    while offset + 12 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        end = offset + 8 + length
        if end + 4 > len(data):
            return None
        stored = struct.unpack(">I", data[end:end + 4])[0]
        actual = zlib.crc32(data[offset + 4:end])
        if stored != actual:
            if not kind[:1].islower():  # a critical chunk: the image itself is damaged
                return None
            fixed[end:end + 4] = struct.pack(">I", actual)
            repaired.append(kind.decode("latin-1"))
        offset = end + 4
        if kind == b"IEND":
            break
    return (bytes(fixed), repaired) if repaired else None
