"""Smoke tests of the weights we ship: they load, sample, and their labelled output checks as synthetic."""
from __future__ import annotations

import json

import numpy as np
import pytest

import provenance
from detectors.results import Label
from provenance.c2pa.keys import init_keys
from provenance.check import CheckConfig, Checker
from provenance.generators import SHIPPED_WEIGHTS_DIR, load_generator
from provenance.generators.model_card import CARD_FILE, GRID_FILE

SHIPPED = ("gan", "diffusion")
FAST = {"gan": {}, "diffusion": {"steps": 8}}  # a few DDIM steps: this tests plumbing, not quality


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_export_is_small_and_has_a_model_card(name):
    directory = SHIPPED_WEIGHTS_DIR / name
    assert (directory / "weights.safetensors").stat().st_size < 10_000_000
    card = (directory / CARD_FILE).read_text()
    config = json.loads((directory / "config.json").read_text())
    assert f"**{config['step']:,}**" in card and "(ours)" in card and "floor" in card
    assert (directory / GRID_FILE).is_file()


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_samples_textured_images(name):
    images = load_generator(name).sample(2, size=256, seed=0, **FAST[name])
    assert images.shape == (2, 256, 256, 3) and images.dtype == np.uint8
    assert 5 < images.std() < 120 and not np.array_equal(images[0], images[1])


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_output_is_marked_signed_and_checks_as_synthetic(name, tmp_path):
    keys = init_keys(tmp_path / "keys")
    made = provenance.generate(name, n=2, size=256, seed=0, out=tmp_path / "out", keys=keys.directory,
                               sample_options=FAST[name])
    checker = Checker(CheckConfig(detector_options={"c2pa": {"trust_anchors": [keys.root_cert],
                                                             "use_trust_store": False}}))
    ids_read = 0
    for image, verdict in zip(made, checker.check([m.path for m in made])):
        assert verdict.label == Label.SYNTHETIC, verdict.reasons
        by_detector = {e.detector: e for e in verdict.evidence}
        assert by_detector["c2pa"].state == "Trusted"
        mark = by_detector["watermark"]
        assert mark.signal.value == "synthetic" and mark.details["scheme"] == "learned", mark
        # the learned mark's ID is read from most images (23 of 32 GAN images in the model card) and
        # is never a wrong one: read, or reported unreadable
        assert mark.details["id"] in (image.watermark_id, "ID unreadable")
        ids_read += mark.details["id"] == image.watermark_id
    assert ids_read >= 1
