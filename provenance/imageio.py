"""Safe image loading: one place that turns untrusted bytes into pixels, or into a one-line error.

Every reader of images (``check``, ``watermark``, ``sign``) goes through :func:`load_image`, so the
size limits (file bytes, pixels, estimated working set) and the mode normalisation are enforced
once. Every Pillow call on untrusted bytes runs inside :func:`_guarded`, which turns whatever
Pillow or a plugin raises into :class:`ImageLoadError`. Our own scans of the raw bytes (XMP) and of
decoded metadata (text chunks, EXIF values) are linear-time and capped.
Pixels stay in *stored* orientation: watermarks live on the stored pixel grid, and an EXIF
rotation is only recorded, never applied.
"""
from __future__ import annotations

import io
import os
import stat
import threading
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Callable, Hashable, Iterator, TypeVar

import numpy as np
from PIL import Image, UnidentifiedImageError

from .once import ComputedOnce
from .png_chunks import with_ancillary_checksums_fixed

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_PIXELS = 120_000_000  # a 12k x 10k scan; beyond that we refuse rather than risk memory
# Peak memory of a full ``check`` per decoded pixel, above the detectors' fixed footprint, as
# measured by ``python -m benchmarks fuzz --memory`` (see README, "Limits"); the working-set estimate
# refuses an image before decoding when pixels x this would pass ``max_working_set``.
CHECK_BYTES_PER_PIXEL = 48
DEFAULT_MAX_WORKING_SET = 8 * 2**30

MAX_XMP_BYTES = 4 * 2**20  # a packet that does not close within this is ignored (linear scan)
MAX_TEXT_CHUNK_CHARS = 1 * 2**20  # per PNG text chunk kept for the metadata detector
MAX_TEXT_TOTAL_CHARS = 8 * 2**20
MAX_EXIF_VALUE_BYTES = 64 * 2**10  # EXIF strings/blobs are truncated to this for scanning

_XMP_START = b"<x:xmpmeta"
_XMP_END = b"</x:xmpmeta>"
_EXIF_ORIENTATION = 0x0112
_EXIF_SUB_IFD = 0x8769


class ImageLoadError(ValueError):
    """An input that cannot be checked; the message is one line naming the problem."""


@dataclass(frozen=True)
class LoadLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS  # also Pillow's decompression-bomb limit while we decode
    max_working_set: int | None = DEFAULT_MAX_WORKING_SET  # bytes a check of this image may need

    def estimated_working_set(self, width: int, height: int) -> int:
        return width * height * CHECK_BYTES_PER_PIXEL


T = TypeVar("T")


@dataclass
class LoadedImage:
    source: str
    data: bytes
    format: str
    mime_type: str
    width: int
    height: int
    mode: str
    rgb: np.ndarray  # H x W x 3 uint8, stored orientation
    text_chunks: dict[str, str] = field(default_factory=dict)
    exif: dict[int, object] = field(default_factory=dict)
    xmp: str = ""
    frames: int = 1
    notes: list[str] = field(default_factory=list)

    _derived: ComputedOnce = field(default_factory=ComputedOnce, init=False, repr=False, compare=False)

    @cached_property
    def bgr(self) -> np.ndarray:
        """OpenCV's channel order, which imwatermark expects (computed once per image)."""
        return np.ascontiguousarray(self.rgb[:, :, ::-1])

    def derived(self, key: Hashable, compute: Callable[[], T]) -> T:
        """``compute()``, once per image and key, shared by every detector asking for the same key
        (transforms or features several detectors read). Detectors may run side by side on threads:
        one computes, the others wait for its result; different keys are computed at the same time."""
        return self._derived.get(key, compute)

    def __getstate__(self) -> dict:
        # what was derived (and its locks) stays behind: a pickled image is recomputed where it lands
        state = dict(self.__dict__)
        state["_derived"] = ComputedOnce()
        state.pop("bgr", None)
        return state

    def summary(self) -> dict:
        return {
            "format": self.format,
            "width": self.width,
            "height": self.height,
            "mode": self.mode,
            "frames": self.frames,
            "bytes": len(self.data),
            "notes": list(self.notes),
        }


