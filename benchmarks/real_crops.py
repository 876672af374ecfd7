"""Real photos as stored and as posted crops: how often ``check`` flags them, with the toy classifiers'
thresholds as shipped and as they were before their last tightening (same evidence, same run), and
what that tightening costs on our own generators' unmarked output.

Photos: the corpus's real photos outside its validation split (the split ``train detector tighten``
sets the toy thresholds on, so every photo here is held out from that step). Views of each: the file
as stored; a centred 384 px crop re-saved as JPEG q90; a 256 px crop at a seeded random position,
JPEG q85. ``--own``: a folder of our generators' unmarked images, e.g. from
``provenance dataset build --n-real 0 --watermark-fraction 0``. Every view is checked once by all
default detectors; the baseline's label re-judges the toy classifiers' probabilities at their
``threshold_replaced`` (``classifier.json``) and fuses the same evidence again.

    python -m benchmarks real_crops --corpus CORPUS [--own DIR] [--limit N]
"""
from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

from benchmarks.timing import capability_line, print_table

FLAGGED = ("likely_synthetic", "synthetic")
TOY_CLASSIFIERS = ("cnn", "spectral")
VIEWS = {"as stored": None, "centred 384 px crop, JPEG q90": (384, "centre", 90),
         "random 256 px crop, JPEG q85": (256, "random", 85)}


def replaced_thresholds() -> dict[str, float]:
    """The thresholds the toy classifiers had before their last tightening (none recorded: left out)."""
    from detectors.learned import load_classifier
    from provenance.shipped import CLASSIFIERS_DIR

    out = {}
    for name in TOY_CLASSIFIERS:
        record = load_classifier(CLASSIFIERS_DIR / name).training.get("corpus_threshold", {})
        if "threshold_replaced" in record:
            out[name] = record["threshold_replaced"]
    return out


def relabelled(evidence: list, thresholds: dict[str, float]) -> str:
    """The fused label had these classifiers used ``thresholds`` (same probabilities, same bands)."""
    from detectors.fusion import fuse
    from detectors.results import Signal, Strength

    def judged(e):
        if e.detector not in thresholds or e.probability is None or e.signal not in (
                Signal.SYNTHETIC, Signal.UNCERTAIN, Signal.NONE):
            return e
        if e.probability >= thresholds[e.detector]:
            return replace(e, signal=Signal.SYNTHETIC, strength=Strength.MODERATE)
        if e.probability >= e.details.get("band_low", 1.0):
            return replace(e, signal=Signal.UNCERTAIN, strength=Strength.NONE)
        return replace(e, signal=Signal.NONE, strength=Strength.NONE)

    return fuse([judged(e) for e in evidence])[0].value


def held_out_photos(corpus: Path) -> list[Path]:
    """The corpus's real photos outside its validation split."""
    from provenance.corpus_detector import corpus_samples

    return sorted(Path(s.image.path) for s in corpus_samples(corpus) if not s.label and s.split != "validation")


def view(path: Path, spec, rng: np.random.Generator):
    """The file itself, or the crop ``spec`` (side, where, JPEG quality) as bytes; None if too small."""
    from PIL import Image

    from provenance.check import NamedBytes

    if spec is None:
        return str(path)
    side, where, quality = spec
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    w, h = rgb.size
    if min(w, h) < side:
        return None
    left, top = ((w - side) // 2, (h - side) // 2) if where == "centre" else (
        int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1)))
    buffer = io.BytesIO()
    rgb.crop((left, top, left + side, top + side)).save(buffer, "JPEG", quality=quality)
    return NamedBytes(f"{path.stem}_{side}.jpg", buffer.getvalue())


def main(argv: list[str] | None = None) -> None:
    from provenance.check import Checker
    from provenance.generators.photos import image_paths

    parser = argparse.ArgumentParser(prog="python -m benchmarks real_crops")
    parser.add_argument("--corpus", type=Path, required=True, help="the public corpus (`dataset corpus rebuild --out`)")
    parser.add_argument("--own", type=Path, default=None, help="our generators' unmarked images (folder, recursive)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many photos (seeded sample)")
    args = parser.parse_args(argv if argv is not None else [])
    photos = held_out_photos(args.corpus)
    if args.limit and len(photos) > args.limit:
        photos = [photos[i] for i in sorted(np.random.default_rng(0).choice(len(photos), args.limit, replace=False))]
    before = replaced_thresholds()
    print(capability_line(), f"| {len(photos)} real photos of the corpus outside its validation split")
    print("baseline (same evidence): toy thresholds before the last tightening: "
          + (", ".join(f"{k} {v:.4f}" for k, v in before.items()) or "none recorded"))
    checker = Checker()
    started = time.perf_counter()
    sets = [(f"real, {name}", [view(p, spec, np.random.default_rng([16, i])) for i, p in enumerate(photos)])
            for name, spec in VIEWS.items()]
    if args.own:
        own = image_paths(args.own)
        sets.append(("ours, unmarked (synthetic)", [str(p) for p in own]))
    rows, flagged_names = [], []
    for name, sources in sets:
        sources = [s for s in sources if s is not None]
        now, then = Counter(), Counter()
        for start in range(0, len(sources), 16):
            for verdict in checker.check(sources[start:start + 16]):
                now[verdict.label.value] += 1
                then[relabelled(verdict.evidence, before)] += 1
                if name.startswith("real") and verdict.label.value in FLAGGED:
                    said = [e.detector for e in verdict.evidence if e.signal.value == "synthetic"]
                    flagged_names.append(f"{name}: {Path(verdict.source).name} ({', '.join(said)})")
        rows.append([name, len(sources), sum(then[k] for k in FLAGGED), sum(now[k] for k in FLAGGED),
                     then["inconclusive"], now["inconclusive"]])
    print_table(["views", "n", "(likely) synthetic, before", "(likely) synthetic, shipped",
                 "inconclusive, before", "inconclusive, shipped"], rows)
    print("\n" + "\n".join(flagged_names) if flagged_names else "\nno real view called (likely) synthetic")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
