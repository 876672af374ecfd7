"""Memory over a long scan: worker resident memory as ``check -j N`` works through many images.

A platform scans millions of files with one pool of workers, so a worker's memory must stay flat,
not creep up file after file. This runs :class:`provenance.workers.CheckPool` (all default
detectors, as ``check -j N`` does) over ``--files`` images cycled from a set of distinct photos at
several sizes and formats, and prints each worker's resident memory at checkpoints, with the time
and rate so far. The baseline is the first checkpoint: a flat scan ends where it started.

    python -m benchmarks scan_memory --files 10000 --jobs 2
"""
from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from benchmarks.timing import machine_line, print_table


def _photo_set(directory: Path) -> list[Path]:
    """24 distinct files: crops and scales of the scikit-image photos, JPEG and PNG, 256 px to 1080p."""
    import numpy as np
    from PIL import Image
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket()]
    files = []
    for i, (photo, size, fmt) in enumerate(itertools.product(photos, (256, 512, 1080), ("JPEG", "PNG"))):
        image = Image.fromarray(photo)
        image = image.resize((size * image.width // image.height, size)) if size != 512 else image
        rng = np.random.default_rng(i)
        path = directory / f"photo_{i:02d}.{'jpg' if fmt == 'JPEG' else 'png'}"
        image.rotate(float(rng.uniform(-3, 3))).save(path, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        files.append(path)
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks scan_memory")
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--checkpoints", type=int, default=10)
    args = parser.parse_args(argv)

    from provenance.check import CheckConfig
    from provenance.threads import detector_threads
    from provenance.workers import Budget, CheckPool

    print(machine_line(), f"files={args.files} jobs={args.jobs}")
    every = max(1, args.files // args.checkpoints)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        photos = _photo_set(Path(tmp))
        sources = (str(photos[i % len(photos)]) for i in range(args.files))
        config = CheckConfig(threads=detector_threads(args.jobs))
        started = time.perf_counter()
        with CheckPool(config, workers=args.jobs, budget=Budget(), start_method="fork") as pool:
            labels: dict[str, int] = {}
            for done, verdict in enumerate(pool.imap(sources), start=1):
                labels[verdict.label.value] = labels.get(verdict.label.value, 0) + 1
                if done % every == 0 or done == args.files:
                    rss = [r / 2**20 for r in pool.worker_rss()]
                    elapsed = time.perf_counter() - started
                    rows.append([done, " / ".join(f"{r:.0f}" for r in rss), f"{elapsed:.0f}", f"{done / elapsed:.1f}"])
            stats = pool.stats
    print_table(["files done", "worker RSS MiB", "seconds", "img/s so far"], rows)
    print(f"\nlabels: {labels}; timed out {stats.timed_out}, over memory {stats.over_memory}, "
          f"worker deaths {stats.worker_deaths}, exceptions {len(stats.exceptions)}, "
          f"peak worker RSS {stats.peak_worker_rss / 2**20:.0f} MiB")
    return 0