def read_bytes(path: str | Path, limits: LoadLimits = LoadLimits()) -> bytes:
    """The bytes of a *regular* file: a FIFO, device or socket given as a path is refused, never read
    (reading one can block forever or never end)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    _require_regular_file(info)
    _require_size(info.st_size, limits, "file")
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the check, open() cannot hang.
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        try:
            info = os.fstat(handle.fileno())
            _require_regular_file(info)
            _require_size(info.st_size, limits, "file")
            data = handle.read(limits.max_bytes + 1)
        except OSError as exc:
            raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    _require_size(len(data), limits, "file")
    return data


def _require_regular_file(info: os.stat_result) -> None:
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise ImageLoadError("is a directory")
    if not stat.S_ISREG(mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a special file")
        raise ImageLoadError(f"is {kind}, not a regular file; only regular files are read")


def _require_size(size: int, limits: LoadLimits, what: str) -> None:
    if size > limits.max_bytes:
        raise ImageLoadError(f"{what} is {size / 2**20:.0f} MiB, over the {limits.max_bytes / 2**20:.0f} MiB limit")


def load_image(
    source: str | Path | bytes, limits: LoadLimits = LoadLimits(), name: str | None = None
) -> LoadedImage:
    """Decode ``source`` (a path or the file's bytes). Raises :class:`ImageLoadError`, nothing else."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        _require_size(len(data), limits, "upload")
        label = name or "<bytes>"
    else:
        data = read_bytes(source, limits)
        label = name or str(source)
    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    return _decode(data, label, limits)


class _PillowBombLimit:
    """Pillow's decompression-bomb limit is a process global; ours is per call and must govern.

    While any decode runs, Pillow's limit is the loosest of the limits in use (ours is checked
    explicitly per call, so Pillow's must never be the tighter one), and it is restored when the
    last decode ends. This is the only place that touches Pillow's global.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[int] = []
        self._saved: int | None = None

    @contextmanager
    def at(self, max_pixels: int) -> Iterator[None]:
        with self._lock:
            if not self._active:
                self._saved = Image.MAX_IMAGE_PIXELS
            self._active.append(max_pixels)
            Image.MAX_IMAGE_PIXELS = max(self._active)
        try:
            yield
        finally:
            with self._lock:
                self._active.remove(max_pixels)
                Image.MAX_IMAGE_PIXELS = max(self._active) if self._active else self._saved


_PILLOW_BOMB_LIMIT = _PillowBombLimit()


@contextmanager
def _guarded(problem: str, limits: LoadLimits) -> Iterator[None]:
    """Run Pillow on untrusted bytes; whatever it or a plugin raises becomes one :class:`ImageLoadError`.

    Pillow's plugins raise far more than their documented OSError on hostile files (seen: SyntaxError,
    ValueError, TypeError from a strip offset of the wrong tag type, KeyError from a missing tag,
    IndexError, struct.error, ZeroDivisionError, EOFError, RecursionError, MemoryError), so every
    Exception is caught here; nothing else in the loader calls Pillow on untrusted data.
    """
    try:
        yield
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageLoadError(
            f"image dimensions are implausibly large, over the {limits.max_pixels / 1e6:.0f} MP limit "
            "(decompression bomb)"
        ) from None
    except UnidentifiedImageError:
        raise ImageLoadError("not a recognised image format") from None
    except MemoryError:
        raise ImageLoadError(f"{problem}: not enough memory") from None
    except Exception as exc:  # noqa: BLE001 - see the docstring: converted, never swallowed
        raise ImageLoadError(f"{problem} ({type(exc).__name__}: {_one_line(exc)})") from None


def _decode(data: bytes, label: str, limits: LoadLimits) -> LoadedImage:
    try:
        return _decode_pixels(data, data, label, limits, [])
    except ImageLoadError:
        repaired = with_ancillary_checksums_fixed(data)
        if repaired is None:
            raise
    readable, chunks = repaired
    note = (f"PNG {', '.join(chunks)} chunk{'s' if len(chunks) > 1 else ''} failed the checksum "
            "(edited after the file was written?); read anyway")
    return _decode_pixels(data, readable, label, limits, [note])


def _decode_pixels(data: bytes, readable: bytes, label: str, limits: LoadLimits, notes: list[str]) -> LoadedImage:
    """Decode ``readable`` (``data`` itself, or a copy with ancillary PNG checksums made right);
    the result keeps the file's own bytes."""
    with _PILLOW_BOMB_LIMIT.at(limits.max_pixels), warnings.catch_warnings(record=True) as caught:
        # Pillow warns above its bomb limit (set to ours) - that is our error; its other warnings
        # (corrupt EXIF, skipped tags) become notes instead of noise on stderr.
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with _guarded("unreadable image header", limits):
            img = Image.open(io.BytesIO(readable))
            width, height = img.size
            fmt = img.format or "unknown"
            mode = img.mode
        _check_dimensions(width, height, limits)
        frames = _count_frames(img, notes, limits)
        with _guarded("truncated or corrupt image data", limits):
            if frames > 1:
                img.seek(0)
            img.load()
            _check_dimensions(*img.size, limits)  # a frame can grow the canvas
            rgb = _to_rgb8(img, notes)
            height, width = rgb.shape[:2]
        exif = _read_exif(img, notes, limits)
        with _guarded("unreadable text chunks", limits):
            text_chunks = _bounded_text_chunks(getattr(img, "text", None) or {}, notes)
        notes.extend(sorted({f"decoder warning: {_one_line(w.message)}" for w in caught})[:3])

    orientation = exif.get(_EXIF_ORIENTATION)
    if isinstance(orientation, int) and orientation not in (0, 1):
        notes.append(f"EXIF orientation {orientation}: pixels analysed as stored, not rotated")
    return LoadedImage(
        source=label,
        data=data,
        format=fmt,
        mime_type=Image.MIME.get(fmt, "application/octet-stream"),
        width=width,
        height=height,
        mode=mode,
        rgb=rgb,
        text_chunks=text_chunks,
        exif=exif,
        xmp=find_xmp_packet(data, notes),
        frames=frames,
        notes=notes,
    )


