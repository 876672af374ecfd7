"""Images from outside (public generator outputs, photo benchmarks) through one class-blind pipeline.

Public sets carry their class in their files: fakes are PNG or WebP at a few square sizes with no
EXIF, reals are camera JPEGs at odd sizes with EXIF and camera quantisation tables. A detector
trained on them as they are learns those, not generation ("Fake or JPEG?", Grommelt 2024). So every
external image, real or synthetic, gets exactly the same treatment, decided without its label:

1. decode to RGB pixels; metadata (EXIF, ICC, text chunks) never reaches the output;
2. give it a lossy history if it has none: lossless originals are JPEG-compressed once at native
   resolution, at a quality drawn from the same range as the final encoding, so "has 8x8 JPEG
   history" is true of every image in both classes;
3. cut one ``size`` x ``size`` crop at native resolution at a random offset (never resized, so no
   resampling trace is added; the random offset puts the JPEG grid at any phase, and every image
   must be larger than the crop in at least one side, so no crop is a whole generated frame with
   its borders);
4. the dataset's shared perturbation and final encoding (plan.py) follow, as for our own images.

:func:`measure_shortcuts` reads the finished files back and tabulates, per class, each known
shortcut: file format, JPEG quantisation tables, size and aspect, EXIF presence, and a resampling
score, so the dataset card shows whether the classes can still be told apart by any of them.
"""
from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

LOSSY_FORMATS = {"jpeg", "mpo", "webp"}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}


@dataclass(frozen=True)
class ExternalImage:
    """One file of an external source, as the plan knows it (no pixels)."""
    source: str  # NAME of --synthetic/--real NAME=DIR
    label: str  # real | synthetic
    path: str  # absolute
    relative: str  # within the source folder
    group: str  # split group
    width: int
    height: int
    format: str  # as decoded (png, jpeg, webp, ...)


def parse_source(text: str) -> tuple[str, Path]:
    """``NAME=DIR`` -> (name, folder); one-line ValueError otherwise."""
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise ValueError(f"expected NAME=DIR, not {text!r}")
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError(f"source name {name!r}: use letters, digits, '-', '_' or '.'")
    path = Path(folder)
    if not path.is_dir():
        raise ValueError(f"{folder}: not a directory")
    return name, path


def scan_source(name: str, label: str, folder: Path, min_side: int) -> tuple[list[ExternalImage], dict]:
    """Every image under ``folder`` big enough for a crop; counts of what was skipped and why."""
    images, skipped = [], {}
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()):
        try:
            with Image.open(path) as image:
                width, height, fmt = image.width, image.height, (image.format or "").lower()
        except Exception:  # unreadable files are counted, never fatal
            skipped["unreadable"] = skipped.get("unreadable", 0) + 1
            continue
        if min(width, height) < min_side or max(width, height) <= min_side:
            skipped["smaller than the crop"] = skipped.get("smaller than the crop", 0) + 1
            continue
        relative = str(path.relative_to(folder))
        # Fakes: one group per generator and origin folder (renders in one folder share a prompt
        # and settings: near-copies of each other); reals: one group per photo.
        group = f"{name}:{Path(relative).parent}" if label == "synthetic" else f"{name}:{relative}"
        images.append(ExternalImage(name, label, str(path.resolve()), relative, group, width, height, fmt))
    return images, skipped


def draw_processing(image: ExternalImage, size: int, quality_range: tuple[int, int], rng: np.random.Generator) -> dict:
    """The class-blind choices for one external image: pre-compression and crop offset."""
    history = None
    if image.format not in LOSSY_FORMATS:
        history = int(rng.integers(quality_range[0], quality_range[1] + 1))
    return {"history_quality": history, "crop_xy": [int(rng.integers(image.width - size + 1)),
                                                    int(rng.integers(image.height - size + 1))],
            "hflip": bool(rng.random() < 0.5)}


def jpeg_roundtrip(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=0 if quality >= 90 else 2)
    with Image.open(io.BytesIO(buffer.getvalue())) as image:
        return np.asarray(image.convert("RGB"))


def external_pixels(path: str | Path, processing: dict, size: int) -> np.ndarray:
    """Pixels of one external image after the shared steps 1-3 (see the module doc)."""
    with Image.open(path) as image:
        image.seek(0)
        rgb = np.asarray(image.convert("RGB"))
    if processing.get("history_quality"):
        rgb = jpeg_roundtrip(rgb, processing["history_quality"])
    x, y = processing["crop_xy"]
    crop = rgb[y:y + size, x:x + size]
    if crop.shape[:2] != (size, size):
        raise ValueError(f"{path}: {rgb.shape[1]}x{rgb.shape[0]} is smaller than the {size}px crop")
    return np.ascontiguousarray(crop[:, ::-1] if processing["hflip"] else crop)


# -- shortcut measurement ------------------------------------------------------------------------

def quantisation_signature(image: Image.Image) -> str:
    """Short hash of the JPEG quantisation tables ('' when the file is not a JPEG)."""
    tables = getattr(image, "quantization", None)
    if not tables:
        return ""
    text = ";".join(f"{k}:{','.join(map(str, v))}" for k, v in sorted(tables.items()))
    return hashlib.sha1(text.encode()).hexdigest()[:8]


