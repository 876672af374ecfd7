"""Crop registration with the distilled placement scorer vs the decoder's own dense trunk (the
teacher it was distilled from), on float32 and int8 graphs: detections of the learned mark on crops,
and decode time, on the same images in the same run, contenders interleaved image by image: the
teacher alone, float32 (the release before the scorer); the cascade on float32 graphs as session 14
shipped it and as CPUs without VNNI still run it (the scorer first, the search redone on the
teacher's exact scores where the scorer's best reaches ``exact_above`` 1.5, registered views left
unread where the search found nothing confident); the same cascade on the int8 graphs refining 2
crop scales; and refining 3 (``int8_refine_scales``), which CPUs with VNNI run by default. With
``--scorer-alone`` the scorer alone (``exact_above=None``, float32). Cells give the median decode
time; on unmarked images the mean is what a scan pays (the exact redo where the gate opens), so both
are printed there.

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
    from provenance.onnx_int8 import is_int8, open_session
    from provenance.precision import use_int8
    from provenance.watermark import payload
    from provenance.watermark.learned.calibrate import decode_learned
    from provenance.watermark.learned.registration import RegistrationConfig
    from provenance.watermark.learned.scheme import (SHIPPED_WEIGHTS, LearnedScheme, onnx_path, placements_onnx_path,
                                                     scorer_onnx_path, scorer_path)
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
    graphs = {"decoder": onnx_path(weights), "placements": placements_onnx_path(weights), "scorer": scorer_onnx_path(weights)}
    print("int8 graphs:", ", ".join(f"{name} {'current' if graph.is_file() and is_int8(open_session(graph, True)) else 'missing or stale'}"
                                    for name, graph in graphs.items()), f"| this CPU runs them by default: {use_int8()}")
    contenders = {"teacher alone, fp32 (session 12)": LearnedScheme(weights, distilled=False, registration=every_view, int8=False),
                  "cascade, fp32 (session 14; CPUs without VNNI)": LearnedScheme(weights, int8=False),
                  "cascade, int8, refine 2 scales": LearnedScheme(weights, int8=True, registration=RegistrationConfig(int8_refine_scales=2)),
                  "cascade, int8, refine 3 (shipped on VNNI)": LearnedScheme(weights, int8=True)}
    if args.scorer_alone:
        contenders["scorer alone, fp32"] = LearnedScheme(weights, registration=replace(every_view, exact_above=None), int8=False)
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
