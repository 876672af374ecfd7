"""The learned mark's null and decisions: calibrated on unmarked photos like the classical marks.

A learned decoder's word on unmarked images depends on its weights, so each set of weights gets
its own null: ``learned/uint8`` in a calibration file beside the weights (same format as the
shipped ``calibration.json``). With ``search`` every view read is one more test: a decision
multiplies the calibrated p-value by (views x keys x other tests).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np

from .. import calibration as wm_calibration
from .. import null_statistics
from ..null_model import TARGET_FPR
from .. import payload
from .scheme import TEST_NAME, LearnedScheme, calibration_path, decode_learned  # noqa: F401  (re-exported)


def decoded_null_words(scheme: LearnedScheme, n_images: int, seed: int,
                       progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Sync words (every searched view) of ``n_images`` unmarked variants, (n_images x views, 64)."""
    layout = payload.layout_for(scheme.capacity)
    cache: dict = {}
    words = []
    for index in range(n_images):
        rgb = wm_calibration._variant(index, seed, cache)  # the classical nulls' negatives, same seed rule
        words.append(scheme.decode_all(np.ascontiguousarray(rgb[:, :, ::-1]))[:, : layout.sync_bits])
        if progress:
            progress(index + 1, n_images)
    return np.concatenate(words)


def calibrate(scheme: LearnedScheme, n_images: int = 500, n_keys: int = 2000, seed: int = 0,
              out: str | Path | None = None, progress: Callable[[int, int], None] | None = None) -> dict:
    """Fit the null of ``scheme``'s weights; written to ``out`` (default: beside the weights)."""
    words = decoded_null_words(scheme, n_images, seed, progress)
    keys = wm_calibration.calibration_keys(n_keys, seed)
    matches = null_statistics.keyed_matches(words, scheme.name, keys)
    entry = {"kind": "keyed", "views": scheme.trials,
             **null_statistics.summarise(matches, words.shape[1], n_images, n_keys)}
    data = {"version": 1, "target_fpr": TARGET_FPR, "weights": Path(scheme.weights).name,
            "settings": {"n_images": n_images, "n_keys": n_keys, "seed": seed, "search": scheme.search},
            "tests": {TEST_NAME: entry}}
    path = Path(out) if out else calibration_path(scheme.weights)
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data
