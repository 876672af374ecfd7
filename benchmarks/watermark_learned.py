"""The learned mark vs dwtDctSvd vs rivaGan on held-out photos: bit accuracy and detection at the
calibrated threshold (FPR 1e-6 per test, corrected for the views the learned decoder searches),
PSNR, and embed/decode time at 512 px and 1080p. Same images, same run. A second table applies the
WAVES benchmark's distortion list (:mod:`benchmarks.waves`: 8 single distortions and 4
combinations) at the relative strengths given by ``--waves-strengths``.

    python -m benchmarks.watermark_learned --weights RUN/weights.safetensors --real PHOTO_DIR

Held-out photos are the training run's held-out split of ``--real`` (same seeded group split);
several crops of each make up the image count. ``--photos DIR`` takes distinct photos instead, one
image per photo, from a folder the weights never saw (e.g. the real photos of the detection corpus,
``provenance dataset corpus rebuild``): seeded, spread over its sub-folders (sources), and only
photos large enough to cover each size without upscaling. Without learned weights only the
baselines run.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from functools import partial
from pathlib import Path

import cv2
import numpy as np

from benchmarks import waves
from benchmarks.timing import machine_line, median_ms, print_table
from benchmarks.watermark_robustness import _jpeg

DEFAULT_WEIGHTS = os.environ.get("PROVENANCE_LEARNED_WEIGHTS", "")
KEY = "benchmark-key"


def _rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """Rotation with black corners, as an editor leaves them (the older table reflects the border)."""
    matrix = cv2.getRotationMatrix2D((rgb.shape[1] / 2, rgb.shape[0] / 2), degrees, 1)
    return cv2.warpAffine(rgb, matrix, (rgb.shape[1], rgb.shape[0]), borderMode=cv2.BORDER_CONSTANT)


def _scale(rgb: np.ndarray, factor: float) -> np.ndarray:
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC)


def _crop_area(rgb: np.ndarray, area: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    ch, cw = round(h * area**0.5), round(w * area**0.5)
    top, left = (h - ch) // 3, (w - cw) * 2 // 3  # off-centre: no grid or centre happens to line up
    return rgb[top:top + ch, left:left + cw]


def _crop_anywhere(area: float) -> "waves.Attack":
    """A crop keeping ``area`` of the image (same aspect) at a random position (the caller's generator)."""
    def crop(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = rgb.shape[:2]
        ch, cw = round(h * area**0.5), round(w * area**0.5)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        return rgb[top:top + ch, left:left + cw]
    return crop


UNMARKED = "unmarked image (a detection is a false positive)"
CROPS_ANYWHERE = {f"crop to {round(100 * a)}% area, random position": _crop_anywhere(a) for a in (0.81, 0.64, 0.5)}


def _screenshot(rgb: np.ndarray) -> np.ndarray:
    """Screen capture of a scaled-down display, a little brighter, re-encoded: 0.7x, gamma 0.9, JPEG 80."""
    small = _scale(rgb, 0.7)
    brighter = np.clip(255 * (small / 255.0) ** 0.9, 0, 255).round().astype(np.uint8)
    return _jpeg(brighter, 80)


ATTACKS = {
    "none": lambda x: x,
    "JPEG q50": lambda x: _jpeg(x, 50),
    "crop to 50% area": lambda x: _crop_area(x, 0.5),
    "rotate 10 deg": lambda x: _rotate(x, 10),
    "resize 0.5x": lambda x: _scale(x, 0.5),
    "screenshot (0.7x, gamma, JPEG 80)": _screenshot,
    "brightness +20%": lambda x: np.clip(x * 1.2, 0, 255).round().astype(np.uint8),
    "horizontal flip": lambda x: np.ascontiguousarray(x[:, ::-1]),
}


def held_out_images(real: str, n: int, size: tuple[int, int], seed: int = 0) -> list[np.ndarray]:
    """``n`` RGB images of ``size`` (w, h): crops of the held-out photos, resized to cover ``size``."""
    from provenance.generators.photos import DEFAULT_HOLDOUT_GROUPS, load_photos, split_photos

    photos = load_photos(real, max_side=None)
    holdout = DEFAULT_HOLDOUT_GROUPS if real == "default" else None
    _, held = split_photos(photos, seed=0, holdout_groups=holdout)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        rgb = held[i % len(held)].rgb
        h, w = rgb.shape[:2]
        frac = 1.0 if i < len(held) else rng.uniform(0.6, 0.9)  # first pass: whole photos; then crops
        ch, cw = int(h * frac), int(w * frac)
        top, left = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
        crop = rgb[top:top + ch, left:left + cw]
        scale = max(size[0] / cw, size[1] / ch)
        resized = cv2.resize(crop, (max(size[0], round(cw * scale)), max(size[1], round(ch * scale))),
                             interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        y, x = (resized.shape[0] - size[1]) // 2, (resized.shape[1] - size[0]) // 2
        out.append(np.ascontiguousarray(resized[y:y + size[1], x:x + size[0]]))
    return out, len(held)


def distinct_photos(folder: str, n: int, size: tuple[int, int], seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Up to ``n`` RGB images of ``size`` (w, h), one per photo under ``folder``: photos that cover
    ``size`` upright without upscaling (the width at least w, the height at least h), in a seeded order that takes
    one photo from each sub-folder in turn, so every source is represented; and their paths."""
    from PIL import Image

    from provenance.generators.photos import IMAGE_SUFFIXES, cover
    from provenance.imageio import ImageLoadError, load_image

    root = Path(folder)
    by_source: dict[str, list[Path]] = {}
    for path in sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            with Image.open(path) as im:
                w, h = im.size
        except OSError:
            continue
        if min(w, h) >= min(size) and max(w, h) >= max(size):
            by_source.setdefault(path.relative_to(root).parts[0], []).append(path)
    rng = np.random.default_rng(seed)
    queues = [list(rng.permutation(np.array(paths, dtype=object))) for _, paths in sorted(by_source.items())]
    order = []
    while any(queues):
        order += [q.pop(0) for q in queues if q]
    out, names = [], []
    for path in order:
        if len(out) == n:
            break
        try:
            rgb = load_image(path).rgb
        except ImageLoadError:
            continue
        if rgb.shape[1] < size[0] or rgb.shape[0] < size[1]:  # upright (EXIF) too narrow or too short
            continue
        out.append(cover(rgb, size))
        names.append(str(path.relative_to(root)))
    return out, names


def benchmark_images(real: str, photos: str | None, n: int, size: tuple[int, int]) -> tuple[list[np.ndarray], int, str]:
    """The images of one size and a description of where they come from."""
    if photos:
        images, names = distinct_photos(photos, n, size)
        return images, len(names), f"{len(names)} distinct photos of {photos!r} (none seen in training)"
    images, count = held_out_images(real, n, size)
    return images, count, f"{n} images from {count} held-out photos of {real!r}"


class Contender:
    """One scheme under test: embed our keyed payload, decide with its calibrated null."""

    def __init__(self, name: str, scheme, decide):
        self.name, self.scheme, self.decide = name, scheme, decide

    def payload(self):
        from provenance.watermark import payload

        wm_id = payload.WatermarkId(3, 12345) if payload.layout_for(self.scheme.capacity).has_id else None
        return payload.encode_payload(KEY, self.scheme.name, self.scheme.capacity, wm_id)


class ImwatermarkDecoding:
    """dwtDctSvd embedded as ours is, read by imwatermark's own decoder (not our block votes)."""

    def __init__(self):
        from provenance import watermark

        self.ours = watermark.get("dwtDctSvd")
        self.name, self.capacity = self.ours.name, self.ours.capacity

    def embed(self, bgr: np.ndarray, bits: np.ndarray) -> np.ndarray:
        return self.ours.embed(bgr, bits)

    def decode_bits(self, bgr: np.ndarray, length: int) -> np.ndarray:
        from imwatermark import WatermarkDecoder

        self.ours.check_image(bgr)
        return np.asarray(WatermarkDecoder("bits", length).decode(np.ascontiguousarray(bgr), "dwtDctSvd"), dtype=bool)


def contenders(weights: str, calibration_images: int, before_calibration: str | None = None,
               compare: str | None = None, hard: bool = False, imwatermark: bool = False,
               int8: bool = False, embed_strengths: tuple[float, ...] = ()) -> list[Contender]:
    """The learned mark (and, where ``before_calibration`` is given, '' for a fresh one, the same
    weights without crop registration; where ``compare`` names other weights, those too, each with
    their own null; with ``int8``, the learned mark on its float32 and on its int8 graphs side by
    side; with ``embed_strengths``, the learned mark embedded at each of those residual scales too,
    same decoder and null), dwtDctSvd and rivaGan."""
    from provenance import watermark
    from provenance.watermark import decision
    from provenance.watermark.null_model import Calibration

    shipped = Calibration()

    def classical(bgr, scheme):
        return decision.decode_scheme(bgr, scheme, [KEY], 1, shipped)[0]

    out = [Contender("dwtDctSvd", watermark.get("dwtDctSvd"), classical),
           Contender("rivaGan", watermark.get("rivaGan"), classical)]
    if imwatermark:  # the same marks and null; the bits from the reference decoder
        out.insert(1, Contender("dwtDctSvd, imwatermark's decoder", ImwatermarkDecoding(), classical))
    if weights and Path(weights).is_file():
        from provenance.watermark.learned.calibrate import calibrate, calibration_path, decode_learned

        learned = watermark.get("learned", weights=weights, search=True)
        if not calibration_path(weights).is_file():
            print(f"calibrating the learned null on {calibration_images} unmarked variants ...", flush=True)
            calibrate(learned, n_images=calibration_images, n_keys=2000)
        cal = Calibration(calibration_path(weights))
        entry = cal.data["tests"]["learned/uint8"]
        print(f"learned null: {entry['trials']} trials ({entry['images']} images x {entry['views']} views x "
              f"{entry['keys']} keys), sd {entry['sd']:.2f} (binomial {entry['binomial_sd']:.2f}), "
              f"max {entry['max_matches']}/64, threshold at 1e-6: {entry['threshold_at_1e-6']}/64 "
              f"before the x{learned.trials} view correction")
        if int8:
            learned = watermark.get("learned", weights=weights, search=True, int8=False)
            out.insert(0, Contender("learned, int8 graphs", watermark.get("learned", weights=weights, search=True, int8=True),
                                    lambda bgr, scheme: decode_learned(bgr, scheme, [KEY], cal)[0]))
        out.insert(0, Contender("learned, float32 graphs" if int8 else "learned", learned,
                                lambda bgr, scheme: decode_learned(bgr, scheme, [KEY], cal)[0]))
        for position, strength in enumerate(embed_strengths, start=1):  # the same decoder and null; marks scaled
            out.insert(position, Contender(f"learned, strength {strength:g}",
                                           watermark.get("learned", weights=weights, search=True, strength=strength),
                                           lambda bgr, scheme: decode_learned(bgr, scheme, [KEY], cal)[0]))
        if hard:  # the same weights and views, deciding on hard sync-bit matches (the calibrated null)
            out.insert(1, Contender("learned, hard decisions", watermark.get("learned", weights=weights, soft=False),
                                    lambda bgr, scheme: decode_learned(bgr, scheme, [KEY], cal)[0]))
        if before_calibration is not None:  # the same weights without registration: the fixed 3x3 crop grid
            grid = watermark.get("learned", weights=weights, search=True, registration=None)
            path = Path(before_calibration) if before_calibration else Path(tempfile.mkdtemp()) / "grid.json"
            if not path.is_file():
                print(f"calibrating the no-registration null on {calibration_images} unmarked variants ...", flush=True)
                calibrate(grid, n_images=calibration_images, n_keys=2000, out=path)
            before = Calibration(path)
            if before.data["tests"]["learned/uint8"]["views"] != grid.trials:
                raise SystemExit(f"{path} was calibrated for another view set, not the {grid.trials} views of the grid")
            out.insert(1, Contender(f"learned, no registration ({grid.trials} views)", grid,
                                    lambda bgr, scheme: decode_learned(bgr, scheme, [KEY], before)[0]))
        if compare:
            other = watermark.get("learned", weights=compare, search=True)
            if not calibration_path(compare).is_file():
                raise SystemExit(f"{compare}: no null beside it ({calibration_path(compare).name})")
            other_null = Calibration(calibration_path(compare))
            out.insert(1, Contender(f"learned, {Path(compare).parent.name}/{Path(compare).name}", other,
                                    lambda bgr, scheme: decode_learned(bgr, scheme, [KEY], other_null)[0]))
    else:
        print(f"no learned weights at {weights!r} (--weights or PROVENANCE_LEARNED_WEIGHTS): baselines only")
    return out


def _seeded(edit):
    return lambda rgb, rng: edit(rgb)


def robustness(images: list[np.ndarray], schemes: list[Contender], riva_images: int,
               attacks: dict[str, waves.Attack]) -> tuple[dict, dict, dict]:
    """Embed every scheme's mark in every image, apply every attack (each (image, attack) gets its
    own seeded generator, so every scheme meets the same random crops and erasures) and decide."""
    from skimage.metrics import structural_similarity

    from provenance.watermark.marking import psnr

    stats = {(c.name, a): [0, 0.0, 0] for c in schemes for a in (UNMARKED, *attacks)}  # detected, bit acc sum, n
    quality = {c.name: [] for c in schemes}
    similarity = {c.name: [] for c in schemes}
    for index, rgb in enumerate(images):
        for c in schemes:
            if c.name == "rivaGan" and index >= riva_images:
                continue
            false_positive = stats[c.name, UNMARKED]
            false_positive[0] += bool(c.decide(np.ascontiguousarray(rgb[:, :, ::-1]), c.scheme).detected)
            false_positive[2] += 1
            bits = c.payload()
            marked_bgr = c.scheme.embed(np.ascontiguousarray(rgb[:, :, ::-1]), bits)
            marked = np.ascontiguousarray(marked_bgr[:, :, ::-1])
            quality[c.name].append(psnr(rgb, marked))
            similarity[c.name].append(structural_similarity(rgb, marked, channel_axis=2, data_range=255))
            for number, (attack, edit) in enumerate(attacks.items()):
                bgr = np.ascontiguousarray(edit(marked, np.random.default_rng([index, number]))[:, :, ::-1])
                try:
                    result = c.decide(bgr, c.scheme)
                    decoded = c.scheme.decode_bits(bgr, bits.size)
                except ValueError:  # e.g. under the 256x256 area the classical schemes need
                    result, decoded = None, ~bits
                cell = stats[c.name, attack]
                cell[0] += bool(result and result.detected)
                cell[1] += float(np.mean(decoded == bits))
                cell[2] += 1
    return stats, quality, similarity


def timings(schemes: list[Contender], images: dict[str, list[np.ndarray]], riva_max_side: int = 600) -> list[list]:
    """Per size: embed and decide on the first image and on a crop of it (median of repeats), and
    decide on every image unmarked (median over them: the learned search does more work on some
    images than others)."""
    rows = []
    for c in schemes:
        row = [c.name]
        for label, group in images.items():
            if c.name == "rivaGan" and max(group[0].shape[:2]) > riva_max_side:
                row += ["(skipped)"] * 4
                continue
            bgr = np.ascontiguousarray(group[0][:, :, ::-1])
            bits = c.payload()
            repeats = 1 if c.name == "rivaGan" else 3
            marked = c.scheme.embed(bgr, bits)
            row.append(f"{median_ms(partial(c.scheme.embed, bgr, bits), repeats):.0f}")
            row.append(f"{median_ms(partial(c.decide, marked, c.scheme), repeats):.0f}")
            h, w = marked.shape[:2]  # a centred crop to 64% of the area: the learned search's whole path
            crop = np.ascontiguousarray(marked[h // 10: h - h // 10, w // 10: w - w // 10])
            row.append(f"{median_ms(partial(c.decide, crop, c.scheme), repeats):.0f}")
            unmarked = group[:1] if c.name == "rivaGan" else group
            row.append(f"{np.median([median_ms(partial(c.decide, np.ascontiguousarray(rgb[:, :, ::-1]), c.scheme), 1) for rgb in unmarked]):.0f}")
        rows.append(row)
    return rows


def cpu_line() -> str:
    import torch

    flags = ""
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        pass
    native_bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    return (f"torch {torch.__version__}, cpu capability {torch.backends.cpu.get_cpu_capability()}, "
            f"bf16 native: {native_bf16}, torch threads {torch.get_num_threads()}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watermark_learned")
    parser.add_argument("--weights", default=DEFAULT_WEIGHTS, help="learned weights (.safetensors)")
    parser.add_argument("--real", default="default", help="photo folder the run trained on, or 'default'")
    parser.add_argument("--photos", default=None, metavar="DIR",
                        help="distinct photos the weights never saw, one image each (instead of crops of --real's held-out split)")
    parser.add_argument("--images", type=int, default=16, help="held-out images at 512 px")
    parser.add_argument("--images-1080", type=int, default=6, help="held-out images at 1920x1080")
    parser.add_argument("--rivagan-images", type=int, default=6, help="rivaGan is seconds per image: fewer")
    parser.add_argument("--calibration-images", type=int, default=300)
    parser.add_argument("--timing-images", type=int, default=10, help="unmarked images timed per size")
    parser.add_argument("--before", nargs="?", const="", default=None, metavar="CALIBRATION",
                        help="also run the learned weights without crop registration (the 14-view grid), with "
                             "this calibration file of theirs (none given: calibrate one)")
    parser.add_argument("--compare", default=None, metavar="WEIGHTS",
                        help="other learned weights (with their .calibration.json) to run side by side")
    parser.add_argument("--hard", action="store_true",
                        help="also decide the learned mark on hard sync-bit matches (the decision before soft votes)")
    parser.add_argument("--imwatermark", action="store_true",
                        help="also read dwtDctSvd with imwatermark's own decoder (slow at 1080p)")
    parser.add_argument("--int8", action="store_true",
                        help="the learned mark on its float32 and its int8 graphs side by side (default: as this CPU runs it)")
    parser.add_argument("--embed-strengths", default="", metavar="S,S",
                        help="also the learned mark embedded at these strengths (residual scales; 1 is the default)")
    parser.add_argument("--waves-strengths", default="0.2,0.4,0.6",
                        help="WAVES relative strengths in [0, 1], comma-separated ('' skips the WAVES table)")
    args = parser.parse_args(argv if argv is not None else [])
    import torch

    torch.set_num_threads(1)
    print(machine_line(), "|", cpu_line())
    started = time.perf_counter()
    strengths = [float(v) for v in args.waves_strengths.split(",") if v.strip()]
    schemes = contenders(args.weights, args.calibration_images, args.before, args.compare, args.hard, args.imwatermark,
                         args.int8, tuple(float(v) for v in args.embed_strengths.split(",") if v.strip()))
    for size, n in (((512, 512), args.images), ((1920, 1080), args.images_1080)):
        if n <= 0:
            continue
        images, _, origin = benchmark_images(args.real, args.photos, n, size)
        base = {**{name: _seeded(edit) for name, edit in ATTACKS.items()}, **CROPS_ANYWHERE}
        attacks = {**base, **waves.attacks(strengths)}
        stats, quality, similarity = robustness(images, schemes, args.rivagan_images if size[0] <= 512 else 0, attacks)
        print(f"\n{size[0]}x{size[1]}: {origin}; "
              "cell = detected at the calibrated threshold (FPR 1e-6) / mean bit accuracy")
        shown = [c for c in schemes if stats[c.name, "none"][2]]

        def cells(names):
            def cell(name, attack):
                detected, accuracy, count = stats[name, attack]
                return f"{detected}/{count}" + ("" if attack == UNMARKED else f" / {accuracy / count:.2f}")
            return [[attack] + [cell(c.name, attack) for c in shown] for attack in names]

        def total(label, names):
            return [label] + [f"{sum(stats[c.name, a][0] for a in names)}/{sum(stats[c.name, a][2] for a in names)}"
                              for c in shown]

        rows = cells(base) + [total("detected, all attacks", base)] + cells([UNMARKED])
        rows.append(["PSNR dB mean (min)"] + [f"{np.mean(quality[c.name]):.1f} ({np.min(quality[c.name]):.1f})"
                                               for c in shown])
        rows.append(["SSIM mean (min)"] + [f"{np.mean(similarity[c.name]):.4f} ({np.min(similarity[c.name]):.4f})"
                                            for c in shown])
        print_table(["attack"] + [c.name for c in shown], rows)
        if strengths:
            named = [a for a in attacks if a not in base]
            print(f"\nWAVES distortions at {size[0]}x{size[1]} (same images and marks; s = WAVES relative strength)")
            rows = cells(named) + [total(f"detected, all WAVES s={s:g}", [a for a in named if f" s={s:g} " in a])
                                   for s in strengths]
            print_table(["WAVES attack"] + [c.name for c in shown], rows)
    if args.timing_images <= 0:
        print(f"\ntotal {time.perf_counter() - started:.0f} s")
        return
    timing_images = {"512": benchmark_images(args.real, args.photos, args.timing_images, (512, 512))[0],
                     "1080p": benchmark_images(args.real, args.photos, args.timing_images, (1920, 1080))[0]}
    views = ", ".join(f"{c.name} reads {c.scheme.trials} views" for c in schemes if c.name.startswith("learned"))
    print(f"\nmedian ms (embed / decide incl. decode of the marked image / of its centred crop to 64% of the area / "
          f"median over {args.timing_images} unmarked images (rivaGan: 1); {views})")
    print_table(["scheme", "embed 512", "decode 512", "crop 512", "unmarked 512",
                 "embed 1080p", "decode 1080p", "crop 1080p", "unmarked 1080p"],
                timings(schemes, timing_images))
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
