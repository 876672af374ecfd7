"""Measure a tile classifier's early stop on the public corpus (:class:`detectors.learned.calibration.EarlyStop`).

``check`` scores every other tile of a full budget first and stops there when that half's mean
logit is below the classifier's uncertain band by more than the largest rise the other half has
added on the corpus's training and validation images (real and synthetic, and our generators'
output where given). The test split stays out of the margin and shows what the stop changes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

EARLY_STOP_HEADING = "## Early stop"


@dataclass(frozen=True)
class EarlyStopRecord:
    margin: float  # logits: the largest rise from the first half's mean to the whole budget's (non-test)
    measured_images: int  # non-test images with a full budget
    test_images: int  # test images with a full budget
    test_stopped: int  # of those, how many the stop ends after the first half
    test_changed: int  # of those stopped, how many the whole budget would have put in or above the band
    test_largest_rise: float
    share_stopped: float  # of every full-budget image, train, validation and test


def tile_means(model, samples: Sequence, on_progress: Callable[[str], None] | None = None
               ) -> dict[str, tuple[float, float]]:
    """Per sample key with a full tile budget: (first half's mean logit, whole budget's mean logit)."""
    from detectors.learned.calibration import EarlyStop
    from detectors.learned.tiles import cut_tiles
    from provenance.imageio import ImageLoadError, load_image

    out = {}
    for i, sample in enumerate(samples):
        try:
            rgb = load_image(sample.image.path).rgb
        except ImageLoadError:
            continue
        tiles = cut_tiles(rgb, model.tile, model.max_tiles)[0]
        if len(tiles) == model.max_tiles:
            logits = np.asarray(model.tile_logits(tiles)).ravel()
            out[sample.key] = (float(logits[EarlyStop.first_half(len(logits))].mean()), float(logits.mean()))
        if on_progress and (i + 1) % 200 == 0:
            on_progress(f"scored {i + 1}/{len(samples)}")
    return out


def measure_early_stop(folder: str | Path, samples: Sequence,
                       on_progress: Callable[[str], None] | None = None) -> EarlyStopRecord:
    """Set ``folder``'s early stop from ``samples`` (corpus samples: ``key``, ``split``,
    ``image.path``): margin from the non-test ones, checked on the test ones; writes it into the
    classifier's metadata and model card."""
    from detectors.learned import load_classifier
    from detectors.learned.calibration import EarlyStop
    from provenance.files import write_atomically
    from provenance.shipped import CLASSIFIER_META_FILE, MODEL_CARD_FILE

    folder = Path(folder)
    model = load_classifier(folder)
    if model.calibration is None or model.operating_point is None:
        raise ValueError(f"{folder}: the classifier has no calibration or operating point to stop below")
    means = tile_means(model, samples, on_progress)
    split = {s.key: s.split for s in samples}
    measured = [whole - first for key, (first, whole) in means.items() if split[key] != "test"]
    if not measured:
        raise ValueError(f"{folder}: no training or validation image with a full budget of {model.max_tiles} tiles")
    stop = EarlyStop(margin=max(0.0, float(max(measured))), images=len(measured),
                     measured_on="training and validation images of the public corpus (and our generators' output)")
    band = model.operating_point.band_low
    stopped = {key for key, (first, _) in means.items() if stop.stops(np.array([first]), model.calibration, band)}
    test = [key for key in means if split[key] == "test"]
    changed = [key for key in test if key in stopped and model.calibration(np.array([means[key][1]]))[0] >= band]
    record = EarlyStopRecord(stop.margin, len(measured), len(test), sum(key in stopped for key in test), len(changed),
                             float(max((means[k][1] - means[k][0] for k in test), default=0.0)),
                             len(stopped) / len(means))
    meta = json.loads((folder / CLASSIFIER_META_FILE).read_text())
    meta["early_stop"] = stop.to_dict()
    write_atomically(folder / CLASSIFIER_META_FILE, json.dumps(meta, indent=2) + "\n")
    card_path = folder / MODEL_CARD_FILE
    if card_path.is_file():
        write_atomically(card_path, _with_card_section(card_path.read_text(), record, model.max_tiles))
    return record


def _with_card_section(card: str, record: EarlyStopRecord, budget: int) -> str:
    from provenance.markdown import with_last_section

    half = budget // 2
    return with_last_section(card, EARLY_STOP_HEADING, [
        EARLY_STOP_HEADING, "",
        f"`check` scores every other tile of a full budget first ({half} of {budget}) and stops there when their mean "
        f"logit is below the uncertain band by more than {record.margin:.3f}: the largest rise from that half's mean to "
        f"the whole budget's over {record.measured_images} training and validation images of the corpus (real and "
        f"synthetic). On the {record.test_images} test images with a full budget, {record.test_stopped} stop early "
        f"and {record.test_changed} of them would have reached the band with every tile (largest rise there "
        f"{record.test_largest_rise:.3f}); over all full-budget images {record.share_stopped:.0%} stop early. "
        "Smaller images are scored whole. Set by `provenance train detector early-stop`; the evidence says when "
        "a check stopped early.", ""])
