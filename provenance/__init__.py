"""provenance: label what generators make, and tell whether an image is synthetic.

Library entry points (loaded lazily, so ``import provenance`` stays cheap):

    provenance.generate(model, n, size, seed, out)   -> list[GeneratedImage]
    provenance.check.check(paths)                     -> list[Verdict]
"""
from __future__ import annotations


def __getattr__(name: str):
    if name in ("generate", "iter_generate", "GenerateOptions", "GeneratedImage"):
        from . import generation

        return getattr(generation, name)
    raise AttributeError(f"module 'provenance' has no attribute {name!r}")
