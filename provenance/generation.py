"""Generate images with our own models, each one labelled the way a responsible generator should:
an invisible keyed watermark whose ID names the model and a serial, and a signed C2PA manifest
declaring ``trainedAlgorithmicMedia``.

    >>> import provenance
    >>> images = provenance.generate("gan", n=4, size=256, seed=0, out="generated/")
    >>> images[0].watermark_id, images[0].path

Image ``i`` of a run depends only on (weights, seed, i, size, sampler options): the same command
gives the same pixels, and a long run can be written in chunks.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .c2pa.signing import C2paSigner, SigningError
from .errors import first_line
from .files import file_sha256, write_atomically
from .imageio import encode_image
from .watermark import payload
from .watermark.marking import DEFAULT_SCHEME, Mark, embed_mark
from .watermark.size import size_problem

# The 8-bit "generator" field of our watermark ID, per model family.
WATERMARK_CODES = {family: payload.GENERATOR_CODES[f"provenance {family}"] for family in ("gan", "diffusion")}
FORMATS = {"png": ("PNG", ".png"), "jpeg": ("JPEG", ".jpg"), "webp": ("WEBP", ".webp")}
RECORDS_FILE = "generated.jsonl"


class GenerationError(ValueError):
    """A generation request that cannot be carried out; one line naming the problem."""


@dataclass(frozen=True)
class GenerateOptions:
    size: int | tuple[int, int] = 256
    seed: int = 0
    format: str = "png"
    quality: int = 95  # JPEG/WebP only
    watermark: bool = True
    scheme: str = DEFAULT_SCHEME
    watermark_key: str = payload.DEFAULT_KEY
    c2pa: bool = True
    keys: str | Path | None = None  # signing keys directory; default: provenance's key dir
    sample_options: dict = field(default_factory=dict)  # e.g. {"steps": 25} for diffusion
    batch_size: int = 4  # images made (and written) per chunk


@dataclass
class GeneratedImage:
    index: int
    seed: int
    model: str
    model_version: str
    width: int
    height: int
    format: str
    watermark_scheme: str | None
    watermark_id: str | None
    serial: int
    c2pa_signed: bool
    path: Path | None = None
    rgb: np.ndarray | None = field(default=None, repr=False)  # the pixels as encoded (marked)
    data: bytes | None = field(default=None, repr=False)  # the file's bytes (signed when c2pa)

    def to_dict(self) -> dict:
        return {
            "file": str(self.path) if self.path else None, "index": self.index, "seed": self.seed,
            "model": self.model, "model_version": self.model_version, "width": self.width,
            "height": self.height, "format": self.format, "watermark_scheme": self.watermark_scheme,
            "watermark_id": self.watermark_id, "serial": self.serial, "c2pa_signed": self.c2pa_signed,
        }


def serial_for(seed: int, index: int) -> int:
    """A 32-bit serial for image ``index`` of run ``seed``: stable, and different across runs."""
    digest = hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


class ImageMaker:
    """Loads one generator (and the signing keys) once, then makes labelled images in chunks."""

    def __init__(self, model: str | Path = "gan", options: GenerateOptions = GenerateOptions()):
        from .generators import load_generator, resolve_export_dir, WEIGHTS_FILE

        if options.format not in FORMATS:
            raise GenerationError(f"format must be one of {', '.join(FORMATS)}, not {options.format!r}")
        try:
            directory = resolve_export_dir(model)
            self.generator = load_generator(directory)
        except (FileNotFoundError, KeyError, ValueError) as exc:
            raise GenerationError(first_line(exc)) from None
        self.options = options
        self._check_size()
        self.model_name = f"provenance-{Path(directory).name}"
        weights_hash = file_sha256(Path(directory) / WEIGHTS_FILE)
        self.model_version = weights_hash[:12]
        self.watermark_code = WATERMARK_CODES.get(self.generator.family, 255)
        self._signer: C2paSigner | None = None
        if options.c2pa:
            try:
                self._signer = C2paSigner(options.keys)
            except SigningError as exc:
                raise GenerationError(f"{exc} (or pass --no-c2pa)") from None

    def _check_size(self) -> None:
        from .generators import check_size
        from .watermark.schemes import SCHEMES

        try:
            height, width = check_size(self.options.size, self.generator.size_multiple)
            scheme = SCHEMES.create(self.options.scheme) if self.options.watermark else None
        except (ValueError, KeyError) as exc:
            raise GenerationError(str(exc).strip("'\"")) from None
        if scheme is not None and height * width < scheme.min_pixels:
            raise GenerationError(f"{size_problem(width, height)} (use a larger --size, or --no-watermark)")

    def close(self) -> None:
        if self._signer is not None:
            self._signer.close()
            self._signer = None

    def __enter__(self) -> "ImageMaker":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def sample(self, first: int, n: int) -> np.ndarray:
        """Unlabelled pixels of images ``first .. first + n - 1``, (n, H, W, 3) uint8."""
        o = self.options
        # One image per forward pass: oneDNN may pick other kernels for other batch shapes, and the
        # pixels of image i must not depend on how a run was chunked (it is not slower on CPU).
        return self.generator.sample(n, size=o.size, seed=o.seed, first=first, batch_size=1, **o.sample_options)

    def mark(self, rgb: np.ndarray, index: int) -> tuple[np.ndarray, payload.WatermarkId]:
        """Our watermark with ID (this model's code, the serial of image ``index``)."""
        o = self.options
        watermark_id = payload.WatermarkId(self.watermark_code, serial_for(o.seed, index))
        strength = self.generator.learned_mark_strength if o.scheme == "learned" else None
        mark = Mark(scheme=o.scheme, key=o.watermark_key, watermark_id=watermark_id, strength=strength)
        return embed_mark(rgb, mark), watermark_id

    def sign(self, data: bytes, index: int, watermark_id: payload.WatermarkId | None,
             extra: dict | None = None) -> bytes:
        """A C2PA manifest declaring this model made image ``index`` (needs ``options.c2pa``)."""
        if self._signer is None:
            raise GenerationError("signing was not enabled (c2pa=False)")
        o = self.options
        assertion = {"seed": o.seed, "index": index, "serial": serial_for(o.seed, index),
                     "watermark": {"scheme": o.scheme, "id": str(watermark_id)} if watermark_id else None,
                     **(extra or {})}
        return self._signer.sign_bytes(
            data, ai_generated=True, model=self.model_name, model_version=self.model_version,
            extra_assertion=assertion, source_name=f"{self.model_name} image {index}").data

    def make(self, first: int, n: int) -> list[GeneratedImage]:
        """Images ``first .. first + n - 1``: sampled, marked, encoded and signed (not written)."""
        return [self._label(first + k, rgb) for k, rgb in enumerate(self.sample(first, n))]

    def _label(self, index: int, rgb: np.ndarray) -> GeneratedImage:
        o = self.options
        watermark_id = None
        if o.watermark:
            rgb, watermark_id = self.mark(rgb, index)
        data = encode_image(rgb, FORMATS[o.format][0], quality=o.quality)
        if self._signer is not None:
            data = self.sign(data, index, watermark_id)
        height, width = rgb.shape[:2]
        return GeneratedImage(
            index=index, seed=o.seed, model=self.model_name, model_version=self.model_version, width=width,
            height=height, format=o.format, watermark_scheme=o.scheme if watermark_id else None,
            watermark_id=str(watermark_id) if watermark_id else None, serial=serial_for(o.seed, index),
            c2pa_signed=self._signer is not None, rgb=rgb, data=data)


def file_name(image: GeneratedImage) -> str:
    return f"{image.model}_seed{image.seed}_{image.index:06d}{FORMATS[image.format][1]}"


def write_image(image: GeneratedImage, out: Path) -> Path:
    """Write atomically (temp file, then rename), so a killed run never leaves a half image."""
    path = write_atomically(out / file_name(image), image.data)
    image.path = path
    return path


def iter_generate(model: str | Path = "gan", n: int = 1, out: str | Path | None = None,
                  options: GenerateOptions = GenerateOptions()) -> Iterator[GeneratedImage]:
    """Images one by one; with ``out``, each is written (and its record appended to
    ``generated.jsonl``) before it is yielded. Bad requests raise here, before anything is made."""
    if n < 0:
        raise GenerationError(f"n must be >= 0, not {n}")
    maker = ImageMaker(model, options)
    out_dir = Path(out) if out is not None else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / RECORDS_FILE).write_text("")  # a re-run rewrites the same files and records
    return _make_all(maker, n, out_dir)


def _make_all(maker: ImageMaker, n: int, out_dir: Path | None) -> Iterator[GeneratedImage]:
    with maker:
        for first in range(0, n, maker.options.batch_size):
            for image in maker.make(first, min(maker.options.batch_size, n - first)):
                if out_dir is not None:
                    write_image(image, out_dir)
                    with open(out_dir / RECORDS_FILE, "a") as records:
                        records.write(json.dumps(image.to_dict()) + "\n")
                yield image


def generate(model: str | Path = "gan", n: int = 1, size: int | tuple[int, int] = 256, seed: int = 0,
             out: str | Path | None = None, **options) -> list[GeneratedImage]:
    """Make ``n`` labelled images with a shipped model name (``"gan"``, ``"diffusion"``) or an
    export directory. ``options`` are :class:`GenerateOptions` fields (format, watermark, c2pa, keys...)."""
    return list(iter_generate(model, n, out, GenerateOptions(size=size, seed=seed, **options)))
