"""Smoke tests of the classifier weights we ship: small, calibrated, documented, on by default in
``check``; they flag fresh unmarked output of our generators and leave a held-out real photo alone."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from detectors.learned import load_classifier
from provenance.shipped import CLASSIFIERS_DIR as SHIPPED_WEIGHTS
from provenance.shipped import MODEL_CARD_FILE as CARD_FILE
from provenance.shipped import SPLITS_FILE, shipped_classifiers
from detectors.results import Label, Signal
from provenance.check import CheckConfig, Checker, NamedBytes, default_detectors
from provenance.generators import load_generator

SHIPPED = ("cnn", "spectral")
CLASSIFIERS_ONLY = CheckConfig(detectors=SHIPPED)


def jpeg_bytes(rgb: np.ndarray, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_classifier_is_small_calibrated_documented_and_on_by_default(name):
    folder = SHIPPED_WEIGHTS / name
    assert name in shipped_classifiers() and name in default_detectors()
    assert sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) < 10_000_000
    model = load_classifier(folder)
    point = model.operating_point
    assert point.target_fpr == 0.01 and point.measured_fpr <= 0.01 and point.n_real >= 200
    assert point.band_low < point.threshold
    card = (folder / CARD_FILE).read_text()
    assert "## Evaluation on the `test` split" in card and "provenance train detector" in card
    report = json.loads((folder / "eval" / "eval.json").read_text())[0]
    assert report["overall"]["auc"] > 0.9 and report["overall"]["ece"] < 0.1


@pytest.fixture(scope="module")
def fresh_fakes() -> list[NamedBytes]:
    """Unmarked, unsigned samples from seeds no dataset used, re-encoded as JPEG like an upload."""
    fakes = []
    for family, options in (("gan", {}), ("diffusion", {"steps": 25})):
        images = load_generator(family).sample(2, size=256, seed=987_654, **options)
        fakes += [NamedBytes(f"{family}{i}.jpg", jpeg_bytes(rgb)) for i, rgb in enumerate(images)]
    return fakes


def test_shipped_classifiers_flag_fresh_unmarked_generator_output(fresh_fakes):
    verdicts = Checker(CLASSIFIERS_ONLY).check(fresh_fakes)
    for verdict in verdicts:
        assert verdict.label == Label.LIKELY_SYNTHETIC, (verdict.source, verdict.reasons)
        assert all("not proof" in r or "statistical guess" in r for r in verdict.reasons if "classifier" in r)


@pytest.mark.parametrize("name", SHIPPED)
def test_split_record_matches_the_model_it_describes(name):
    """The record of which photos fed which split must be the one of this model's dataset: its image
    counts are the ones the model saw (training, calibration, validation reals)."""
    model = load_classifier(SHIPPED_WEIGHTS / name)
    record = json.loads((SHIPPED_WEIGHTS / name / SPLITS_FILE).read_text())
    images = record["images"]
    assert sum(images["train"].values()) == model.training["images"]
    assert images["train"]["synthetic"] == model.training["synthetic"]
    assert sum(images["validation"].values()) == model.training["calibration_images"]
    assert images["validation"]["real"] == model.operating_point.n_real
    groups = record["real_photo_groups"]
    assert not set(groups["test"]) & (set(groups["train"]) | set(groups["validation"]))


def _split_of(group_suffix: str) -> set[str]:
    """The splits, by every shipped model's record, holding the real photo group ending in ``group_suffix``."""
    found = set()
    for name in SHIPPED:
        groups = json.loads((SHIPPED_WEIGHTS / name / SPLITS_FILE).read_text())["real_photo_groups"]
        found |= {split for split, members in groups.items() if any(g.endswith(group_suffix) for g in members)}
    return found


def test_shipped_classifiers_leave_a_held_out_real_photo_alone():
    from skimage import data

    assert _split_of("astronaut") == {"test"}  # never trained on, nor used to set the threshold
    photo = data.astronaut()
    for name, blob in (("astronaut.png", _png(photo)), ("astronaut_q80.jpg", jpeg_bytes(photo, 80))):
        verdict = Checker(CLASSIFIERS_ONLY).check_one(NamedBytes(name, blob))
        assert verdict.label == Label.NO_EVIDENCE, (name, verdict.reasons)
        assert {e.signal for e in verdict.evidence} == {Signal.NONE}
        assert any("not proof" in r for r in verdict.reasons)


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()
