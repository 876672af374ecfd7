"""``check`` throughput: the local engine (one process) vs Ray local mode with 1 and 2 workers, on the
same files and detectors (all defaults, the shipped classifiers included).

Every figure is wall time from the call to the last verdict written, model loading included, as a
user would see it; Ray's own start-up (``ray.init``, already paid on a running cluster) is printed
apart. The overhead ratio is the Ray run's time over the local engine's for the same files.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.timing import machine_line, print_table

N_IMAGES = 48
SIZE = 512
BATCH_SIZE = 8


def cpu_line() -> str:
    import torch

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    native_bf16 = "avx512_bf16" in flags or "amx_bf16" in flags
    return f"cpu capability={torch.backends.cpu.get_cpu_capability()} native bf16={'yes' if native_bf16 else 'no'}"


def make_files(folder: Path) -> list[Path]:
    """Photo crops as JPEG, every other one carrying our watermark."""
    from skimage import data

    from provenance.imageio import encode_image
    from provenance.watermark.marking import Mark, embed_mark
    from provenance.watermark.payload import WatermarkId

    photos = [getattr(data, name)() for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")]
    rng = np.random.default_rng(0)
    files = []
    for i in range(N_IMAGES):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = min(h, w, SIZE)
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        rgb = np.ascontiguousarray(photo[y:y + side, x:x + side])
        if i % 2:
            rgb = embed_mark(rgb, Mark(watermark_id=WatermarkId(generator=0, serial=i)))
        path = folder / f"image_{i:03d}.jpg"
        path.write_bytes(encode_image(rgb, "JPEG", quality=90))
        files.append(path)
    return files


def local_seconds(files: list[Path]) -> float:
    import torch

    from provenance.check import Checker

    torch.set_num_threads(1)  # as one Ray worker with one CPU runs
    start = time.perf_counter()
    verdicts = list(Checker().iter_check(files, batch_size=BATCH_SIZE))
    seconds = time.perf_counter() - start
    assert len(verdicts) == len(files)
    return seconds


def ray_seconds(folder: Path, workers: int) -> float:
    from provenance.engines.ray_engine import RayOptions, check_on_ray

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = check_on_ray(folder, out, options=RayOptions(num_workers=workers, batch_size=BATCH_SIZE))
        seconds = time.perf_counter() - start
    assert result.checked_now == N_IMAGES, result
    return seconds


def main() -> None:
    try:
        import ray
        from ray.data import DataContext
    except ImportError:
        print("skipped: Ray is not installed (pip install 'provenance[ray]')")
        return
    print(machine_line(), cpu_line())
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = make_files(folder)
        local = local_seconds(files)
        start = time.perf_counter()
        ray.init(num_cpus=min(2, os.cpu_count() or 1), include_dashboard=False, log_to_driver=False)
        startup = time.perf_counter() - start
        DataContext.get_current().enable_progress_bars = False
        try:
            timed = {workers: ray_seconds(folder, workers) for workers in (1, 2)}
        finally:
            ray.shutdown()
    rows = [["local engine (baseline), 1 process, 1 thread", N_IMAGES, f"{local:.1f}", f"{N_IMAGES / local:.2f}",
             "1.00"]]
    for workers, seconds in timed.items():
        rows.append([f"Ray local mode, {workers} worker{'s' if workers > 1 else ''}", N_IMAGES, f"{seconds:.1f}",
                     f"{N_IMAGES / seconds:.2f}", f"{seconds / local:.2f}"])
    print(f"\n`check` of {N_IMAGES} JPEGs {SIZE}x{SIZE} (half watermarked), default detectors, batches of "
          f"{BATCH_SIZE}; model loading included; Ray start-up apart: {startup:.1f} s\n")
    print_table(["engine", "images", "seconds", "images/s", "time / local"], rows)


if __name__ == "__main__":
    main()
