"""Run every benchmark and print its table: ``python -m benchmarks [name ...]``."""
from __future__ import annotations

import importlib
import os
import sys

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

BENCHMARKS = ["watermark_decode", "watermark_robustness", "watermark_learned", "check_latency", "generation", "dataset_build", "detectors"]


def main(argv: list[str]) -> None:
    chosen = argv or BENCHMARKS
    for name in chosen:
        if name not in BENCHMARKS:
            sys.exit(f"unknown benchmark {name!r}; available: {', '.join(BENCHMARKS)}")
    for name in chosen:
        print(f"\n## {name}\n")
        importlib.import_module(f"benchmarks.{name}").main()


if __name__ == "__main__":
    main(sys.argv[1:])
