"""The plan of a dataset: every image's labels and processing, drawn up front from the seed.

The plan is a pure function of :class:`DatasetConfig` and the photo source, so a build that is
killed and run again does exactly the same items, and every label is decided before any pixel is
made. Real and synthetic items draw their processing (perturbation, encoding) from one shared
distribution that never looks at the class: a detector cannot learn "JPEG = real".
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np

from provenance.generators.photos import Photo
from .layout import SPLITS, file_name
from .perturbations import PERTURBATIONS
from provenance.watermark.size import MIN_SIDE, size_problem


@dataclass(frozen=True)
class DatasetConfig:
    real: str = "default"
    n_real: int = 100
    n_gan: int = 50
    n_diffusion: int = 50
    size: int = 256
    seed: int = 0
    splits: tuple[float, float, float] = (0.7, 0.15, 0.15)
    format: str = "jpeg"  # jpeg | png | webp, for every image of both classes
    jpeg_quality: tuple[int, int] = (70, 95)  # drawn per image (jpeg/webp)
    perturb_fraction: float = 0.5  # images that get one perturbation, drawn from `perturbations`
    perturbations: tuple[str, ...] = ("blur", "brightness", "crop", "noise", "resize", "screenshot")
    watermark_fraction: float = 0.5  # synthetic images carrying our watermark
    c2pa_fraction: float = 0.5  # synthetic images signed with a C2PA manifest ...
    stripped_fraction: float = 0.5  # ... of which this share then has the manifest stripped
    real_scale: tuple[float, float] = (0.35, 0.6)  # photo downscale before cropping (erases JPEG grids)
    gan_model: str = "gan"
    diffusion_model: str = "diffusion"
    diffusion_steps: int = 25
    # "synthetic:NAME=DIR" / "real:NAME=DIR": outside images through the same pipeline (external.py)
    external: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "DatasetConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})

    def check(self) -> None:
        if min(self.n_real, self.n_gan, self.n_diffusion) < 0:
            raise ValueError("image counts must be >= 0")
        if abs(sum(self.splits) - 1) > 1e-6 or min(self.splits) < 0:
            raise ValueError(f"split fractions must be >= 0 and sum to 1, not {self.splits}")
        for name, value in (("perturb fraction", self.perturb_fraction), ("watermark fraction", self.watermark_fraction),
                            ("c2pa fraction", self.c2pa_fraction), ("stripped fraction", self.stripped_fraction)):
            if not 0 <= value <= 1:
                raise ValueError(f"{name} must be in [0, 1], not {value}")
        for name in self.perturbations:
            if name not in PERTURBATIONS:
                raise ValueError(f"unknown perturbation {name!r}; available: {', '.join(PERTURBATIONS.available())}")
        too_small = size_problem(self.size, self.size)
        if self.watermark_fraction > 0 and self.n_gan + self.n_diffusion > 0 and too_small:
            raise ValueError(f"{too_small}; use --size {MIN_SIDE} or more, or --watermark-fraction 0")
        if self.format not in ("jpeg", "png", "webp"):
            raise ValueError(f"format must be jpeg, png or webp, not {self.format!r}")
        low, high = self.jpeg_quality
        if not 1 <= low <= high <= 100:
            raise ValueError(f"JPEG quality range must be within 1-100, not {low}-{high}")
        names = [spec.partition(":")[2].partition("=")[0] for spec in self.external]
        if len(set(names)) != len(names) or {"gan", "diffusion", "none"} & set(names):
            raise ValueError(f"external source names must be unique and not gan/diffusion/none: {', '.join(names)}")


@dataclass
class Item:
    """One planned image and all of its labels (the metadata.jsonl row, minus ``file_name``)."""
    id: str
    label: str  # real | synthetic
    generator: str | None  # gan | diffusion for synthetic
    split: str
    index: int  # within its class/generator
    seed: int
    source: dict | None = None  # real: photo, group, crop box
    watermark: bool = False
    c2pa: str = "none"  # none | signed | stripped
    perturbations: list[dict] = field(default_factory=list)
    encode: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def file_name(self) -> str:
        return file_name(self.id, self.encode["format"])

    def labels(self) -> dict:
        """The metadata.jsonl columns: flat and typed alike in every row (no nulls, nested parts as
        JSON text), because Hugging Face imagefolder infers a schema per split file and refuses
        splits whose schemas differ."""
        return {
            "id": self.id, "label": self.label, "generator": self.generator or "none", "split": self.split,
            "index": self.index, "seed": self.seed,
            "source_photo": self.source["photo"] if self.source else "",
            "source_group": self.source["group"] if self.source else "",
            "source": json.dumps(self.source) if self.source else "",
            "watermark": self.watermark, "c2pa": self.c2pa,
            "perturbation": "+".join(p["name"] for p in self.perturbations) or "none",
            "perturbations": json.dumps(self.perturbations),
            "format": self.encode["format"], "quality": self.encode.get("quality", 0),
        }


def _rng(config: DatasetConfig, *stream: str | int) -> np.random.Generator:
    words = [config.seed] + [int.from_bytes(hashlib.blake2b(str(s).encode(), digest_size=4).digest(), "big")
                             for s in stream]
    return np.random.default_rng(words)


def split_groups(photos: list[Photo], config: DatasetConfig) -> dict[str, str]:
    """group -> split; every photo of a group (stereo/edited pairs) lands in one split."""
    groups = sorted({p.group for p in photos})
    order = _rng(config, "groups").permutation(len(groups))
    bounds = np.cumsum(config.splits) * len(groups)
    assignment = {}
    for rank, i in enumerate(order):
        assignment[groups[i]] = SPLITS[min(int(np.searchsorted(bounds, rank, side="right")), len(SPLITS) - 1)]
    return assignment


def _processing(config: DatasetConfig, rng: np.random.Generator) -> tuple[list[dict], dict]:
    steps = []
    if config.perturbations and rng.random() < config.perturb_fraction:
        name = config.perturbations[int(rng.integers(len(config.perturbations)))]
        steps.append({"name": name, "params": PERTURBATIONS.create(name).draw(rng)})
    encode = {"format": config.format}
    if config.format in ("jpeg", "webp"):
        encode["quality"] = int(rng.integers(config.jpeg_quality[0], config.jpeg_quality[1] + 1))
    return steps, encode


def _real_item(config: DatasetConfig, index: int, photos_by_split: dict[str, list[Photo]]) -> Item:
    rng = _rng(config, "real", index)
    available = [s for s in SPLITS if photos_by_split.get(s)]
    weights = np.array([config.splits[SPLITS.index(s)] for s in available], dtype=float)
    split = available[int(rng.choice(len(available), p=weights / weights.sum()))]
    photo = photos_by_split[split][int(rng.integers(len(photos_by_split[split])))]
    h, w = photo.rgb.shape[:2]
    need = config.size / min(h, w)
    low, high = max(config.real_scale[0], need), max(config.real_scale[1], need)
    scale = round(float(rng.uniform(low, high)), 4)
    scaled_h, scaled_w = max(config.size, round(h * scale)), max(config.size, round(w * scale))
    y, x = int(rng.integers(scaled_h - config.size + 1)), int(rng.integers(scaled_w - config.size + 1))
    source = {"photo": photo.name, "group": photo.group, "scale": scale, "scaled_size": [scaled_w, scaled_h],
              "crop_xy": [x, y], "hflip": bool(rng.random() < 0.5)}
    steps, encode = _processing(config, rng)
    return Item(id=f"real_{index:06d}", label="real", generator=None, split=split, index=index, seed=config.seed,
                source=source, perturbations=steps, encode=encode)


def _synthetic_item(config: DatasetConfig, family: str, index: int) -> Item:
    rng = _rng(config, family, index)
    split = SPLITS[int(rng.choice(len(SPLITS), p=np.array(config.splits) / sum(config.splits)))]
    watermark = bool(rng.random() < config.watermark_fraction)
    c2pa = "none"
    if rng.random() < config.c2pa_fraction:
        c2pa = "stripped" if rng.random() < config.stripped_fraction else "signed"
    steps, encode = _processing(config, rng)
    return Item(id=f"{family}_{index:06d}", label="synthetic", generator=family, split=split, index=index,
                seed=config.seed, watermark=watermark, c2pa=c2pa, perturbations=steps, encode=encode)


def usable_photos(photos: list[Photo], size: int) -> list[Photo]:
    """Photos big enough for a ``size`` crop without upscaling (upscaling leaves its own traces)."""
    return [p for p in photos if min(p.rgb.shape[:2]) >= size]


def make_plan(config: DatasetConfig, photos: list[Photo]) -> list[Item]:
    config.check()
    photos = usable_photos(photos, config.size)
    items: list[Item] = []
    if config.n_real:
        if not photos:
            raise ValueError(f"no real photo is at least {config.size}px on its short side")
        groups = split_groups(photos, config)
        by_split = {s: [p for p in photos if groups[p.group] == s] for s in SPLITS}
        items += [_real_item(config, i, by_split) for i in range(config.n_real)]
    for family, count in (("gan", config.n_gan), ("diffusion", config.n_diffusion)):
        items += [_synthetic_item(config, family, i) for i in range(count)]
    if config.external:
        items += _external_items(config)
    return items


def _external_items(config: DatasetConfig) -> list[Item]:
    """Outside images: native crops, then the same perturbation and encoding draws as ours."""
    from .external import plan_external

    entries, _ = plan_external(config.external, config.size, config.seed, config.splits, config.jpeg_quality, SPLITS)
    items = []
    for entry in entries:
        steps, encode = _processing(config, _rng(config, "external", entry["name"], entry["index"]))
        generator = entry["name"] if entry["label"] == "synthetic" else None
        items.append(Item(id=f"ext_{entry['name']}_{entry['index']:06d}", label=entry["label"], generator=generator,
                          split=entry["split"], index=entry["index"], seed=config.seed, source=entry["source"],
                          perturbations=steps, encode=encode))
    return items
