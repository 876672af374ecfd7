"""Real photos enlarged: how often ``check`` calls an upscaled real photo synthetic, and which detector says so.

Interpolation leaves the smooth, correlated pixels that the residual-based classifiers read as a
generator's trace, and their thresholds were set on photos at native resolution. Each of ``--n``
photos under ``--photos`` (seeded order, at least ``--crop`` px on the short side) gives one centred
``--crop`` px crop, enlarged by each of ``--scales`` (bicubic) and saved as JPEG ``--quality`` (or
PNG, ``--format png``: whether the re-compression or the crop itself moves the classifiers); every
file is checked with all default detectors (in this process). The table counts labels per scale and,
per detector, the files it called synthetic (MODERATE evidence) or left uncertain; then the photos
behind every (likely) synthetic label.

    python -m benchmarks upscaled_reals --photos CORPUS/real --n 60 --scales 1,2,3 [--held-out-of CORPUS]

Baseline, same run and same evidence: the verdict had the toy classifiers (``cnn``, ``spectral``)
kept the thresholds that their last ``train detector tighten`` replaced (``threshold_replaced`` in
their ``classifier.json``; session 16 raised them on crops of real photos). ``--held-out-of CORPUS``
leaves out the photos of the corpus's validation split, on which those thresholds were set.
"""
from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.real_crops import FLAGGED, held_out_photos, relabelled, replaced_thresholds
from benchmarks.timing import capability_line, print_table

LABELS = ("no_evidence_of_synthesis", "inconclusive", "likely_synthetic", "synthetic")


def enlarged(photo: Image.Image, crop: int, scale: float, quality: int, fmt: str = "jpeg") -> bytes:
    w, h = photo.size
    left, top = (w - crop) // 2, (h - crop) // 2
    side = round(crop * scale)
    image = photo.crop((left, top, left + crop, top + crop)).resize((side, side), Image.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, "PNG") if fmt == "png" else image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    from detectors.results import Signal
    from provenance.check import Checker, NamedBytes
    from provenance.generators.photos import IMAGE_SUFFIXES

    parser = argparse.ArgumentParser(prog="python -m benchmarks upscaled_reals")
    parser.add_argument("--photos", required=True, help="folder of real photos (the detection corpus's real/)")
    parser.add_argument("--n", type=int, default=60, help="photos")
    parser.add_argument("--scales", default="1,2,3", help="enlargements, comma-separated")
    parser.add_argument("--crop", type=int, default=384, help="side of the centred crop before enlarging (px)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality of the enlarged files")
    parser.add_argument("--format", choices=("jpeg", "png"), default="jpeg", help="how the enlarged files are saved")
    parser.add_argument("--held-out-of", type=Path, default=None, metavar="CORPUS",
                        help="leave out the photos of this corpus's validation split (the toy thresholds were set on them)")
    args = parser.parse_args(argv if argv is not None else [])
    scales = [float(v) for v in args.scales.split(",") if v.strip()]
    paths = sorted(p for p in Path(args.photos).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if args.held_out_of:
        kept = {p.resolve() for p in held_out_photos(args.held_out_of)}
        paths = [p for p in paths if p.resolve() in kept]
    before = replaced_thresholds()
    order = np.random.default_rng(1).permutation(len(paths))
    photos: list[tuple[str, Image.Image]] = []
    for i in order:
        if len(photos) == args.n:
            break
        try:
            with Image.open(paths[i]) as image:
                if min(image.size) >= args.crop:
                    photos.append((str(paths[i]), image.convert("RGB")))
        except OSError:
            continue
    saved = "PNG" if args.format == "png" else f"JPEG q{args.quality}"
    print(capability_line(), f"| {len(photos)} photos of {args.photos!r}"
          + (" outside the corpus's validation split" if args.held_out_of else "")
          + f", centred {args.crop} px crops, bicubic, {saved}")
    print("baseline (same evidence): the toy classifiers at their thresholds before the last tightening: "
          + (", ".join(f"{k} {v:.4f}" for k, v in before.items()) or "none recorded"))
    checker = Checker()
    started = time.perf_counter()
    rows, flagged = [], []
    for scale in scales:
        labels: Counter[str] = Counter()
        flagged_before = 0
        said: Counter[str] = Counter()
        unsure: Counter[str] = Counter()
        for name, photo in photos:
            data = enlarged(photo, args.crop, scale, args.quality, args.format)
            verdict = checker.check_one(NamedBytes(f"{Path(name).stem}_x{scale:g}.{args.format}", data))
            labels[verdict.label.value] += 1
            flagged_before += relabelled(verdict.evidence, before) in FLAGGED
            if verdict.label.value in ("likely_synthetic", "synthetic"):
                flagged.append(f"x{scale:g} {verdict.label.value}: {Path(name).relative_to(args.photos)}")
            for evidence in verdict.evidence:
                said[evidence.detector] += evidence.signal == Signal.SYNTHETIC
                unsure[evidence.detector] += evidence.signal == Signal.UNCERTAIN
        rows.append([f"x{scale:g}", len(photos), flagged_before] + [labels[label] for label in LABELS]
                    + [", ".join(f"{d} {n}" for d, n in sorted(said.items()) if n) or "none",
                       ", ".join(f"{d} {n}" for d, n in sorted(unsure.items()) if n) or "none"])
    print_table(["enlarged", "photos", "(likely) synthetic, thresholds before"] + list(LABELS)
                + ["detector said synthetic", "detector uncertain"], rows)
    print("\n" + "\n".join(flagged) if flagged else "\nno photo called (likely) synthetic")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
