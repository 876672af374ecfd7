"""Crop registration with the distilled placement scorer vs the decoder's own dense trunk (the
teacher it was distilled from): detections of the learned mark on crops, and decode time, on the
same images in the same run, contenders interleaved image by image: the teacher alone (the release
before the scorer), the cascade (the scorer first, the search redone on the teacher's exact scores
where the scorer's best reaches ``exact_above``) at 1.3 reading every view as session 13 shipped it,
the shipped one (since session 14: the gate at 1.5, and the registered views left unread where the
search found nothing confident, ``read_unconfident=False``), and with ``--scorer-alone`` the scorer
alone (``exact_above=None``). Cells give the median decode time; on unmarked images the mean is what
a scan pays (the exact redo where the gate opens), so both are printed there.

    python -m benchmarks watermark_scorer --photos CORPUS/real --images 100 --images-1080 60

The photos are :func:`benchmarks.watermark_learned.distinct_photos` of ``--photos``, the same ones
as that benchmark's distinct-photo tables; the scorer's metadata lists the photos it was distilled
on, and the table says how many of the benchmark's are among them (0 for a fair run: train with
``--exclude`` from ``--list``). Every decision is the shipped one (soft sync votes, FPR 1e-6
corrected for every view read); only the placement scores differ.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from benchmarks.timing import capability_line
from benchmarks.watermark_learned import CROPS_ANYWHERE, distinct_photos
from provenance.markdown import markdown_table

KEY = "benchmark-key"
SIZES = {"512": (512, 512), "1080p": (1920, 1080)}


def _crop_then_jpeg(area: float, quality: int):
    crop = CROPS_ANYWHERE[f"crop to {round(100 * area)}% area, random position"]

    def edit(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ok, encoded = cv2.imencode(".jpg", np.ascontiguousarray(crop(rgb, rng)[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(encoded, cv2.IMREAD_COLOR)[:, :, ::-1]
    return edit


ATTACKS = {**CROPS_ANYWHERE, "crop to 50% area, random position, JPEG 80": _crop_then_jpeg(0.5, 80),
           "none (uncropped)": lambda rgb, rng: rgb}
UNMARKED = {"unmarked, crop to 64% area (a detection is a false positive)": CROPS_ANYWHERE["crop to 64% area, random position"],
            "unmarked, whole (a detection is a false positive)": lambda rgb, rng: rgb}


def main(argv: list[str] | None = None) -> None:
    from provenance.watermark import payload
    from provenance.watermark.learned.calibrate import decode_learned
    from provenance.watermark.learned.registration import RegistrationConfig
    from provenance.watermark.learned.scheme import SHIPPED_WEIGHTS, LearnedScheme, scorer_path
    from provenance.watermark.learned.scorer import scorer_metadata

    parser = argparse.ArgumentParser(prog="python -m benchmarks watermark_scorer")
    parser.add_argument("--photos", required=True, help="folder of photos (the detection corpus's real/)")
    parser.add_argument("--weights", default=str(SHIPPED_WEIGHTS), help="learned weights (.safetensors)")
    parser.add_argument("--images", type=int, default=100, help="distinct photos at 512 px")
    parser.add_argument("--images-1080", type=int, default=60, help="distinct photos at 1920x1080")
    parser.add_argument("--list", action="store_true", help="print the benchmark's photos (for --exclude) and stop")
    parser.add_argument("--scorer-alone", action="store_true", help="add the distilled scorer alone (no cascade)")
    args = parser.parse_args(argv if argv is not None else [])
    chosen = {name: distinct_photos(args.photos, n, SIZES[name]) for name, n in (("512", args.images), ("1080p", args.images_1080)) if n}
    if args.list:
        print("\n".join(sorted({p for _, names in chosen.values() for p in names})))
        return
    weights = Path(args.weights)
    distilled = scorer_path(weights)
    if not distilled.is_file():
        raise SystemExit(f"no distilled scorer beside {weights} ({distilled}): train one with 'provenance train watermark-scorer'")
    seen = set(scorer_metadata(distilled).get("photos", []))
    print(capability_line(), "| onnxruntime, 1 thread per scheme")
    started = time.perf_counter()
    every_view = RegistrationConfig(read_unconfident=True)
    session_13 = replace(every_view, exact_above=1.3)
    contenders = {"teacher alone (session 12)": LearnedScheme(weights, distilled=False, registration=every_view),
                  "scorer, then teacher at 1.3 (session 13)": LearnedScheme(weights, registration=session_13),
                  "scorer, then teacher at 1.5, unconfident views unread (shipped)": LearnedScheme(weights)}
    if args.scorer_alone:
        contenders["scorer alone"] = LearnedScheme(weights, registration=replace(every_view, exact_above=None))
    bits = payload.encode_payload(KEY, "learned", LearnedScheme.capacity)
    for size, (images, names) in chosen.items():
        overlap = len(seen & set(names))
        rows = _run(images, contenders, bits, decode_learned)
        print(f"\n{size}: {len(images)} distinct photos of {args.photos!r}; {overlap} of them among the scorer's "
              f"{len(seen)} training photos; cell = detected / median decode ms")
        header = ["edit"] + list(contenders)
        print(markdown_table(header, [[edit] + [f"{d}/{len(images)} / {median:.0f}" + (f" (mean {mean:.0f})" if edit in UNMARKED else "")
                                                for d, median, mean in cells] for edit, cells in rows]))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


def _run(images: list[np.ndarray], contenders: dict, bits: np.ndarray, decide) -> list[tuple[str, list[tuple[int, float, float]]]]:
    edits = {**ATTACKS, **UNMARKED}
    found = {(e, c): 0 for e in edits for c in contenders}
    times: dict[tuple[str, str], list[float]] = {(e, c): [] for e in edits for c in contenders}
    marker = next(iter(contenders.values()))
    for i, rgb in enumerate(images):
        marked = marker.embed(np.ascontiguousarray(rgb[:, :, ::-1]), bits)[:, :, ::-1]
        for j, (edit, fn) in enumerate(edits.items()):
            source = rgb if edit in UNMARKED else marked
            bgr = np.ascontiguousarray(fn(np.ascontiguousarray(source), np.random.default_rng([i, j]))[:, :, ::-1])
            order = list(contenders.items())
            for name, scheme in order[i % len(order):] + order[:i % len(order)]:  # none always runs first
                start = time.perf_counter()
                result = decide(bgr, scheme, [KEY])[0]
                times[edit, name].append((time.perf_counter() - start) * 1000)
                found[edit, name] += result.detected
    return [(edit, [(found[edit, c], float(np.median(times[edit, c])), float(np.mean(times[edit, c]))) for c in contenders])
            for edit in edits]
