"""The CNN's int8 graph against its float32 graph: the same verdicts? how much faster?

Each image is cut into the tiles ``check`` scores (at most ``max_tiles``, spread evenly) and scored by
both onnxruntime graphs of the shipped (or given) CNN; the table gives, per source folder, how many
images each flags at the shipped threshold, how many change their category (flagged / uncertain
band / below it) from one graph to the other, and the largest change in calibrated probability. A
last table times both graphs on one batch of tiles, one thread, in the same run.

    python -m benchmarks cnn_precision --real DIR [--real DIR ...] [--synthetic DIR ...] [--classifier FOLDER]

A source is the first folder level under each DIR (e.g. ``real/imagenet/...`` -> ``imagenet``).
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from benchmarks.folders import DecodedImages
from benchmarks.timing import machine_line, print_table


def main(argv: list[str]) -> int:
    from detectors.learned import load_classifier
    from detectors.learned.cnn import ONNX_FILE, ONNX_INT8_FILE, OnnxTileModel
    from detectors.learned.tiles import cut_tiles
    from provenance.precision import describe
    from provenance.shipped import CLASSIFIERS_DIR

    parser = argparse.ArgumentParser(prog="python -m benchmarks cnn_precision")
    parser.add_argument("--classifier", type=Path, default=CLASSIFIERS_DIR / "cnn", help="a CNN classifier folder")
    parser.add_argument("--real", action="append", type=Path, required=True)
    parser.add_argument("--synthetic", action="append", type=Path, default=[])
    parser.add_argument("--limit", type=int, default=0, help="at most this many images per DIR (0: all)")
    parser.add_argument("--time-also", action="append", default=[], metavar="NAME=GRAPH",
                        help="another ONNX graph of the same network timed in the same run (e.g. an earlier "
                             "release's, from `git show REV:detectors/weights/cnn/cnn.int8.onnx > old.onnx`)")
    args = parser.parse_args(argv)

    model = load_classifier(args.classifier)
    graphs = {"fp32": OnnxTileModel(args.classifier / ONNX_FILE), "int8": OnnxTileModel(args.classifier / ONNX_INT8_FILE)}
    point = model.operating_point

    def category(p: float) -> str:
        return "flagged" if p >= point.threshold else "uncertain" if p >= point.band_low else "below"

    scores: dict[str, list[tuple[float, float]]] = defaultdict(list)
    too_small = 0
    images = DecodedImages(args.real, args.synthetic, args.limit)
    for kind, source, rgb in images:
        tiles = cut_tiles(rgb, model.tile, model.max_tiles)[0]
        if not len(tiles):
            too_small += 1
            continue
        pair = tuple(float(model.probability(np.array([graphs[g](tiles).mean()]))[0]) for g in ("fp32", "int8"))
        scores[f"{kind}/{source}"].append(pair)
    skipped = images.skipped + too_small

    print(machine_line(), describe(), f"classifier={args.classifier} threshold={point.threshold:.4f} "
          f"band_low={point.band_low:.4f} max_tiles={model.max_tiles} skipped={skipped}")
    rows, total = [], np.zeros(3, int)
    for source, pairs in sorted(scores.items()):
        fp32, int8 = zip(*pairs)
        flagged = [sum(category(p) == "flagged" for p in ps) for ps in (fp32, int8)]
        changed = sum(category(a) != category(b) for a, b in pairs)
        flag_changed = sum((category(a) == "flagged") != (category(b) == "flagged") for a, b in pairs)
        total += (len(pairs), changed, flag_changed)
        rows.append([source, len(pairs), flagged[0], flagged[1], flag_changed, changed,
                     f"{max(abs(a - b) for a, b in pairs):.4f}"])
    rows.append(["all", total[0], "", "", total[2], total[1], ""])
    print_table(["source", "images", "flagged fp32", "flagged int8", "flag changed", "category changed",
                 "max P change"], rows)

    tiles = np.random.default_rng(0).integers(0, 256, (model.max_tiles, model.tile, model.tile, 3), dtype=np.uint8)
    timed = {**graphs, **{name: OnnxTileModel(Path(path)) for name, path in (a.split("=", 1) for a in args.time_also)}}
    runs: dict[str, list[float]] = {name: [] for name in timed}
    for graph in timed.values():
        graph(tiles)
    for _ in range(15):  # interleaved: a burst of load falls on every graph alike
        for name, graph in timed.items():
            start = time.perf_counter()
            graph(tiles)
            runs[name].append(time.perf_counter() - start)
    timing = [[name, len(tiles), f"{statistics.median(r) * 1000:.1f}", f"{min(r) * 1000:.1f}"] for name, r in runs.items()]
    fp32_ms = float(timing[0][2])
    for row in timing:
        row.append(f"{fp32_ms / float(row[2]):.2f}x")
    print()
    print_table(["graph", "tiles", "median ms", "min ms", "speed vs fp32"], timing)
    return 0
