"""Our generators on CPU: sampling images/s at 256x256, and training throughput at the default patch size.

Speed does not depend on the weights, so untrained default-config models are timed.
"""
from __future__ import annotations

import time

import torch

from benchmarks.timing import machine_line, median_ms, print_table
from provenance import generators
from provenance.generators import seeded

SIZE = 256
DDIM_STEPS = 50
TIMED_DDIM_STEPS = 5  # a 256px DDIM run is slow on CPU: time a few steps and scale per step
PATCH, BATCH = 32, 32


def _seconds(fn, repeats: int = 3) -> float:
    return median_ms(fn, repeats=repeats) / 1000


def sampling_rows() -> list[list[object]]:
    rows = []
    gan = generators.create("gan")
    for bf16 in (False, True):
        seconds = _seconds(lambda: gan.sample(4, size=SIZE, seed=0, bf16=bf16))
        rows.append(["gan", "fp32" if not bf16 else "bf16", f"{4 / seconds:.1f}"])
    diffusion = generators.create("diffusion")
    for bf16 in (False, True):
        seconds = _seconds(lambda: diffusion.sample(2, size=SIZE, seed=0, steps=TIMED_DDIM_STEPS, bf16=bf16),
                           repeats=1)
        per_image = seconds / 2 * DDIM_STEPS / TIMED_DDIM_STEPS
        rows.append([f"diffusion, DDIM {DDIM_STEPS} steps", "fp32" if not bf16 else "bf16", f"{1 / per_image:.3f}"])
    return rows


def training_rows() -> list[list[object]]:
    rows = []
    for family in ("gan", "diffusion"):
        for bf16 in (False, True):
            with torch.random.fork_rng():
                torch.manual_seed(0)
                model = generators.create(family)
                model.trainable_modules()
            optimizers = model.make_optimizers()
            real = torch.rand(BATCH, 3, PATCH, PATCH) * 2 - 1
            step = iter(range(10**6))
            seconds = _seconds(lambda: model.train_step(real, optimizers, seeded(0, 1, 0), next(step), bf16), repeats=4)
            params = sum(p.numel() for p in model.export_state_dict().values() if p.is_floating_point())
            rows.append([family, f"{params / 1e6:.2f}M", "fp32" if not bf16 else "bf16",
                         f"{seconds:.2f}", f"{BATCH / seconds:.0f}"])
    return rows


def labelled_rows() -> list[list[object]]:
    """The shipped models: sampling alone vs `provenance.generate` (sample + watermark + PNG + C2PA)."""
    import tempfile

    from provenance.c2pa.keys import init_keys
    from provenance.generation import GenerateOptions, ImageMaker

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        keys = init_keys(tmp)
        for family, n, options in (("gan", 8, {}), ("diffusion", 2, {"steps": DDIM_STEPS})):
            with ImageMaker(family, GenerateOptions(keys=keys.directory, sample_options=options)) as maker:
                sampling = _seconds(lambda: maker.sample(0, n), repeats=1)
                labelled = _seconds(lambda: maker.make(0, n), repeats=1)
            rows.append([family, f"{n / sampling:.2f}", f"{n / labelled:.2f}",
                         f"{(labelled - sampling) / n * 1000:.0f}"])
    return rows


def main() -> None:
    print(machine_line(), f"torch threads={torch.get_num_threads()}")
    print(f"\nSampling at {SIZE}x{SIZE} (untrained default configs)\n")
    print_table(["model", "precision", "images/s"], sampling_rows())
    print(f"\nTraining step, batch {BATCH} of {PATCH}x{PATCH} patches\n")
    print_table(["model", "sampling params", "precision", "s/step", "images/s"], training_rows())
    print(f"\nShipped models at {SIZE}x{SIZE}: sampling alone (baseline) vs labelled generate()\n")
    print_table(["model", "sampling images/s", "generate() images/s", "labelling ms/image"], labelled_rows())


if __name__ == "__main__":
    main()
