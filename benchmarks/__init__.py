"""Measured performance claims. Run everything with ``python -m benchmarks`` from the repo root."""
