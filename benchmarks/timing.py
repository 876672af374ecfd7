"""Timing helpers shared by the benchmarks."""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

from provenance.markdown import markdown_table


def timed(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> tuple[float, object]:
    """Median milliseconds over ``repeats`` calls after ``warmup``, and the last call's result."""
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), result


def median_ms(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    return timed(fn, repeats, warmup)[0]


def machine_line() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"cpus={os.cpu_count()} load(1m)={load:.2f}"


def capability_line() -> str:
    """What the CPU runs natively and how busy it is: printed above every timed table."""
    from provenance.precision import cpu_capability

    capability = cpu_capability()
    return (f"CPU capability: {capability.isa}; bf16 {'native' if capability.native_bf16 else 'not native'}; "
            f"{machine_line()}")


def print_table(headers: list[str], rows: list[list[object]]) -> None:
    print(markdown_table(headers, rows))
