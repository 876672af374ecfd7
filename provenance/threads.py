"""The CPU thread policy, set in one place.

OpenMP threads that spin while waiting collapse on a shared few-core machine, so the policy is
``PASSIVE`` unless the user chose otherwise; it must be set before torch is imported. ``--threads``
options and worker processes go through :func:`set_torch_threads`.
"""
from __future__ import annotations

import os


def apply_thread_policy() -> None:
    """Call before torch is imported (front doors call it first thing)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def set_torch_threads(threads: int | None) -> None:
    """Use ``threads`` torch CPU threads; ``None`` or 0 keeps torch's choice (and does not import torch)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def detector_threads(workers: int = 1) -> int:
    """Threads each of ``workers`` parallel checkers may give its detectors: the cores, shared out."""
    return max(1, usable_cores() // max(1, workers))
