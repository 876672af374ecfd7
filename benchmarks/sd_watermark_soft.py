"""Hard vs soft decisions of the ``sd-watermark`` detector on real files.

For every image under the ``--marked`` roots (Stable Diffusion outputs written by the reference
scripts) and the ``--unmarked`` roots (photos and other images without an SD mark), the detector's
own records say which tests fire at FPR 1e-6 after its correction:

* ``hard, 5 tests`` -- the baseline: imwatermark's bits on the reference paths, corrected for
  those 5 tests only (the detector before soft decisions);
* ``hard`` / ``soft`` / ``either`` -- the detector now: the same hard tests plus a soft t on every
  word and colour path, all corrected for every test;
* with ``--soft-before CALIBRATION`` (the calibration file shipped before column classes), also
  ``soft, plain t (before)``: the soft t across all bit positions at once, read against that file's
  nulls with the same correction -- the statistic a texture varying by column could fool.

Rows are grouped by folder (marked roots) or by the first folder under each root (unmarked ones). Optionally (``--resave``) every marked
file is also re-saved as JPEG (4:4:4 and 4:2:0 chroma) and read again. Prints the per-image time
of the hard tests alone and of hard + soft on the same images.

    python -m benchmarks sd_watermark_soft --marked DIR --unmarked DIR [--unmarked DIR ...]
"""
from __future__ import annotations

import argparse
import io
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.timing import machine_line, print_table

SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
LEVEL = 1e-6


def _files(root: Path, limit: int | None) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file())
    if limit and len(files) > limit:
        rng = np.random.default_rng(0)
        files = [files[i] for i in sorted(rng.choice(len(files), limit, replace=False))]
    return files


def _group(root: Path, path: Path, kind: str) -> str:
    """Marked files: by folder (each repository's grids and samples apart); others: by top folder."""
    parts = path.relative_to(root).parts[:-1]
    if kind == "marked":
        return "/".join((root.name,) + parts)
    return "/".join((root.name,) + parts[:1])


def _resaved(image, subsampling: int, quality: int):
    from PIL import Image

    from provenance.imageio import load_image

    buffer = io.BytesIO()
    Image.fromarray(image.rgb).save(buffer, "JPEG", quality=quality, subsampling=subsampling)
    return load_image(buffer.getvalue(), name=f"{image.source}.q{quality}.jpg")


def outcome(evidence) -> dict:
    """Which decisions detect, from the detector's own records."""
    from provenance.watermark import thirdparty

    results = evidence.details.get("results", [])
    hard = [r for r in results if r["decision"] == "hard"]
    soft = [r for r in results if r["decision"] == "soft"]
    baseline_tests = len(thirdparty.tests())
    return {
        "baseline": any(r["p_value"] * baseline_tests <= LEVEL for r in hard),
        "hard": any(r["corrected_p"] <= LEVEL for r in hard),
        "soft": any(r["corrected_p"] <= LEVEL for r in soft),
        "either": evidence.signal.value == "synthetic",
        "best_t": max((r["t"] for r in soft), default=float("nan")),
        "best_soft": max(soft, key=lambda r: r["t"])["test"] if soft else "",
        "min_corrected_p": min((r["corrected_p"] for r in results), default=1.0),
    }


def main(argv: list[str] | None = None) -> int:
    import detectors
    from provenance.imageio import ImageLoadError, load_image
    from provenance.precision import describe
    from provenance.watermark import fast, soft_marks, thirdparty
    from provenance.watermark import null_model as wm_null

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--marked", action="append", default=[], help="Root of SD-script outputs (repeatable).")
    parser.add_argument("--unmarked", action="append", default=[], help="Root of images without an SD mark (repeatable).")
    parser.add_argument("--limit", type=int, default=None, help="At most this many files per root (seeded sample).")
    parser.add_argument("--soft-before", type=Path, default=None, metavar="CALIBRATION",
                        help="Also the soft decision before column classes, with this (earlier) calibration file.")
    parser.add_argument("--resave", type=int, default=0, metavar="Q",
                        help="Also re-save every marked file as JPEG quality Q (4:4:4 and 4:2:0) and read it again.")
    args = parser.parse_args(argv)

    detector = detectors.create("sd-watermark")
    before = wm_null.Calibration(args.soft_before) if args.soft_before else None
    print(f"{machine_line()} {describe()}; sd-watermark: {len(thirdparty.tests())} hard + "
          f"{len(soft_marks.soft_tests())} soft tests, FPR {LEVEL:g} after correcting for all of them")
    rows: dict[tuple[str, str], list[dict]] = defaultdict(list)
    hard_ms, all_ms, errors = [], [], 0
    for kind, roots in (("marked", args.marked), ("unmarked", args.unmarked)):
        for root in map(Path, roots):
            for path in _files(root, args.limit):
                try:
                    image = load_image(str(path))
                except ImageLoadError as exc:
                    errors += 1
                    print(f"{path}: {exc}")
                    continue
                variants = [("as stored", image)]
                if kind == "marked" and args.resave:
                    variants += [(f"JPEG q{args.resave} 4:4:4", _resaved(image, 0, args.resave)),
                                 (f"JPEG q{args.resave} 4:2:0", _resaved(image, 2, args.resave))]
                for label, variant in variants:
                    if variant.width * variant.height < 256 * 256:
                        continue
                    start = time.perf_counter()
                    evidence = detector.detect(variant)
                    all_ms.append((time.perf_counter() - start) * 1000)
                    if label == "as stored":  # the baseline's cost on the same image
                        bgr = fast.of_image(variant).bgr
                        start = time.perf_counter()
                        thirdparty.match_counts(thirdparty.path_votes(fast.Transforms(bgr)))
                        hard_ms.append((time.perf_counter() - start) * 1000)
                    result = outcome(evidence)
                    if before is not None:
                        plain = soft_marks.soft_statistics(fast.of_image(variant), soft_marks.unstratified_t)
                        result["before"] = any(before.null(name).p_value(t) * soft_marks.test_count() <= LEVEL
                                               for name, t in plain.items())
                    rows[(kind, f"{_group(root, path, kind)} ({label})")].append(result)

    table = []
    for (kind, group), outcomes in rows.items():
        n = len(outcomes)
        count = lambda key: sum(o[key] for o in outcomes)  # noqa: E731
        t = np.array([o["best_t"] for o in outcomes])
        table.append([kind, group, n, count("baseline"), count("hard"),
                      *([count("before")] if before is not None else []), count("soft"), count("either"),
                      f"{np.nanmedian(t):.1f}", f"{np.nanmin(t):.1f} / {np.nanmax(t):.1f}",
                      f"{min(o['min_corrected_p'] for o in outcomes):.2g}"])
    print_table(["set", "group", "files", "hard, 5 tests (before)", "hard",
                 *(["soft, plain t (before)"] if before is not None else []), "soft", "either (detector)",
                 "median best t", "min / max best t", "min corrected p"], table)
    if all_ms:
        print(f"\nper image: hard tests alone (baseline, own transforms) median {np.median(hard_ms):.1f} ms; "
              f"detector with hard + soft median {np.median(all_ms):.1f} ms; {errors} unreadable files")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
