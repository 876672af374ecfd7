"""Labelled benchmark datasets: real photo crops and our generators' images, one shared pipeline.

    layout.py         the on-disk layout (imagefolder splits, metadata.jsonl, .build/ state)
    plan.py           every image's labels and processing, drawn from the seed up front
    perturbations.py  registry of perturbations (resize, crop, blur, noise, brightness, screenshot)
    build.py          workers, atomic writes, resume
    card.py           the dataset card's text: counts per class x generator x perturbation x split
    reading.py        a built split read back as images and labels
    verify.py         consistency checks of a built set

The names below load lazily, so importing a leaf module (layout, perturbations, reading) does not
pull in the builder and its generators.
"""
from __future__ import annotations

_EXPORTS = {"BuildResult": "build", "DatasetError": "build", "build_dataset": "build",
            "DatasetConfig": "plan", "verify_dataset": "verify"}


def __getattr__(name: str):
    if name in _EXPORTS:
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_EXPORTS)
