"""``provenance dataset build`` throughput (images/s) per image kind and worker count, against the
baseline of sampling alone (no watermark, encoding, signing or writing) in the same run.

Uses the shipped generators; real crops come from the wheel photos. Worker start-up (model and
photo loading in each process) is included, as a user would see it.
"""
from __future__ import annotations

import tempfile
import time

from benchmarks.timing import machine_line, print_table
from provenance.datasets import DatasetConfig, build_dataset

KINDS = {"real": dict(n_real=48, n_gan=0, n_diffusion=0), "gan": dict(n_real=0, n_gan=24, n_diffusion=0),
         "diffusion": dict(n_real=0, n_gan=0, n_diffusion=6)}
DIFFUSION_STEPS = 25


def build_rate(counts: dict, workers: int) -> tuple[int, float]:
    config = DatasetConfig(**counts, diffusion_steps=DIFFUSION_STEPS, seed=0)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        result = build_dataset(out, config, workers=workers)
        seconds = time.perf_counter() - start
    return result.planned, seconds


def sampling_rate(family: str, n: int) -> float:
    from provenance.generation import GenerateOptions, ImageMaker
    from provenance.threads import set_torch_threads

    set_torch_threads(1)  # as one dataset-build worker runs
    options = GenerateOptions(c2pa=False, sample_options={"steps": DIFFUSION_STEPS} if family == "diffusion" else {})
    with ImageMaker(family, options) as maker:
        maker.sample(0, 1)  # warm-up
        start = time.perf_counter()
        maker.sample(1, n)
        return n / (time.perf_counter() - start)


def main() -> None:
    print(machine_line())
    rows = []
    for kind, counts in KINDS.items():
        n = sum(counts.values())
        if kind != "real":
            rows.append([kind, "baseline: sampling only, 1 thread", n, "", f"{sampling_rate(kind, n):.2f}"])
        for workers in (1, 2):
            planned, seconds = build_rate(counts, workers)
            rows.append([kind, f"dataset build, {workers} worker{'s' if workers > 1 else ''}", planned,
                         f"{seconds:.1f}", f"{planned / seconds:.2f}"])
    print(f"\nDataset build at 256x256, JPEG, default label fractions (DDIM {DIFFUSION_STEPS} steps)\n")
    print_table(["images", "pipeline", "n", "seconds", "images/s"], rows)


if __name__ == "__main__":
    main()
