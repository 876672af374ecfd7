"""Train a passive classifier on a built dataset: fit on its train split, calibrate on its
validation split (never on test), record how, save. The CLI's ``train detector`` calls this."""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from detectors.learned import ImageClassifier
from provenance.datasets.reading import load_split
from provenance.generators.training import LOG_FILE  # one training-log name for every trainer


@dataclass
class TrainingData:
    dataset: Path
    generators: tuple[str, ...] | None  # None: every generator's images
    train_images: list[np.ndarray]
    train_labels: np.ndarray
    validation_images: list[np.ndarray]
    validation_labels: np.ndarray


def load_training_data(dataset: str | Path, generators: Sequence[str] | None = None) -> TrainingData:
    """The train and validation splits (only ``generators``' synthetic images, and every real one)."""
    dataset, only = Path(dataset), tuple(generators) if generators else None
    train_images, train_labels, _ = load_split(dataset, "train", only)
    validation_images, validation_labels, _ = load_split(dataset, "validation", only)
    return TrainingData(dataset, only, train_images, train_labels, validation_images, validation_labels)


def train_detector(model: ImageClassifier, data: TrainingData, out: str | Path, *, steps: int = 3000,
                   seed: int = 0, target_fpr: float = 0.01,
                   on_log: Callable[[dict], None] | None = None) -> ImageClassifier:
    """Fit ``model`` (resuming from ``out`` where its family checkpoints), calibrate it, save it to
    ``out``. Progress records go to ``out/log.jsonl`` and to ``on_log``."""
    import torch

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with open(out / LOG_FILE, "a") as log:
        def record(entry: dict) -> None:
            log.write(json.dumps(entry) + "\n")
            log.flush()
            if on_log:
                on_log(entry)

        model.fit(data.train_images, data.train_labels, steps=steps, seed=seed, out=out, on_log=record)
    model.calibrate(data.validation_images, data.validation_labels, target_fpr=target_fpr)
    model.training.setdefault("seconds", round(time.perf_counter() - started, 1))
    model.training.update(dataset=str(data.dataset), generators=",".join(data.generators or ()) or "all",
                          hardware=f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads",
                          calibration_images=len(data.validation_labels))
    model.save(out)
    return model