def _check_dimensions(width: int, height: int, limits: LoadLimits) -> None:
    if width <= 0 or height <= 0:
        raise ImageLoadError(f"invalid dimensions {width}x{height}")
    if width * height > limits.max_pixels:
        raise ImageLoadError(
            f"image is {width}x{height} ({width * height / 1e6:.0f} MP), over the "
            f"{limits.max_pixels / 1e6:.0f} MP limit (decompression bomb?)"
        )
    if limits.max_working_set is not None and limits.estimated_working_set(width, height) > limits.max_working_set:
        raise ImageLoadError(
            f"image is {width}x{height}: checking it would need about "
            f"{limits.estimated_working_set(width, height) / 2**30:.1f} GiB, over the "
            f"{limits.max_working_set / 2**30:.1f} GiB working-set limit"
        )


def _count_frames(img: Image.Image, notes: list[str], limits: LoadLimits) -> int:
    """Frames or pages; a broken page after the first is noted, and the first is still checked."""
    try:
        with _guarded("unreadable frame table", limits):
            frames = int(getattr(img, "n_frames", 1) or 1)
    except ImageLoadError as exc:
        if "decompression bomb" in str(exc):
            raise
        notes.append(f"pages or frames after the first are unreadable ({exc}); the first was checked")
        with _guarded("truncated or corrupt image data", limits):
            img.seek(0)
        return 1
    if frames > 1:
        notes.append(f"animated or multi-page ({frames} frames): the first frame was checked")
    return frames


