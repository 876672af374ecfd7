"""Contract tests over everything registered, as timm tests every name in ``list_models()``: each
entry builds by name, returns its typed record, survives a JSON round trip, and copes with a tiny
and a huge image. A new detector, scheme, generator, classifier or perturbation is tested here
without anyone writing a test for it."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

import detectors
from detectors.base import Detector
from detectors.learned import CLASSIFIERS, ImageClassifier, create as create_classifier, load_classifier
from detectors.results import Evidence, Signal, Strength
from provenance import generators, watermark
from provenance.datasets.perturbations import PERTURBATIONS
from provenance.imageio import LoadedImage, encode_image, load_image
from provenance.watermark.schemes import WatermarkScheme

from .conftest import TINY


def _photo_like(height: int, width: int, seed: int = 0) -> np.ndarray:
    """Smooth colour gradients plus grain: compresses like a photo, cheap at any size."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:height, :width].astype(np.float32)
    base = np.stack([x / width * 200, y / height * 200, (x + y) / (width + height) * 255], axis=-1)
    return (base + rng.normal(0, 6, (height, width, 3))).clip(0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def tiny_image() -> LoadedImage:
    return load_image(encode_image(_photo_like(8, 8), "PNG"), name="tiny.png")


@pytest.fixture(scope="module")
def huge_image() -> LoadedImage:
    """12 megapixels (4000x3000), a phone photo's size, through the real loader."""
    return load_image(encode_image(_photo_like(3000, 4000), "JPEG", quality=85), name="huge.jpg")


def _json_round_trip(record: dict) -> None:
    text = json.dumps(record, allow_nan=False)  # NaN/inf would be invalid JSON for other programs
    assert json.loads(text) == record


# -- detectors -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def built_detectors() -> dict[str, Detector]:
    return {name: detectors.create(name) for name in detectors.available()}


@pytest.mark.parametrize("name", detectors.available())
def test_detector_builds_by_name_and_describes_itself(name, built_detectors):
    detector = built_detectors[name]
    assert isinstance(detector, Detector) and detector.name == name
    assert detector.family in ("c2pa", "watermark", "metadata", "classifier")


@pytest.mark.parametrize("size", ["tiny", "huge"])
@pytest.mark.parametrize("name", detectors.available())
def test_detector_returns_json_evidence_for_a_tiny_and_a_huge_image(name, size, built_detectors, request):
    image = request.getfixturevalue(f"{size}_image")
    started = time.perf_counter()
    (evidence,) = built_detectors[name].detect_batch([image])
    seconds = time.perf_counter() - started
    assert isinstance(evidence, Evidence) and evidence.detector == name
    assert evidence.signal != Signal.ERROR, evidence.error  # tiny or huge is no reason to fail
    if size == "tiny" and built_detectors[name].family in ("watermark", "classifier"):
        assert evidence.signal == Signal.SKIPPED and evidence.strength == Strength.NONE
    _json_round_trip(evidence.to_dict())
    assert seconds < 60, f"{name} took {seconds:.1f} s on a {image.width}x{image.height} image"


class _Exploding(Detector):
    name = "exploding"
    family = "metadata"

    def detect(self, image):
        raise RuntimeError("decoder blew up\nsecond line with internals")


def test_a_detector_that_raises_becomes_an_error_record_and_the_batch_goes_on(tiny_image, huge_image):
    records = _Exploding().detect_batch([tiny_image, huge_image])
    assert [r.signal for r in records] == [Signal.ERROR, Signal.ERROR]
    assert records[0].error == "RuntimeError: decoder blew up" and records[0].strength == Strength.NONE
    _json_round_trip(records[0].to_dict())


def test_a_raising_detector_in_a_check_gives_error_evidence_not_an_error_verdict(tiny_image, monkeypatch):
    from provenance.check import CheckConfig, Checker

    monkeypatch.setitem(detectors.REGISTRY._factories, "exploding", _Exploding)
    verdict = Checker(CheckConfig(detectors=("metadata", "exploding"))).check_one(tiny_image)
    assert verdict.label.value != "error" and verdict.error is None
    assert [e.signal for e in verdict.evidence] == [Signal.NONE, Signal.ERROR]
    json.loads(verdict.to_json())


# -- watermark schemes -----------------------------------------------------------------------------

@pytest.mark.parametrize("name", watermark.available())
def test_scheme_builds_by_name_and_refuses_a_tiny_image(name):
    scheme = watermark.get(name)
    assert isinstance(scheme, WatermarkScheme) and scheme.name == name
    length = scheme.capacity or 48
    with pytest.raises(ValueError, match="256x256"):
        scheme.embed(np.zeros((8, 8, 3), np.uint8), np.ones(length, bool))


# rivaGan: seconds per image; learned: no weights ship yet (tests/test_watermark_learned.py trains tiny ones)
@pytest.mark.parametrize("name", [n for n in watermark.available() if n not in ("rivaGan", "learned")])
def test_block_scheme_reads_back_what_it_wrote_on_a_large_odd_sized_image(name, huge_image):
    """imwatermark's embedder costs ~2 s per megapixel, so 1001x757 (odd sizes: partial blocks)
    stands in for huge here; the detectors above decode the full 12 megapixels."""
    scheme = watermark.get(name)
    bits = np.random.default_rng(3).integers(0, 2, 48).astype(bool)
    bgr = np.ascontiguousarray(huge_image.bgr[:757, :1001])
    marked = scheme.embed(bgr, bits)
    assert marked.shape == bgr.shape and marked.dtype == np.uint8
    assert np.array_equal(scheme.decode_bits(marked, 48), bits)


# -- generators ------------------------------------------------------------------------------------

def test_the_train_commands_cover_every_registered_family():
    from provenance.commands.train_cmds import TRAINABLE_DETECTORS, TRAINABLE_GENERATORS

    assert sorted(TRAINABLE_GENERATORS) == generators.available()
    assert sorted(TRAINABLE_DETECTORS) == CLASSIFIERS.available()


@pytest.mark.parametrize("name", generators.available())
def test_generator_builds_samples_typed_pixels_and_has_training_defaults(name):
    from provenance.generators.training import family_model_config, family_train_config

    model = generators.create(name, **TINY[name])
    assert isinstance(model, generators.ImageGenerator) and model.family == name
    _json_round_trip(json.loads(json.dumps(model.config_dict())))
    size = model.size_multiple * 2
    options = {"steps": 2} if name == "diffusion" else {}
    images = model.sample(1, size=size, seed=0, **options)
    assert images.shape == (1, size, size, 3) and images.dtype == np.uint8
    with pytest.raises(ValueError, match="multiples"):
        model.sample(1, size=model.size_multiple + 1, **options)
    assert family_train_config(name).batch_size > 0  # the family's defaults make a valid TrainConfig
    generators.create(name, **family_model_config(name, width=8))


# -- trained classifiers ---------------------------------------------------------------------------

SMALL_CLASSIFIERS = {"cnn": dict(channels=(8, 8, 16, 16), stem_width=8, batch_size=8, tile=32, max_tiles=16),
                     "spectral": dict(tile=32, max_tiles=16, augmented_copies=0),
                     "surprise": dict(tile=32, max_tiles=16, levels=2, context=5, width=8, radius=6, batch_size=4)}


@pytest.mark.parametrize("name", CLASSIFIERS.available())
def test_classifier_fits_saves_loads_and_scores_a_tiny_and_a_huge_image(name, tmp_path, huge_image):
    from sklearn.exceptions import NotFittedError

    model = create_classifier(name, **SMALL_CLASSIFIERS.get(name, {}))
    assert isinstance(model, ImageClassifier) and model.family == name
    rng = np.random.default_rng(0)
    images = [_photo_like(64, 64, seed=i) for i in range(8)]
    images = [im if i % 2 == 0 else (im.astype(int) + 8 * (np.indices((64, 64)).sum(0) % 2)[..., None]).clip(0, 255)
              .astype(np.uint8) for i, im in enumerate(images)]
    labels = np.array([i % 2 for i in range(8)])
    with pytest.raises(NotFittedError):
        model.decision_function(images[:1])
    model.fit(images, labels, seed=0, steps=2).calibrate(images, labels)
    model.save(tmp_path)
    meta = json.loads((tmp_path / "classifier.json").read_text())
    assert meta["family"] == name
    loaded = load_classifier(tmp_path)
    assert np.allclose(loaded.decision_function(images[:2]), model.decision_function(images[:2]), atol=1e-4)
    tiny = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.isnan(loaded.decision_function([tiny])[0])  # smaller than one tile: no score, not a guess
    started = time.perf_counter()
    proba = loaded.predict_proba([huge_image.rgb])
    assert proba.shape == (1, 2) and np.isfinite(proba).all() and time.perf_counter() - started < 30


# -- perturbations ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name", PERTURBATIONS.available())
def test_perturbation_records_json_parameters_and_handles_a_tiny_and_a_large_image(name):
    perturbation = PERTURBATIONS.create(name)
    params = perturbation.draw(np.random.default_rng(0))
    assert json.loads(json.dumps(params)) == params
    for shape in ((2, 3, 3), (1500, 2000, 3)):
        rgb = _photo_like(*shape[:2])
        out = perturbation.apply(rgb, params)
        assert out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3 and min(out.shape[:2]) >= 1
