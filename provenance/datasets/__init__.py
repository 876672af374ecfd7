"""Labelled benchmark datasets: real photo crops and our generators' images, one shared pipeline.

    plan.py           every image's labels and processing, drawn from the seed up front
    perturbations.py  registry of perturbations (resize, crop, blur, noise, brightness, screenshot)
    build.py          workers, atomic writes, resume; Hugging Face imagefolder layout
    card.py           the dataset card with counts per class x generator x perturbation x split
    verify.py         consistency checks of a built set
"""
from .build import BuildResult, DatasetError, build_dataset
from .plan import DatasetConfig
from .verify import verify_dataset

__all__ = ["BuildResult", "DatasetConfig", "DatasetError", "build_dataset", "verify_dataset"]
