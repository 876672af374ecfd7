"""The offline calibration run of the watermark decisions on unmarked photos
(``provenance watermark calibrate``), which writes ``calibration.json``.

imwatermark's decoders are biased on unmarked images (they collapse to all-0/all-1 words, and the
mean shifts with the image), so the null is measured, not assumed Binomial(n, 1/2):

* Negatives: many variants of every natural photo shipped with scikit-image and scikit-learn, grey
  images included, made with the dataset perturbations (resize, crop, brightness, JPEG q60-95)
  plus flips.
* Keyed tests (our schemes): the decoded word depends on the image and the payload length, not on
  the key, so each decode is scored against ``n_keys`` random keys: images x keys null trials.
* Fixed words (Stable Diffusion marks): one trial per image, per message and colour path, for the
  hard decision (matched bits) and the soft one (:mod:`.soft_marks`' t, every word on every path).
  Folders of further unmarked photos (``negatives``, e.g. a public photo corpus) add one trial each
  to these tests: the soft t's spread depends on image content, which 21 photos' variants cover
  only in part.
* Each null is summarised by :mod:`.null_statistics` (a beta-binomial fitted by maximum
  likelihood, widened to dominate the measured tail; for soft t values a location-scale Student t,
  likewise widened). At check time :mod:`.null_model` reads the survival at the observed match
  count or t; detectors multiply it by their number of tests (Bonferroni).
"""
from __future__ import annotations

import math
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

import cv2
import numpy as np

from provenance.datasets.perturbations import Brightness, Crop, Resize, jpeg_round_trip, posted_crop
from provenance.generators.photos import image_paths, sample_photo
from provenance.imageio import ImageLoadError, load_image

from . import fast, payload, soft_marks, thirdparty
from .null_model import TARGET_FPR
from .null_statistics import keyed_matches, summarise, summarise_soft
from .schemes import SCHEMES
from .size import MIN_PIXELS, size_problem

KEYED_SCHEMES = ("dwtDct", "dwtDctSvd", "rivaGan")
MAX_VARIANT_PIXELS = 1_500_000
RIVAGAN_MAX_PIXELS = 320 * 320  # rivaGan costs seconds per image: its negatives are kept small

COLOUR_PHOTOS = (
    "astronaut", "chelsea", "coffee", "hubble_deep_field", "immunohistochemistry", "retina",
    "rocket", "motorcycle_left", "motorcycle_right", "sklearn_china", "sklearn_flower",
)
GREY_PHOTOS = ("brick", "camera", "cell", "clock", "coins", "grass", "gravel", "moon", "page", "text")
GREY_SHARE = 0.2


def make_variant(rgb: np.ndarray, rng: np.random.Generator, max_pixels: int = MAX_VARIANT_PIXELS) -> np.ndarray:
    """A random unmarked variant of at least 256x256 area: the dataset perturbations (resize, crop,
    brightness, JPEG round trip) and flips, with parameters drawn here."""
    img = rgb
    h, w = img.shape[:2]
    smallest = math.sqrt(MIN_PIXELS / (h * w)) * 1.02  # the side factor that keeps 256x256 of area
    scale = rng.uniform(0.6, 2.0) if rng.random() < 0.5 else 1.0
    scale = max(min(scale, math.sqrt(max_pixels / (h * w))), smallest)
    if abs(scale - 1.0) > 1e-3:
        img = Resize().apply(img, {"factor": scale})
        h, w = img.shape[:2]
    if rng.random() < 0.6:
        keep_low = min(1.0, max(0.5, math.sqrt(MIN_PIXELS / (h * w)) * 1.02))
        img = Crop().apply(img, {"keep": rng.uniform(keep_low, 1.0), "x": rng.random(), "y": rng.random()})
    if rng.random() < 0.3:
        img = img[:, ::-1] if rng.random() < 0.5 else img[::-1]
    if rng.random() < 0.3:
        img = Brightness().apply(np.ascontiguousarray(img), {"factor": rng.uniform(0.8, 1.2)})
    if rng.random() < 0.5:
        img = jpeg_round_trip(np.ascontiguousarray(img), int(rng.integers(60, 96)))
    return np.ascontiguousarray(img)


def _variant(index: int, seed: int, cache: dict) -> np.ndarray:
    rng = np.random.default_rng([seed, index])
    pool = GREY_PHOTOS if rng.random() < GREY_SHARE else COLOUR_PHOTOS
    name = pool[int(rng.integers(len(pool)))]
    if name not in cache:
        cache[name] = sample_photo(name)
    return make_variant(cache[name], rng)


def _decode_chunk(args: tuple[list[int], int, int]) -> dict[str, np.ndarray]:
    """Decoded sync words (keyed schemes), match counts and soft t values (fixed marks) for some variants."""
    indices, seed, rivagan_images = args
    cache: dict = {}
    riva = SCHEMES.create("rivaGan") if any(i < rivagan_images for i in indices) else None
    out: dict[str, list] = {}
    for index in indices:
        bgr = np.ascontiguousarray(_variant(index, seed, cache)[:, :, ::-1])
        transforms = fast.Transforms(bgr)  # one colour conversion and DWT per path for every test
        votes = thirdparty.path_votes(transforms)
        svd = fast.block_votes(transforms, "dwtDctSvd")
        layout = payload.layout_for(None)
        out.setdefault("dwtDct/uint8", []).append(votes["uint8"].bits(layout.length)[: layout.sync_bits])
        out.setdefault("dwtDctSvd/uint8", []).append(svd.bits(layout.length)[: layout.sync_bits])
        for name, score in _fixed_word_scores(transforms).items():
            out.setdefault(name, []).append(score)
        if riva is not None and index < rivagan_images:
            h, w = bgr.shape[:2]
            if h * w > RIVAGAN_MAX_PIXELS:
                s = math.sqrt(RIVAGAN_MAX_PIXELS / (h * w))
                bgr = cv2.resize(bgr, (max(256, round(w * s)), max(256, round(h * s))), interpolation=cv2.INTER_AREA)
            out.setdefault("rivaGan/uint8", []).append(riva.decode_bits(bgr, riva.capacity))
    return {k: np.array(v) for k, v in out.items()}


