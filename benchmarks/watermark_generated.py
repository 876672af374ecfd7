"""Our generators' own output, marked as ``provenance generate`` marks it (the shipped scheme at the
family's strength), under the attacks a platform applies: detection at the calibrated threshold
(FPR 1e-6), the share of images whose generator ID and serial are read back correctly, and how
many gave a wrong ID (the worst outcome: a false attribution).

    python -m benchmarks.watermark_generated [--generator gan] [--images 32] [--size 512]

Generated texture is not a photo's (the GAN's output hid the mark at strength 1.0), so the photo
table of ``benchmarks.watermark_learned`` does not speak for it. Crops are at a random position,
then saved as JPEG q90, as a platform re-encodes an upload. Baseline in the same run: the same images
and attacks with the mark at the scheme's default strength (what photos get: 1.2 since session 16, 1.0
before).
"""
from __future__ import annotations

import argparse
import sys

import cv2
import numpy as np

from benchmarks.timing import capability_line, print_table
from benchmarks.watermark_learned import _crop_anywhere
from benchmarks.watermark_robustness import _jpeg


def _crop(area: float):
    crop_anywhere = _crop_anywhere(area)
    return lambda rgb, rng: _jpeg(crop_anywhere(rgb, rng), 90)


ATTACKS = {
    "none": lambda rgb, rng: rgb,
    "JPEG q75": lambda rgb, rng: _jpeg(rgb, 75),
    "JPEG q50": lambda rgb, rng: _jpeg(rgb, 50),
    "resize 0.5x + JPEG q90": lambda rgb, rng: _jpeg(cv2.resize(rgb, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA), 90),
    **{f"crop to {round(100 * a)}% area, random position, JPEG q90": _crop(a) for a in (0.81, 0.64, 0.5)},
}


def run(generator: str, n: int, size: int, seed: int) -> tuple[list[str], list[list]]:
    from provenance.generation import ImageMaker, GenerateOptions
    from provenance.watermark import payload
    from provenance.watermark.decision import best, decode_watermark
    from provenance.watermark.marking import Mark, embed_mark

    with ImageMaker(generator, GenerateOptions(size=size, seed=seed, c2pa=False, watermark=False)) as maker:
        clean = maker.sample(0, n)
        shipped, code = maker.generator.learned_mark_strength, maker.watermark_code
    from provenance.watermark.learned.scheme import DEFAULT_STRENGTH

    strengths = sorted({DEFAULT_STRENGTH, float(shipped if shipped is not None else DEFAULT_STRENGTH)})
    counts = {(s, a): [0, 0, 0] for s in strengths for a in ATTACKS}  # detected, right ID, wrong ID
    for index, rgb in enumerate(clean):
        wm_id = payload.WatermarkId(code, 1000 + index)
        for strength in strengths:
            marked = embed_mark(rgb, Mark(scheme="learned", watermark_id=wm_id, strength=strength))
            for number, (attack, edit) in enumerate(ATTACKS.items()):
                attacked = edit(marked, np.random.default_rng([index, number]))
                try:
                    result = best(decode_watermark(np.ascontiguousarray(attacked[:, :, ::-1]), schemes=("learned",)))
                except ValueError:  # smaller than the area the scheme reads: not detected
                    continue
                counts[strength, attack][0] += bool(result.detected)
                counts[strength, attack][1] += bool(result.detected and result.watermark_id == wm_id)
                counts[strength, attack][2] += bool(result.detected and result.watermark_id not in (None, wm_id))
    headers = ["attack"] + [f"strength {s:g}{' (shipped)' if s == shipped else ''}: detected / ID read / wrong ID"
                            for s in strengths]
    rows = [[attack] + [f"{counts[s, attack][0]}/{n} / {counts[s, attack][1]}/{n} / {counts[s, attack][2]}" for s in strengths]
            for attack in ATTACKS]
    return headers, rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watermark_generated", description=__doc__.splitlines()[0])
    parser.add_argument("--generator", default="gan")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=6100)
    args = parser.parse_args(argv if argv is not None else [])
    print(capability_line())
    headers, rows = run(args.generator, args.images, args.size, args.seed)
    print(f"\n{args.generator}, {args.images} images at {args.size} px, learned mark (shipped weights and null)")
    print_table(headers, rows)


if __name__ == "__main__":
    main(sys.argv[1:])
