"""Real photos for training generators: sources, a group-aware train/held-out split, a patch sampler.

The default source is the handful of natural colour photos that ship inside installed wheels
(scikit-image, scikit-learn), so training needs no download. Near-duplicates (stereo pairs,
``name_left``/``name_right``, ``img1``/``img2``) form one *group* and always land in the same split.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from provenance.imageio import ImageLoadError, load_image

DEFAULT_SOURCE = "default"
# Two typical photos held out from the default set so the quality figure compares against unseen
# scenes; the rest (hubble, retina, microscopy, ...) are too unusual to be a fair reference.
DEFAULT_HOLDOUT_GROUPS = ("coffee", "china")
MAX_SIDE = 1024
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}

# ``_left``/``_right``, or one capital L/R/A/B or digit glued to a lowercase stem (aloeL, leuvenA,
# graf1); camera numbering like IMG_1234 is left alone.
_PAIR_SUFFIX = re.compile(r"(?:[_\-. ]?(?i:left|right)|(?<=[a-z])[LRAB1-9])$")


@dataclass(frozen=True)
class Photo:
    name: str
    group: str
    rgb: np.ndarray  # H x W x 3 uint8

    def __repr__(self) -> str:
        return f"Photo({self.name!r}, group={self.group!r}, {self.rgb.shape[1]}x{self.rgb.shape[0]})"


def group_of(name: str) -> str:
    """The near-duplicate group of a file stem: ``aloeL``/``aloeR`` -> ``aloe``, ``graf1`` -> ``graf``."""
    stem = Path(name).stem
    group = _PAIR_SUFFIX.sub("", stem)
    return (group or stem).lower()


def sample_photo(name: str) -> np.ndarray:
    """A photo shipped inside an installed wheel, as RGB uint8: a scikit-image ``data`` name
    (greyscale ones repeated to three channels), ``motorcycle_left``/``motorcycle_right`` (the
    stereo pair) or ``sklearn_china``/``sklearn_flower``. Offline, no download."""
    from skimage import data

    if name.startswith("sklearn_"):
        from sklearn.datasets import load_sample_image

        rgb = load_sample_image(name.removeprefix("sklearn_") + ".jpg")
    elif name.startswith("motorcycle_"):
        left, right, _disparity = data.stereo_motorcycle()
        rgb = left if name.endswith("left") else right
    else:
        rgb = getattr(data, name)()
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    return np.ascontiguousarray(rgb[:, :, :3], dtype=np.uint8)


def default_photos() -> list[Photo]:
    """The natural colour photos shipped by scikit-image and scikit-learn (11 images, 10 groups)."""
    photos = [Photo(name, name, sample_photo(name)) for name in (
        "astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")]
    photos += [Photo(f"motorcycle_{side}", "motorcycle", sample_photo(f"motorcycle_{side}")) for side in ("left", "right")]
    photos += [Photo(stem, stem, sample_photo(f"sklearn_{stem}")) for stem in ("china", "flower")]
    return photos


def image_paths(folder: str | Path, exclude: tuple[str, ...] | list[str] = ()) -> list[Path]:
    """The images under ``folder`` (recursively, sorted), less those whose path relative to it is in ``exclude``."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: not a directory")
    excluded = set(exclude)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                  and str(p.relative_to(root)) not in excluded)


def folder_photos(folder: str | Path, min_side: int = 64) -> list[Photo]:
    """Every readable colour image under ``folder`` (recursively); unreadable and tiny files are skipped."""
    folder = Path(folder)
    photos = []
    for path in image_paths(folder):
        try:
            rgb = load_image(path).rgb
        except ImageLoadError:
            continue
        if min(rgb.shape[:2]) >= min_side:
            rel = path.relative_to(folder)
            photos.append(Photo(str(rel), str(rel.parent / group_of(rel.name)), rgb))
    if not photos:
        raise FileNotFoundError(f"{folder}: no readable images of at least {min_side}px")
    return photos