def _read_exif(img: Image.Image, notes: list[str], limits: LoadLimits) -> dict[int, object]:
    try:
        with _guarded("EXIF block unreadable", limits):
            raw_exif = img.getexif()
            exif = dict(raw_exif)
            exif.update(raw_exif.get_ifd(_EXIF_SUB_IFD))  # UserComment and capture settings live here
    except ImageLoadError:
        notes.append("EXIF block unreadable")
        return {}
    return {tag: _bounded_exif_value(value) for tag, value in exif.items() if isinstance(tag, int)}


def _bounded_exif_value(value: object) -> object:
    if isinstance(value, (bytes, str)) and len(value) > MAX_EXIF_VALUE_BYTES:
        return value[:MAX_EXIF_VALUE_BYTES]
    return value


def _bounded_text_chunks(chunks: dict, notes: list[str]) -> dict[str, str]:
    kept: dict[str, str] = {}
    total = 0
    for key, value in chunks.items():
        if not isinstance(value, str):
            continue
        value = value[:MAX_TEXT_CHUNK_CHARS]
        if total + len(value) > MAX_TEXT_TOTAL_CHARS:
            notes.append(f"text chunks beyond {MAX_TEXT_TOTAL_CHARS // 2**20} MiB were not examined")
            break
        total += len(value)
        kept[str(key)[:256]] = value
    return kept


def find_xmp_packet(data: bytes, notes: list[str] | None = None) -> str:
    """The first ``<x:xmpmeta ...</x:xmpmeta>`` packet, found in linear time (two ``bytes.find``).

    A packet that does not close within :data:`MAX_XMP_BYTES` of its start is ignored and noted
    (the regex this replaces scanned to the end of the file from every start: quadratic).
    """
    begin = data.find(_XMP_START)
    if begin < 0:
        return ""
    end = data.find(_XMP_END, begin, begin + MAX_XMP_BYTES)
    if end < 0:
        if notes is not None:
            notes.append(f"XMP packet not closed within {MAX_XMP_BYTES // 2**20} MiB; ignored")
        return ""
    return data[begin:end + len(_XMP_END)].decode("utf-8", "replace")


def _to_rgb8(img: Image.Image, notes: list[str]) -> np.ndarray:
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if mode.startswith("I;16") or arr.max(initial=0) > 255 else 255.0
        notes.append(f"{mode} (high bit depth) scaled to 8 bits")
        grey = np.clip(np.round(arr / peak * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode == "CMYK":
        notes.append("CMYK converted to RGB")
    elif mode in ("RGBA", "LA", "PA", "RGBa", "La") or (mode == "P" and "transparency" in img.info):
        notes.append("alpha channel ignored")
    elif mode == "P":
        notes.append("palette image expanded to RGB")
    elif mode not in ("RGB", "L", "1"):
        notes.append(f"{mode} converted to RGB")
    if mode.endswith("16") or mode == "RGB;16":
        notes.append("16-bit channels reduced to 8 bits")
    return np.asarray(img if mode == "RGB" else img.convert("RGB"), dtype=np.uint8).copy()  # convert() would copy RGB too


def encode_image(rgb: np.ndarray, fmt: str, quality: int = 95, like: LoadedImage | None = None) -> bytes:
    """Encode pixels for writing, keeping ICC profile and EXIF of ``like`` where the format allows."""
    img = Image.fromarray(rgb, "RGB")
    kwargs: dict = {}
    fmt = fmt.upper()
    if fmt in ("JPEG", "JPG"):
        fmt = "JPEG"
        kwargs.update(quality=quality, subsampling=0 if quality >= 90 else 2)
    elif fmt == "WEBP":
        kwargs.update(quality=quality)
    if like is not None and like.exif and fmt in ("JPEG", "PNG", "WEBP", "TIFF"):
        exif = Image.Exif()
        for k, v in like.exif.items():
            exif[k] = v
        kwargs["exif"] = exif.tobytes()
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def format_for_path(path: str | Path) -> str:
    ext = Path(path).suffix.lower().lstrip(".")
    fmt = Image.registered_extensions().get("." + ext)
    if fmt is None:
        raise ImageLoadError(f"cannot tell the image format from the extension {ext!r}")
    return fmt


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
