"""Computer-rendered graphics that no AI made: how does ``check`` label them, with the rendered-graphic
gate (the trained classifiers abstain where it fires) and without it (the baseline, same images,
same run)? And what does the gate cost on the corpus's held-out pictures?

- Pillow drawings made here (a renderer the gate was not trained on): a line, bar or scatter chart
  with axes and labels, or a page of text lines with a coloured box, at 600-1400 x 400-900 px, saved
  as PNG or JPEG q85 in turn;
- ``--graphics DIR``: graphics from elsewhere, one folder per kind (e.g. public repositories'
  charts, screenshots, diagrams and text images), each checked as it is and re-saved as JPEG q80
  (``--dithered``: and as a PNG on the fixed web palette, dithered, like an 8-bit screenshot);
  ``benchmarks/rendered_graphics_index.csv`` pins 587 such images from 11 public repositories
  (repository, commit, path, SHA-256, licence); ``--rebuild-graphics DIR --mirror-dir MIRRORS``
  writes them from fetched snapshots of those repositories (as ``dataset corpus rebuild`` does);
- ``--corpus CORPUS``: the test split of the public corpus (photos and generated images, as stored):
  how many the gate calls rendered, and whether any generated image loses its flag; with
  ``--pasted 0.25,0.5,0.75`` also each generated image inside a drawn page (a screenshot of a post)
  filling that share of it, where a gated screenshot costs the classifiers' say on the picture.

    python -m benchmarks rendered_graphics [--n 60] [--seed 0] [--graphics DIR] [--corpus CORPUS [--pasted SHARES]] [--dithered]
    python -m benchmarks rendered_graphics --rebuild-graphics DIR --mirror-dir /work/.mirror
"""
from __future__ import annotations

import argparse
import io
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

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


def labelled(checker, sources) -> tuple[Counter, list[str], dict[str, str]]:
    """Label counts, the images every classifier abstained on as rendered, and the flagged ones (name ->
    the detectors that said synthetic)."""
    from detectors.results import Signal

    labels, gated, flagged = Counter(), [], {}
    for start in range(0, len(sources), 16):
        for verdict in checker.check(sources[start:start + 16]):
            labels[verdict.label.value] += 1
            name = Path(str(verdict.source)).name
            classifiers = [e for e in verdict.evidence if e.family == "classifier"]
            if classifiers and all(e.signal == Signal.SKIPPED and "rendered_graphic_probability" in e.details
                                   for e in classifiers):
                gated.append(name)
            if verdict.label.value in LABELS[2:]:
                flagged[name] = ", ".join(e.detector for e in verdict.evidence if e.signal == Signal.SYNTHETIC)
    return labels, gated, flagged


def resaved(paths: list, how: str) -> list:
    """The images re-saved as JPEG q80 ("q80") or as a PNG on the fixed web palette, dithered ("dithered":
    an 8-bit screenshot, an old web GIF)."""
    from provenance.check import NamedBytes

    out = []
    for path in paths:
        with Image.open(path) as image:
            buffer = io.BytesIO()
            if how == "q80":
                image.convert("RGB").save(buffer, "JPEG", quality=80)
            else:
                image.convert("RGB").convert("P", palette=Image.Palette.WEB, dither=Image.Dither.FLOYDSTEINBERG).save(buffer, "PNG")
        out.append(NamedBytes(f"{Path(path).stem}_{how}.{'jpg' if how == 'q80' else 'png'}", buffer.getvalue()))
    return out


def folder_sets(folder: Path, dithered: bool) -> list[tuple[str, list]]:
    """One set per sub-folder of ``folder`` as the files are, one of their JPEG q80 re-saves (and of their
    dithered re-saves)."""
    from provenance.generators.photos import image_paths

    sets = []
    for kind in sorted(p for p in folder.iterdir() if p.is_dir()):
        paths = image_paths(kind)
        sets += [(f"{folder.name}/{kind.name}, as stored", [str(p) for p in paths]),
                 (f"{folder.name}/{kind.name}, JPEG q80", resaved(paths, "q80"))]
        sets += [(f"{folder.name}/{kind.name}, web palette dithered", resaved(paths, "dithered"))] if dithered else []
    return sets