def _fixed_word_scores(transforms: fast.Transforms) -> dict[str, float]:
    """Every Stable Diffusion test's score on one image: hard matched bits and soft t, by test name."""
    scores: dict[str, float] = dict(thirdparty.match_counts(thirdparty.path_votes(transforms)))
    scores.update(soft_marks.soft_statistics(transforms))
    return scores


def _decode_negatives(sources: Mapping[str, Sequence[Path]], crops: Sequence[int] = (),
                      seed: int = 0) -> tuple[dict[str, list], list[dict]]:
    """Fixed-word scores of every readable image of at least 256x256 in each source (a name and its
    files), and of a random ``crops`` px crop of each (one per size, where the image is large enough:
    block grids of every width, as crops posted online have them); per source how many were used."""
    out: dict[str, list] = {}
    used = []
    for name, paths in sources.items():
        count, cropped = 0, 0
        for index, path in enumerate(paths):
            try:
                image = load_image(path)
            except ImageLoadError:
                continue
            whole = [] if size_problem(image.width, image.height) else [image.rgb]
            rng = np.random.default_rng([seed, index])
            parts = [c for side in crops if (c := posted_crop(image.rgb, side, rng)) is not None]
            for rgb in whole + parts:
                for test, score in _fixed_word_scores(fast.Transforms(np.ascontiguousarray(rgb[:, :, ::-1]))).items():
                    out.setdefault(test, []).append(score)
            count, cropped = count + len(whole), cropped + len(parts)
        used.append({"source": name, "images": count, **({"crops": cropped, "crop_sides": list(crops)} if crops else {})})
    return out, used


def calibration_keys(n_keys: int, seed: int) -> list[str]:
    return [f"calibration-{seed}-{i}" for i in range(n_keys)]


def run_calibration(
    n_images: int = 2000,
    n_keys: int = 5000,
    seed: int = 0,
    rivagan_images: int = 40,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    negatives: Sequence[str | Path] = (),
    negative_files: Mapping[str, Sequence[Path]] | None = None,
    negative_crops: Sequence[int] = (),
) -> dict:
    """Decode ``n_images`` unmarked variants (and, for the fixed-word tests, every image in the
    ``negatives`` folders and the named ``negative_files``, plus a ``negative_crops`` px crop of each)
    and summarise every null; returns the JSON object."""
    workers = workers or min(2, os.cpu_count() or 1)
    chunk = max(10, n_images // (8 * workers))
    jobs = [(list(range(s, min(s + chunk, n_images))), seed, rivagan_images) for s in range(0, n_images, chunk)]
    parts: list[dict] = []
    if workers == 1:
        results: Iterable = map(_decode_chunk, jobs)
    else:
        pool = ProcessPoolExecutor(workers)
        results = pool.map(_decode_chunk, jobs)
    try:
        for part in results:
            parts.append(part)
            if progress:
                progress(sum(len(next(iter(p.values()))) for p in parts), n_images)
    finally:
        if workers != 1:
            pool.shutdown()
    merged = {name: np.concatenate([p[name] for p in parts if name in p]) for name in {k for p in parts for k in p}}
    sources = {str(folder): image_paths(folder) for folder in negatives} | dict(negative_files or {})
    extra, negatives_used = _decode_negatives(sources, negative_crops, seed)
    for name, values in extra.items():
        merged[name] = np.concatenate([merged[name], np.asarray(values, dtype=merged[name].dtype)])

    keys = calibration_keys(n_keys, seed)
    tests = {}
    for name in sorted(merged):
        values = merged[name]
        scheme = name.split("/")[0]
        if scheme in KEYED_SCHEMES:
            tests[name] = {"kind": "keyed", **summarise(keyed_matches(values, scheme, keys), values.shape[1], len(values), n_keys)}
            continue
        mark = next(m for m in thirdparty.KNOWN_MARKS if m.name == scheme)
        if name.endswith("/" + soft_marks.STATISTIC):
            tests[name] = {"kind": "soft", "statistic": soft_marks.STATISTIC_TEXT,
                           **summarise_soft(values, mark.length, len(values), soft_marks.soft_dof(mark.length))}
        else:
            tests[name] = {"kind": "fixed", **summarise(values, mark.length, len(values), None)}
    return {
        "version": 1,
        "target_fpr": TARGET_FPR,
        "settings": {"n_images": n_images, "n_keys": n_keys, "seed": seed, "rivagan_images": rivagan_images,
                     "negatives": negatives_used},
        "sources": {"colour": list(COLOUR_PHOTOS), "grey": list(GREY_PHOTOS), "grey_share": GREY_SHARE},
        "p_value": "max(beta-binomial survival, Binomial(n, 1/2) survival, and for keyed tests the "
        "balanced-key worst case) at the observed matches, per test; soft tests: max(Student t with "
        "bits - G - 1 dof (G: the most column classes allowed), the fitted location-scale t) at the observed t; detectors multiply by their tests",
        "tests": tests,
    }


