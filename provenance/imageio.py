"""Safe image loading: one place that turns untrusted bytes into pixels, or into a one-line error.

Every reader of images (``check``, ``watermark``, ``sign``) goes through :func:`load_image`, so the
size limits (file bytes, decompression bombs) and the mode normalisation are enforced once.
Pixels stay in *stored* orientation: watermarks live on the stored pixel grid, and an EXIF
rotation is only recorded, never applied.
"""
from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_PIXELS = 120_000_000  # a 12k x 10k scan; beyond that we refuse rather than risk memory

_XMP_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.DOTALL)
_EXIF_ORIENTATION = 0x0112
_EXIF_SUB_IFD = 0x8769


class ImageLoadError(ValueError):
    """An input that cannot be checked; the message is one line naming the problem."""


@dataclass(frozen=True)
class LoadLimits:
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS


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

    @cached_property
    def bgr(self) -> np.ndarray:
        """OpenCV's channel order, which imwatermark expects (computed once per image)."""
        return np.ascontiguousarray(self.rgb[:, :, ::-1])

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
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageLoadError("file not found") from None
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None
    if path.is_dir():
        raise ImageLoadError("is a directory")
    if size > limits.max_bytes:
        raise ImageLoadError(
            f"file is {size / 2**20:.0f} MiB, over the {limits.max_bytes / 2**20:.0f} MiB limit"
        )
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ImageLoadError(f"cannot read file: {exc.strerror or exc}") from None


def load_image(
    source: str | Path | bytes, limits: LoadLimits = LoadLimits(), name: str | None = None
) -> LoadedImage:
    """Decode ``source`` (a path or the file's bytes). Raises :class:`ImageLoadError`."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if len(data) > limits.max_bytes:
            raise ImageLoadError(
                f"upload is {len(data) / 2**20:.0f} MiB, over the {limits.max_bytes / 2**20:.0f} MiB limit"
            )
        label = name or "<bytes>"
    else:
        data = read_bytes(source, limits)
        label = name or str(source)
    if not data:
        raise ImageLoadError("empty file (0 bytes)")
    return _decode(data, label, limits)


def _decode(data: bytes, label: str, limits: LoadLimits) -> LoadedImage:
    notes: list[str] = []
    with warnings.catch_warnings():
        # Pillow warns above its own global bomb limit and raises at twice it; we apply our own
        # limit explicitly (no global state touched) and turn both into our error.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            img = Image.open(io.BytesIO(data))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageLoadError("image dimensions are implausibly large (decompression bomb)") from None
        except UnidentifiedImageError:
            raise ImageLoadError("not a recognised image format") from None
        except Exception as exc:  # Pillow raises many types on hostile headers
            raise ImageLoadError(f"unreadable image header: {_one_line(exc)}") from None

        width, height = img.size
        if width <= 0 or height <= 0:
            raise ImageLoadError(f"invalid dimensions {width}x{height}")
        if width * height > limits.max_pixels:
            raise ImageLoadError(
                f"image is {width}x{height} ({width * height / 1e6:.0f} MP), over the "
                f"{limits.max_pixels / 1e6:.0f} MP limit (decompression bomb?)"
            )
        fmt = img.format or "unknown"
        mode = img.mode
        frames = getattr(img, "n_frames", 1) or 1
        if frames > 1:
            notes.append(f"animated ({frames} frames): the first frame was checked")
        try:
            img.seek(0)
            img.load()
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ImageLoadError("image dimensions are implausibly large (decompression bomb)") from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageLoadError(f"truncated or corrupt image data ({_one_line(exc)})") from None

    exif: dict[int, object] = {}
    try:
        raw_exif = img.getexif()
        exif = dict(raw_exif)
        exif.update(raw_exif.get_ifd(_EXIF_SUB_IFD))  # UserComment and capture settings live here
    except Exception:
        notes.append("EXIF block unreadable")
    orientation = exif.get(_EXIF_ORIENTATION)
    if isinstance(orientation, int) and orientation not in (0, 1):
        notes.append(f"EXIF orientation {orientation}: pixels analysed as stored, not rotated")

    rgb = _to_rgb8(img, notes)
    text_chunks = {
        str(k): v for k, v in (getattr(img, "text", None) or {}).items() if isinstance(v, str)
    }
    match = _XMP_PACKET.search(data)
    xmp = match.group(0).decode("utf-8", "replace") if match else ""
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
        xmp=xmp,
        frames=frames,
        notes=notes,
    )


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
    return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()


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