def corpus_sets(corpus: Path, pasted: list[float], seed: int, dithered: bool) -> list[tuple[str, list]]:
    """The corpus's test photos and generated images as stored (and dithered); with ``pasted``, also each
    generated image inside a drawn page (a screenshot of a post), filling that share of the page's area."""
    from provenance.check import NamedBytes
    from provenance.corpus_detector import corpus_samples
    from provenance.datasets.graphics import page, posted

    test = [s for s in corpus_samples(corpus) if s.split == "test"]
    generated = [s.image.path for s in test if s.label]
    photos = [s.image.path for s in test if not s.label]
    sets = [("corpus test photos, as stored", photos), ("corpus test generated, as stored", generated)]
    if dithered:
        sets += [("corpus test photos, web palette dithered", resaved(photos, "dithered")),
                 ("corpus test generated, web palette dithered", resaved(generated, "dithered"))]
    rng = np.random.default_rng(seed)
    for share in pasted:
        screenshots = []
        for path in generated:
            with Image.open(path) as picture:
                canvas = page(rng)
                scale = min(np.sqrt(share * canvas.width * canvas.height / (picture.width * picture.height)),
                            canvas.width / picture.width, canvas.height / picture.height)
                size = (max(16, int(picture.width * scale)), max(16, int(picture.height * scale)))
                canvas.paste(picture.convert("RGB").resize(size, Image.Resampling.LANCZOS),
                             ((canvas.width - size[0]) // 2, (canvas.height - size[1]) // 2))
            data, suffix = posted(rng, canvas)
            screenshots.append(NamedBytes(f"{Path(path).stem}_in_page{suffix}", data))
        sets.append((f"corpus test generated, in a drawn page ({share:.0%} of it)", screenshots))
    return sets


INDEX = Path(__file__).with_name("rendered_graphics_index.csv")


@dataclass(frozen=True)
class IndexedGraphic:
    """A row of the index, shaped as :func:`provenance.datasets.corpus.rebuild` reads rows."""

    kind: str
    repo: str
    commit: str
    path: str
    sha256: str
    licence: str
    file: str

    def out_path(self, out: Path) -> Path:
        return Path(out) / self.file


def rebuild_graphics(out: Path, mirror_dir: Path) -> None:
    import csv

    from provenance.datasets.corpus import rebuild

    with INDEX.open(newline="") as handle:
        rows = [IndexedGraphic(**row) for row in csv.DictReader(handle)]
    report = rebuild(mirror_dir, out, rows)
    print(f"{out}: {report.written} written, {report.already_present} already there, {len(report.missing)} missing")
    for problem in report.missing[:10]:
        print(f"  {problem['repo']} {problem['path']}: {problem['problem']}")


def main(argv: list[str] | None = None) -> None:
    from provenance.check import CheckConfig, Checker, NamedBytes, default_detectors
    from provenance.shipped import shipped_classifiers

    parser = argparse.ArgumentParser(prog="python -m benchmarks rendered_graphics")
    parser.add_argument("--n", type=int, default=60, help="Pillow drawings (half charts, half text pages)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--graphics", type=Path, action="append", default=[],
                        help="a folder of graphics, one sub-folder per kind (repeatable)")
    parser.add_argument("--corpus", type=Path, default=None, help="the public corpus: its test split's cost")
    parser.add_argument("--pasted", default="", metavar="SHARES",
                        help="with --corpus: also its generated images inside drawn pages at these area shares, e.g. 0.25,0.5,0.75")
    parser.add_argument("--dithered", action="store_true",
                        help="also every graphic and corpus picture re-saved on the fixed web palette, dithered")
    parser.add_argument("--rebuild-graphics", type=Path, default=None, metavar="DIR",
                        help="write the indexed public graphics to DIR from --mirror-dir, and stop")
    parser.add_argument("--mirror-dir", type=Path, default=Path("/work/.mirror"))
    args = parser.parse_args(argv if argv is not None else [])
    if args.rebuild_graphics:
        rebuild_graphics(args.rebuild_graphics, args.mirror_dir)
        return
    print(capability_line(), f"| {args.n} Pillow drawings (seed {args.seed})"
          + "".join(f" | {folder}" for folder in args.graphics) + (f" | corpus {args.corpus}" if args.corpus else ""))
    gated = Checker()
    ungated = Checker(CheckConfig(detector_options={name: {"rendered_gate": False} for name in shipped_classifiers()
                                                    if name in default_detectors()}))
    drawn: dict[str, list] = {}
    for kind, fmt, name, data in images(args.n, args.seed):
        drawn.setdefault(f"Pillow {kind}, {fmt}", []).append(NamedBytes(name, data))
    sets = list(drawn.items()) + [s for folder in args.graphics for s in folder_sets(folder, args.dithered)]
    pasted = [float(share) for share in args.pasted.split(",") if share.strip()]
    sets += corpus_sets(args.corpus, pasted, args.seed, args.dithered) if args.corpus else []
    started = time.perf_counter()
    rows, notes = [], []
    for name, sources in sets:
        with_gate, rendered, named = labelled(gated, sources)
        without, _, named_before = labelled(ungated, sources)
        rows.append([name, len(sources), len(rendered)]
                    + [f"{without[label]} -> {with_gate[label]}" for label in LABELS])
        if name.startswith("corpus"):  # pictures: which the gate took, and which flags it cost
            notes += [f"{name}: gated {n}" for n in rendered]
            notes += [f"{name}: flag lost {n} ({named_before[n]})" for n in sorted(set(named_before) - set(named))]
        else:  # graphics: every flag is a false one
            notes += [f"{name}: {n} ({said}) (with the gate)" for n, said in named.items()]
            notes += [f"{name}: {n} ({said}) (without)" for n, said in named_before.items()]
    print_table(["images", "n", "gated (classifiers abstain)"] + [f"{label}: without -> with the gate" for label in LABELS],
                rows)
    print("\n" + "\n".join(notes) if notes else "\nno graphic called (likely) synthetic, no picture gated")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
