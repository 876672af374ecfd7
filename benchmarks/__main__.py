"""Run every benchmark and print its table: ``python -m benchmarks [name ...]``, or one benchmark
with its own options: ``python -m benchmarks corpus_check --jpeg 85``."""
from __future__ import annotations

import importlib
import sys

from provenance.allocator import apply_allocator_policy
from provenance.threads import apply_thread_policy

apply_thread_policy()  # before any benchmark imports torch
apply_allocator_policy()  # as the front doors (check, serve, workers) run

BENCHMARKS = ["watermark_decode", "watermark_robustness", "watermark_learned", "check_latency", "generation", "dataset_build", "detectors", "service_load",
              "ray_scaling", "corpus_lofo", "corpus_check"]


# Campaigns with their own options, run only when named: ``python -m benchmarks fuzz --inputs 10000``.
CAMPAIGNS = ["fuzz", "tile_budget", "scan_memory", "cnn_precision", "sd_watermark_soft", "corpus_surprise", "corpus_cnn", "watermark_generated", "watermark_soft_null", "watermark_scorer", "upscaled_reals", "real_crops", "rendered_graphics"]


def takes_options(name: str) -> bool:
    import inspect

    return "argv" in inspect.signature(importlib.import_module(f"benchmarks.{name}").main).parameters


def main(argv: list[str]) -> None:
    if argv and (argv[0] in CAMPAIGNS or (argv[0] in BENCHMARKS and any(a.startswith("-") for a in argv[1:]))):
        if argv[0] not in CAMPAIGNS and not takes_options(argv[0]):
            sys.exit(f"benchmark {argv[0]!r} takes no options")
        sys.exit(importlib.import_module(f"benchmarks.{argv[0]}").main(argv[1:]))
    chosen = argv or BENCHMARKS
    for name in chosen:
        if name not in BENCHMARKS:
            sys.exit(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    for name in chosen:
        print(f"\n## {name}\n")
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