def cap_side(photo: Photo, max_side: int | None) -> Photo:
    """Downscale so the long side is at most ``max_side``: 5K wallpapers otherwise give patches of
    nothing but smooth bokeh, and most source JPEGs lose their 8x8 grid in the process."""
    long_side = max(photo.rgb.shape[:2])
    if max_side is None or long_side <= max_side:
        return photo
    return Photo(photo.name, photo.group, rescale(photo.rgb, max_side / long_side))


def cover(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The centred crop of ``rgb`` with the aspect of ``size`` (w, h), resized to it (area-averaged
    when shrinking)."""
    import cv2

    h, w = rgb.shape[:2]
    scale = max(size[0] / w, size[1] / h)
    cw, ch = min(w, round(size[0] / scale)), min(h, round(size[1] / scale))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = np.ascontiguousarray(rgb[top:top + ch, left:left + cw])
    return cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


def load_photos(source: str | Path, max_side: int | None = MAX_SIDE) -> list[Photo]:
    photos = default_photos() if str(source) == DEFAULT_SOURCE else folder_photos(source)
    return [cap_side(p, max_side) for p in photos]


def split_photos(photos: list[Photo], holdout_fraction: float = 0.2, seed: int = 0,
                 holdout_groups: tuple[str, ...] | None = None) -> tuple[list[Photo], list[Photo]]:
    """(train, held_out), split by group. ``holdout_groups`` overrides the seeded choice."""
    groups = sorted({p.group for p in photos})
    if holdout_groups is None:
        if len(groups) < 2:
            raise ValueError("need photos from at least two groups to hold some out")
        n_holdout = min(len(groups) - 1, max(1, round(holdout_fraction * len(groups))))
        order = np.random.default_rng(seed).permutation(len(groups))
        holdout_groups = tuple(groups[i] for i in order[:n_holdout])
    held = set(holdout_groups)
    return [p for p in photos if p.group not in held], [p for p in photos if p.group in held]


def default_split(source: str | Path, seed: int = 0) -> tuple[list[Photo], list[Photo]]:
    photos = load_photos(source)
    holdout = DEFAULT_HOLDOUT_GROUPS if str(source) == DEFAULT_SOURCE else None
    return split_photos(photos, seed=seed, holdout_groups=holdout)


def rescale(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))


class PatchSampler:
    """Random square crops (with horizontal flips) of photos seen at one or more scales.

    Downscaling (default 0.5x) makes patches look like normal-scale photos and mostly erases the
    8x8 JPEG grid that most source files carry. Crops whose pixel std is below ``min_std`` (flat
    sky, black borders) are redrawn. Every (photo, scale) is drawn equally often: weighting by area
    let the two largest, least photo-like images (retina, hubble) supply most of the default patches.
    """

    def __init__(self, photos: list[Photo], patch: int, scales: tuple[float, ...] = (0.5,),
                 min_std: float = 2 / 255, hflip: bool = True, max_tries: int = 20):
        self.patch = patch
        self.min_std = min_std * 255
        self.hflip = hflip
        self.max_tries = max_tries
        self.images = [img for p in photos for s in scales
                       if min((img := rescale(p.rgb, s)).shape[:2]) >= patch]
        if not self.images:
            raise ValueError(f"no photo is at least {patch}px on its short side at scales {scales}")

    def crop(self, rng: np.random.Generator) -> np.ndarray:
        for _ in range(self.max_tries):
            img = self.images[rng.integers(len(self.images))]
            y = rng.integers(0, img.shape[0] - self.patch + 1)
            x = rng.integers(0, img.shape[1] - self.patch + 1)
            tile = img[y:y + self.patch, x:x + self.patch]
            if self.hflip and rng.random() < 0.5:
                tile = tile[:, ::-1]
            if tile.std() >= self.min_std:
                break
        return np.ascontiguousarray(tile)

    def batch(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, patch, patch, 3) uint8."""
        return np.stack([self.crop(rng) for _ in range(n)])