def resampling_score(rgb: np.ndarray) -> float:
    """Periodic correlations that interpolation leaves (Popescu-Farid in its simplest form).

    Spectrum of the mean |second difference| along rows and columns; the score is the strongest
    peak away from DC, relative to the median. Native crops score about 3-6 (JPEG's 8-pixel grid
    adds the same to both classes once both are JPEG); a 1.3-1.6x upscale scores 10-30."""
    grey = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    scores = []
    for axis in (0, 1):
        second = np.abs(np.diff(grey, n=2, axis=axis)).mean(axis=1 - axis)
        second = second - second.mean()
        spectrum = np.abs(np.fft.rfft(second * np.hanning(len(second))))
        n = len(second)
        freqs = np.fft.rfftfreq(n)
        keep = freqs > 0.02
        if keep.sum() < 4:
            continue
        band = spectrum[keep]
        scores.append(float(band.max() / (np.median(band) + 1e-6)))
    return max(scores) if scores else 0.0


def file_traits(path: str | Path) -> dict:
    """The shortcut-relevant traits of one file as a detector would see it."""
    with Image.open(path) as image:
        fmt = (image.format or "").lower()
        width, height = image.size
        exif = bool(image.getexif()) or "exif" in image.info
        qtables = quantisation_signature(image)
        rgb = np.asarray(image.convert("RGB"))
    # Sizes in 32-pixel bins: the shared crop/resize perturbations spread sizes over many values,
    # and a distance between two samples of exact sizes would be mostly sampling noise.
    return {"format": fmt, "qtables": qtables or "none", "size": f"{width // 32 * 32}x{height // 32 * 32}",
            "aspect": round(width / height, 2), "exif": exif, "resampling": resampling_score(rgb)}


def measure_shortcuts(rows: list[dict], resolve) -> dict:
    """Per class: distribution of each trait over the written files. ``resolve(row) -> path``."""
    per_class: dict[str, dict[str, dict]] = {}
    resampling: dict[str, list[float]] = {}
    for row in rows:
        traits = file_traits(resolve(row))
        label = row["label"]
        table = per_class.setdefault(label, {})
        for key in ("format", "qtables", "size", "aspect", "exif"):
            value = str(traits[key])
            table.setdefault(key, {})
            table[key][value] = table[key].get(value, 0) + 1
        resampling.setdefault(label, []).append(traits["resampling"])
    for label, values in resampling.items():
        q = np.percentile(values, [10, 50, 90]) if values else [0, 0, 0]
        per_class[label]["resampling score p10/p50/p90"] = {"/".join(f"{v:.2f}" for v in q): len(values)}
        bins = np.digitize(values, RESAMPLING_BINS)
        labels = [f"<{RESAMPLING_BINS[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(RESAMPLING_BINS, RESAMPLING_BINS[1:])] \
            + [f">={RESAMPLING_BINS[-1]:g}"]
        per_class[label]["resampling"] = {labels[b]: int((bins == b).sum()) for b in sorted(set(bins.tolist()))}
    return per_class


# Resampling-score bins for the class distance: native crops score about 3-6 before JPEG and up to
# ~12 after it; an upscale 10-30 and more.
RESAMPLING_BINS = (8.0, 12.0, 20.0, 40.0)


def shortcut_gaps(per_class: dict) -> dict[str, float]:
    """Total-variation distance between the classes' distributions, per trait (0 = identical)."""
    if set(per_class) != {"real", "synthetic"}:
        return {}
    gaps = {}
    for key in ("format", "qtables", "size", "aspect", "exif", "resampling"):
        if key not in per_class["real"] and key not in per_class["synthetic"]:
            continue
        a, b = per_class["real"].get(key, {}), per_class["synthetic"].get(key, {})
        na, nb = sum(a.values()) or 1, sum(b.values()) or 1
        gaps[key] = round(0.5 * sum(abs(a.get(v, 0) / na - b.get(v, 0) / nb) for v in set(a) | set(b)), 3)
    return gaps


# -- plan side -----------------------------------------------------------------------------------

def source_spec(label: str, text: str) -> str:
    """``--synthetic NAME=DIR`` -> the config's ``"synthetic:NAME=DIR"`` (checked, DIR absolute)."""
    if label not in ("real", "synthetic"):
        raise ValueError(f"label must be real or synthetic, not {label!r}")
    name, folder = parse_source(text)
    return f"{label}:{name}={folder.resolve()}"


def split_of_group(seed: int, group: str, fractions: tuple[float, float, float], splits: tuple[str, ...]) -> str:
    """Deterministic split of one group: every image of a group lands in the same split."""
    r = _unit(seed, "group", group)
    bounds = np.cumsum(fractions) / sum(fractions)
    return splits[min(int(np.searchsorted(bounds, r, side="right")), len(splits) - 1)]


def _unit(*words) -> float:
    digest = hashlib.blake2b("\0".join(map(str, words)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64


def plan_external(specs: tuple[str, ...], size: int, seed: int, fractions: tuple[float, float, float],
                  quality_range: tuple[int, int], splits: tuple[str, ...]) -> tuple[list[dict], dict]:
    """One planned entry per usable external image: {label, name, index, split, source}; and skips."""
    entries, skipped = [], {}
    for spec in specs:
        label, _, rest = spec.partition(":")
        name, folder = parse_source(rest)
        images, skips = scan_source(name, label, folder, size)
        for reason, count in skips.items():
            skipped[f"{name}: {reason}"] = count
        for index, image in enumerate(images):
            rng = np.random.default_rng([seed, int(_unit(seed, "external", name, image.relative) * 2 ** 32)])
            processing = draw_processing(image, size, quality_range, rng)
            source = {"external": name, "photo": image.relative, "group": image.group, "path": image.path,
                      "origin_format": image.format, "origin_size": [image.width, image.height],
                      "processing": processing}
            entries.append({"label": label, "name": name, "index": index,
                            "split": split_of_group(seed, image.group, fractions, splits), "source": source})
    return entries, skipped
