"""Computer-rendered graphics that no AI made: charts and text images drawn here with Pillow, as a
platform sees in screenshots, infographics and memes. How does ``check`` label them, and which
detectors say what? The trained classifiers learnt photographs against generator output, so these
are outside what they were trained on: a known gap (README "Trained classifiers"), measured here so
that a fix can be shown against it.

Each image is drawn from a seeded generator: a line, bar or scatter chart with axes and labels, or
a page of text lines with a coloured box, at 600-1400 x 400-900 px, saved as PNG or JPEG q85 in turn.

    python -m benchmarks rendered_graphics [--n 60] [--seed 0]
"""
from __future__ import annotations

import argparse
import io
import time
from collections import Counter

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from benchmarks.timing import capability_line, print_table

LABELS = ("no_evidence_of_synthesis", "inconclusive", "likely_synthetic", "synthetic")


def _font(rng: np.random.Generator):
    try:
        return ImageFont.load_default(size=int(rng.integers(12, 28)))
    except TypeError:  # Pillow < 10.1: one bitmap size
        return ImageFont.load_default()


def chart(rng: np.random.Generator, kind: int) -> Image.Image:
    w, h = int(rng.integers(600, 1400)), int(rng.integers(400, 900))
    image = Image.new("RGB", (w, h), "white")
    draw = ImageDraw.Draw(image)
    left, bottom, right, top = 60, h - 50, w - 20, 40
    draw.line([(left, top), (left, bottom), (right, bottom)], fill="black", width=2)
    font = _font(rng)
    draw.text((left, 10), "Quarterly results by region", fill="black", font=font)
    for k in range(6):
        y = bottom - k * (bottom - top) // 6
        draw.line([(left - 5, y), (left, y)], fill="black")
        draw.text((10, y - 8), f"{k * 20}", fill="black", font=font)
    colour = tuple(int(v) for v in rng.integers(0, 200, 3))
    if kind == 0:
        ys = bottom - (np.cumsum(rng.normal(size=20)) - -10) / 20 * (bottom - top)
        xs = np.linspace(left, right, 20)
        draw.line([(float(x), float(np.clip(y, top, bottom))) for x, y in zip(xs, ys)], fill=colour, width=3)
    elif kind == 1:
        bars = rng.uniform(0.1, 1.0, 8)
        step = (right - left) / 8
        for i, b in enumerate(bars):
            draw.rectangle([left + i * step + 8, bottom - b * (bottom - top), left + (i + 1) * step - 8, bottom], fill=colour)
    else:
        for x, y in rng.normal(size=(200, 2)):
            cx, cy = left + (x + 3) / 6 * (right - left), bottom - (y + 3) / 6 * (bottom - top)
            draw.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], fill=colour)
    return image


def text_page(rng: np.random.Generator) -> Image.Image:
    w, h = int(rng.integers(600, 1400)), int(rng.integers(400, 900))
    image = Image.new("RGB", (w, h), tuple(int(v) for v in rng.integers(200, 256, 3)))
    draw = ImageDraw.Draw(image)
    font = _font(rng)
    y = 10
    while y < h - 30:
        words = "".join(rng.choice(list("abcdefghij "), 30))
        draw.text((20, y), f"Breaking: council approves new budget for {words}", fill="black", font=font)
        y += int(rng.integers(20, 40))
    draw.rectangle((w - 200, 20, w - 20, 120), fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    return image


def images(n: int, seed: int):
    rng = np.random.default_rng(seed)
    for i in range(n):
        kind = "text" if i % 2 else "chart"
        image = text_page(rng) if kind == "text" else chart(rng, (i // 2) % 3)
        buffer = io.BytesIO()
        fmt = "png" if (i // 2) % 2 == 0 else "jpeg"
        image.save(buffer, "PNG") if fmt == "png" else image.save(buffer, "JPEG", quality=85)
        yield kind, fmt, f"{kind}_{i}.{'png' if fmt == 'png' else 'jpg'}", buffer.getvalue()


def main(argv: list[str] | None = None) -> None:
    from detectors.results import Signal
    from provenance.check import Checker, NamedBytes

    parser = argparse.ArgumentParser(prog="python -m benchmarks rendered_graphics")
    parser.add_argument("--n", type=int, default=60, help="images (half charts, half text pages)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv if argv is not None else [])
    print(capability_line(), f"| {args.n} rendered charts and text pages (seed {args.seed}), PNG and JPEG q85")
    checker = Checker()
    started = time.perf_counter()
    groups: dict[tuple[str, str], Counter] = {}
    said: dict[tuple[str, str], Counter] = {}
    flagged = []
    for kind, fmt, name, data in images(args.n, args.seed):
        verdict = checker.check_one(NamedBytes(name, data))
        groups.setdefault((kind, fmt), Counter())[verdict.label.value] += 1
        for e in verdict.evidence:
            if e.signal in (Signal.SYNTHETIC, Signal.UNCERTAIN):
                said.setdefault((kind, fmt), Counter())[f"{e.detector} {e.signal.value}"] += 1
        if verdict.label.value in ("likely_synthetic", "synthetic"):
            flagged.append(f"{name}: " + "; ".join(r for r in verdict.reasons[:1]))
    rows = [[f"{kind}, {fmt}", sum(c.values())] + [c[label] for label in LABELS]
            + [", ".join(f"{k} {v}" for k, v in sorted(said.get((kind, fmt), Counter()).items())) or "none"]
            for (kind, fmt), c in sorted(groups.items())]
    print_table(["images", "n"] + list(LABELS) + ["detectors: synthetic / uncertain"], rows)
    print("\n" + "\n".join(flagged) if flagged else "\nnone called (likely) synthetic")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
