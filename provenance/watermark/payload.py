"""Our payload: keyed sync bits decide "marked"; a BCH-protected ID identifies the generator.

Layout for schemes of any length (dwtDct, dwtDctSvd), 128 bits:

* bits 0-63: **sync**, a key-derived pattern with exactly 32 ones. Only these bits decide whether
  an image is marked. Being balanced, a decoder that collapses to an all-0 or all-1 word (which
  imwatermark's do on many unmarked images) lands at exactly 32 matches, never near a threshold.
* bits 64-127: **ID**, 40 data bits (8-bit generator code + 32-bit serial) + 18 BCH parity bits
  (BCH over GF(2^6), t=3) + 6 zero pad bits, XORed with a key-derived mask. ECC only identifies:
  about 12% of random words "decode", so it never decides, and an ID is read only with at most
  :data:`ID_MAX_CORRECTIONS` (2) corrected bits, since words with too many errors mostly land at 3.

For rivaGan (fixed 32 bits) all 32 bits are keyed sync bits and there is no ID.

Keys are strings; patterns and masks are SHAKE-256 of (key, scheme, purpose). :data:`DEFAULT_KEY`
is public: anyone can embed or strip a default-key mark, so a default-key detection shows that
the mark is present, not who put it there. A deployment that needs unforgeable marks sets its own
secret key (and keeps it off the detector's public key list).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Sequence

import bchlib
import numpy as np

DEFAULT_KEY = "provenance-default-public-key-v1"

PAYLOAD_BITS = 128
SYNC_BITS = 64
ID_DATA_BITS = 40
BCH_T, BCH_M = 3, 6
# An ID is read only when BCH corrected at most this many bits. A word with more errors than t
# decodes to a wrong codeword about 12% of the time, and 95% of such miscorrections correct exactly
# t = 3 bits (the radius-3 shell holds 30,856 of the 32,568 words in the ball): on learned marks of
# our GAN's output, 7 of 87 decoded IDs were wrong, all at 3 corrections, none at 2 or fewer
# (session-5 report). Unreadable is better than a wrong generator or serial.
ID_MAX_CORRECTIONS = 2
# Nor is an ID read from a word whose sync bits show more than this many errors (of 64): at that bit
# error rate (> 12.5%) the 58 code bits hold 2 or fewer errors about 0.1% of the time, less often
# than such a word miscorrects to another ID (about 0.5%), so a decoded ID would more likely be
# wrong than right. Soft decisions find marks in words this damaged; on our GAN's cropped output
# the one wrong ID read came from a word with 9 sync errors, and correct ones from at most 8
# (session-9 report).
ID_MAX_SYNC_ERRORS = 8


# Our assigned values of the ID's 8-bit generator field; unknown values are shown as numbers.
GENERATOR_CODES = {"provenance demo": 0, "provenance gan": 1, "provenance diffusion": 2}
_GENERATOR_NAMES = {code: name for name, code in GENERATOR_CODES.items()}


@dataclass(frozen=True)
class WatermarkId:
    """Who made the image: an 8-bit generator (issuer) code and a 32-bit serial."""

    generator: int
    serial: int

    def __post_init__(self):
        if not 0 <= self.generator < 2**8:
            raise ValueError(f"generator code must be 0-255, not {self.generator}")
        if not 0 <= self.serial < 2**32:
            raise ValueError(f"serial must be 0-{2**32 - 1}, not {self.serial}")

    def __str__(self) -> str:
        name = _GENERATOR_NAMES.get(self.generator)
        return f"generator {self.generator}{f' ({name})' if name else ''}, serial {self.serial}"

    def to_bytes(self) -> bytes:
        return bytes([self.generator]) + self.serial.to_bytes(4, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> "WatermarkId":
        return cls(data[0], int.from_bytes(data[1:5], "big"))


@dataclass(frozen=True)
class Layout:
    length: int  # bits embedded
    sync_bits: int  # leading bits that decide detection
    has_id: bool


def layout_for(capacity: int | None) -> Layout:
    """The payload layout for a scheme of the given capacity (None: any length)."""
    if capacity is None or capacity == PAYLOAD_BITS:  # any length, or exactly ours (learned)
        return Layout(PAYLOAD_BITS, SYNC_BITS, True)
    return Layout(capacity, capacity, False)


def _shake(key: str, scheme: str, purpose: str, n_bytes: int) -> bytes:
    label = "\x00".join(("provenance-watermark-v1", scheme, purpose, key))
    return hashlib.shake_256(label.encode("utf-8")).digest(n_bytes)


def sync_pattern(key: str, scheme: str, n: int) -> np.ndarray:
    """Key-derived bool pattern with exactly n//2 ones (positions chosen by a keyed shuffle)."""
    ranks = np.frombuffer(_shake(key, scheme, f"sync{n}", 8 * n), dtype=">u8")
    pattern = np.zeros(n, dtype=bool)
    pattern[np.argsort(ranks, kind="stable")[: n // 2]] = True
    return pattern


def sync_patterns(keys: Sequence[str], scheme: str, n: int) -> np.ndarray:
    return np.stack([sync_pattern(key, scheme, n) for key in keys])


def _id_mask(key: str, scheme: str, n: int) -> np.ndarray:
    return np.unpackbits(np.frombuffer(_shake(key, scheme, "id-mask", (n + 7) // 8), dtype=np.uint8))[:n].astype(bool)


def _bch() -> bchlib.BCH:
    return bchlib.BCH(t=BCH_T, m=BCH_M)


def _id_block_bits(wm_id: WatermarkId, n: int) -> np.ndarray:
    data = wm_id.to_bytes()
    bch = _bch()
    ecc = np.unpackbits(np.frombuffer(bytes(bch.encode(data)), dtype=np.uint8))[: bch.ecc_bits]
    bits = np.concatenate([np.unpackbits(np.frombuffer(data, dtype=np.uint8)), ecc]).astype(bool)
    return np.concatenate([bits, np.zeros(n - bits.size, dtype=bool)])


def encode_payload(key: str, scheme: str, capacity: int | None, wm_id: WatermarkId | None = None) -> np.ndarray:
    """The bits to embed with ``scheme`` under ``key`` (``wm_id`` defaults to generator 0, serial 0)."""
    layout = layout_for(capacity)
    sync = sync_pattern(key, scheme, layout.sync_bits)
    if not layout.has_id:
        if wm_id is not None:
            raise ValueError(f"{scheme} carries {layout.length} bits: no room for an ID")
        return sync
    n_id = layout.length - layout.sync_bits
    block = _id_block_bits(wm_id or WatermarkId(0, 0), n_id) ^ _id_mask(key, scheme, n_id)
    return np.concatenate([sync, block])


def sync_matches(bits: np.ndarray, key: str, scheme: str, capacity: int | None) -> tuple[int, int]:
    """(matching sync bits, sync bits) of decoded ``bits`` against ``key``'s pattern."""
    layout = layout_for(capacity)
    pattern = sync_pattern(key, scheme, layout.sync_bits)
    return int(np.count_nonzero(np.asarray(bits[: layout.sync_bits], dtype=bool) == pattern)), layout.sync_bits


def read_id(bits: np.ndarray, key: str, scheme: str, capacity: int | None) -> tuple[WatermarkId | None, int]:
    """(ID, bit errors corrected) from decoded ``bits``; (None, -1) when BCH cannot decode, needs
    more than :data:`ID_MAX_CORRECTIONS` corrections, or the word's sync bits hold more than
    :data:`ID_MAX_SYNC_ERRORS` errors.

    A readable ID means nothing unless the sync bits already established the mark.
    """
    layout = layout_for(capacity)
    if not layout.has_id:
        return None, -1
    sync_errors = layout.sync_bits - sync_matches(bits, key, scheme, capacity)[0]
    if sync_errors > ID_MAX_SYNC_ERRORS:
        return None, -1
    n_id = layout.length - layout.sync_bits
    block = np.asarray(bits[layout.sync_bits : layout.length], dtype=bool) ^ _id_mask(key, scheme, n_id)
    bch = _bch()
    data = bytearray(np.packbits(block[:ID_DATA_BITS]).tobytes())
    ecc = bytearray(np.packbits(block[ID_DATA_BITS : ID_DATA_BITS + bch.ecc_bits]).tobytes())
    n_errors = bch.decode(data, ecc)
    if n_errors < 0 or n_errors > ID_MAX_CORRECTIONS:
        return None, -1
    bch.correct(data, ecc)
    return WatermarkId.from_bytes(bytes(data)), n_errors
