"""What a classifier's tile budget buys: verdicts and time with at most 64, 32 and 16 tiles per image.

A classifier scores native-resolution tiles and averages their logits; ``max_tiles`` bounds the cost
on large images by scoring tiles spread evenly over the image. This benchmark scores every tile of
each image once, then forms the image score each budget would give (the same evenly spread subset
``check`` takes), and reports, per source folder, the share of images flagged at the shipped
threshold for each budget, how many verdicts a smaller budget changes against the largest, the
AUC when synthetic folders are given, and the model's time for one budget's tiles.

    python -m benchmarks tile_budget --classifier cnn --real DIR [--real DIR ...] [--synthetic DIR ...]

A source is the first folder level under each DIR (e.g. ``real/imagenet/...`` -> ``imagenet``).
"""
from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.folders import DecodedImages
from benchmarks.timing import machine_line, print_table

BUDGETS = (64, 32, 16)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks tile_budget")
    parser.add_argument("--classifier", default="cnn", help="a shipped classifier family, or a trained classifier folder")
    parser.add_argument("--real", action="append", type=Path, required=True)
    parser.add_argument("--synthetic", action="append", type=Path, default=[])
    parser.add_argument("--limit", type=int, default=0, help="at most this many images per DIR (0: all)")
    args = parser.parse_args(argv)

    from sklearn.metrics import roc_auc_score

    from detectors import REGISTRY
    from detectors.learned.tiles import tile_grid

    options = {} if args.classifier in REGISTRY else {"weights": args.classifier}
    detector = REGISTRY.create(args.classifier if not options else _family(Path(args.classifier)), **options)
    model = detector.model
    tile = model.tile
    threshold = model.operating_point.threshold

    scores: dict[str, list[tuple[int, dict[int, float]]]] = defaultdict(list)
    seconds = defaultdict(float)
    too_small = 0
    images = DecodedImages(args.real, args.synthetic, args.limit)
    for kind, source, rgb in images:
        corners = tile_grid(rgb.shape[0], rgb.shape[1], tile, 10**9)
        if not corners:
            too_small += 1
            continue
        where = {corner: i for i, corner in enumerate(corners)}
        logits = model.tile_logits(np.stack([rgb[y:y + tile, x:x + tile] for y, x in corners]))
        per_budget = {}
        for budget in BUDGETS:
            chosen = [where[c] for c in tile_grid(rgb.shape[0], rgb.shape[1], tile, budget)]
            per_budget[budget] = float(model.probability(np.array([logits[chosen].mean()]))[0])
            start = time.perf_counter()
            model.tile_logits(np.stack([rgb[y:y + tile, x:x + tile] for y, x in (corners[i] for i in chosen)]))
            seconds[budget] += time.perf_counter() - start
        scores[f"{kind}/{source}"].append((int(kind == "synthetic"), per_budget))
    skipped = images.skipped + too_small

    print(machine_line(), f"classifier={args.classifier} tile={tile}px threshold={threshold:.4f} skipped={skipped}")
    rows = []
    for source, items in sorted(scores.items()):
        flagged = [f"{np.mean([s[b] >= threshold for _, s in items]):.3f}" for b in BUDGETS]
        rows.append([source, len(items), *flagged])
    print_table(["source", "images", *[f"flagged, {b} tiles" for b in BUDGETS]], rows)
    everything = [item for items in scores.values() for item in items]
    labels = [label for label, _ in everything]
    summary = []
    for budget in BUDGETS:
        changed = sum((s[budget] >= threshold) != (s[BUDGETS[0]] >= threshold) for _, s in everything)
        auc = roc_auc_score(labels, [s[budget] for _, s in everything]) if len(set(labels)) == 2 else float("nan")
        summary.append([budget, changed, len(everything), f"{auc:.4f}", f"{seconds[budget] * 1000 / max(1, len(everything)):.1f}"])
    print()
    print_table(["max tiles", f"verdicts changed vs {BUDGETS[0]}", "images", "AUC", "model ms / image"], summary)
    return 0


def _family(folder: Path) -> str:
    import json

    from provenance.shipped import CLASSIFIER_META_FILE

    return json.loads((folder / CLASSIFIER_META_FILE).read_text())["family"]
