"""Run every benchmark and print its table: ``python -m benchmarks [name ...]``."""
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
CAMPAIGNS = ["fuzz", "tile_budget", "scan_memory", "cnn_precision", "sd_watermark_soft", "corpus_surprise", "corpus_cnn", "watermark_generated"]


def main(argv: list[str]) -> None:
    if argv and argv[0] in CAMPAIGNS:
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
