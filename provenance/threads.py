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
