"""Trained passive classifiers on a toy problem made here: calibration, tiling, resume, evidence, eval."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from detectors.classifiers import CNNDetector, SpectralDetector
from detectors.fusion import fuse
from detectors.learned import create, load_classifier
from detectors.learned.calibration import OperatingPoint
from provenance.metrics import expected_calibration_error, tpr_at_fpr
from detectors.learned.tiles import cut_tiles, tile_grid
from detectors.results import Label, Signal, Strength
from provenance.imageio import load_image


def toy_images(n: int, fake: bool, seed: int, size: int = 128) -> list[np.ndarray]:
    """Smooth 'photos'; the fakes carry a faint 2-pixel checkerboard, like nearest upsampling leaves."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = gaussian_filter(rng.normal(128, 40, (size, size, 3)), sigma=(3, 3, 0)) + rng.normal(0, 2, (size, size, 3))
        if fake:
            yy, xx = np.mgrid[:size, :size]
            base += 6 * ((yy // 1 + xx // 1) % 2 * 2 - 1)[..., None]
        out.append(base.clip(0, 255).astype(np.uint8))
    return out


def toy_set(n: int, seed: int):
    images = toy_images(n, False, seed) + toy_images(n, True, seed + 1)
    return images, np.array([0] * n + [1] * n)


def test_operating_point_keeps_false_positives_under_target():
    reals = np.random.default_rng(0).uniform(size=1000)
    point = OperatingPoint.from_reals(reals, target_fpr=0.01)
    assert np.mean(reals >= point.threshold) <= 0.01 and point.measured_fpr <= 0.01
    assert np.mean(reals >= point.band_low) <= 0.05 and point.band_low <= point.threshold
    assert tpr_at_fpr(np.r_[reals, reals + 1], np.r_[np.zeros(1000), np.ones(1000)], 0.01) == 1.0


def test_platt_scaling_stays_modest_on_separable_held_out_data():
    from detectors.learned.calibration import PlattCalibration

    logits = np.r_[np.linspace(-10, -5, 50), np.linspace(5, 10, 50)]
    labels = np.r_[np.zeros(50), np.ones(50)]
    p = PlattCalibration.fit(logits, labels)(logits)
    assert 0.001 < p.min() and p.max() < 0.999  # 100 separable examples cannot justify certainty
    rng = np.random.default_rng(3)
    z = rng.normal(0, 2, 20000)
    y = rng.uniform(size=z.size) < 1 / (1 + np.exp(-(2 * z + 1)))
    fitted = PlattCalibration.fit(z, y)
    assert fitted.a == pytest.approx(2, abs=0.15) and fitted.b == pytest.approx(1, abs=0.15)


def test_ece_is_small_when_calibrated_and_large_when_not():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=20000)
    y = rng.uniform(size=20000) < p
    assert expected_calibration_error(p, y) < 0.02
    assert expected_calibration_error(np.clip(p * 0.2 + 0.8, 0, 1), y) > 0.2


def test_tiles_cover_the_centre_without_resizing_and_are_capped():
    assert tile_grid(100, 200, 64, 10) == [(18, 4), (18, 68), (18, 132)]
    assert tile_grid(63, 500, 64, 10) == []
    assert len(tile_grid(2160, 3840, 64, 64)) == 64
    rgb = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    tiles, corners = cut_tiles(rgb, 64, 4)
    assert tiles.shape == (4, 64, 64, 3) and np.array_equal(tiles[3], rgb[64:, 64:])


@pytest.fixture(scope="module")
def spectral(tmp_path_factory):
    images, labels = toy_set(20, 0)
    val_images, val_labels = toy_set(20, 10)
    model = create("spectral").fit(images, labels).calibrate(val_images, val_labels)
    directory = model.save(tmp_path_factory.mktemp("spectral"))
    return model, directory


def test_spectral_separates_the_toy_problem_and_round_trips(spectral):
    model, directory = spectral
    test_images, test_labels = toy_set(15, 20)
    proba = model.predict_proba(test_images)
    assert proba.shape == (30, 2) and np.allclose(proba.sum(axis=1), 1)
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test_labels, proba[:, 1]) > 0.95
    loaded = load_classifier(directory)
    assert np.allclose(loaded.predict_proba(test_images), proba)
    assert json.loads((directory / "classifier.json").read_text())["operating_point"]["target_fpr"] == 0.01


def test_spectral_augments_an_image_the_same_way_whatever_its_class(monkeypatch):
    """Augmentation must not tell the classes apart: an image gets exactly the same augmented copies
    when it is labelled real as when it is labelled synthetic."""
    import detectors.learned.augment as augment_module  # spectral imports augment() from here when fitting

    images, labels = toy_set(6, 0)
    images = [np.concatenate([im, im], axis=1) for im in images]  # 128x256: two tiles, one after a 0.5x resize

    def copies_by_class(fit_labels):
        made = []
        original = augment_module.augment

        def recording(rgb, rng):
            out = original(rgb, rng)
            made.append(out)
            return out

        monkeypatch.setattr(augment_module, "augment", recording)
        model = create("spectral", augmented_copies=3).fit(images, fit_labels, seed=4)
        monkeypatch.setattr(augment_module, "augment", original)
        return made, model

    as_given, model = copies_by_class(labels)
    flipped, _ = copies_by_class(1 - labels)
    assert len(as_given) == len(flipped) == 3 * len(images)
    for a, b in zip(as_given, flipped):
        assert np.array_equal(a, b)
    changed = [not (a.shape == images[i // 3].shape and np.array_equal(a, images[i // 3]))
               for i, a in enumerate(as_given)]
    assert any(changed[:9]) and any(changed[9:])  # both classes' copies were actually augmented
    plain = create("spectral", augmented_copies=0).fit(images, labels)
    assert plain.training["tiles"] == 24 and model.training["tiles"] > 24


def test_one_fake_looking_tile_is_averaged_with_the_real_ones_not_maxed(spectral):
    """The image score is the mean of its tiles' scores, each tile scored as an image of its own,
    not the max: a large real photo is not flagged for having more tiles, and one odd tile is diluted."""
    model, _ = spectral
    image = toy_images(1, False, 5, size=256)[0]
    image[:128, :128] = toy_images(1, True, 6, size=128)[0]  # one fake-looking tile in a real image
    crops = [image[y:y + 128, x:x + 128] for y in (0, 128) for x in (0, 128)]
    alone = model.decision_function(crops)
    whole = model.decision_function([image])[0]
    assert whole == pytest.approx(alone.mean(), abs=1e-4) and whole < alone.max() - 1
    assert model.predict_proba(crops[:1])[0, 1] > 0.8 and model.predict_proba([image])[0, 1] < 0.5


def test_an_unfitted_classifier_refuses_to_score(tmp_path):
    """scikit-learn's contract: a new network has random weights, so it raises NotFittedError
    instead of scoring, until it is fitted or loaded."""
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    images, labels = toy_set(4, 0)
    config = dict(channels=(8, 8, 16, 16), stem_width=8, batch_size=8, tile=32)
    for model in (create("cnn", **config), create("spectral")):
        with pytest.raises(NotFittedError):
            check_is_fitted(model)
        with pytest.raises(NotFittedError, match="not fitted"):
            model.decision_function(images[:1])
        with pytest.raises(NotFittedError):
            model.calibrate(images, labels)
    cnn = create("cnn", **config).fit(images, labels, steps=1)
    check_is_fitted(cnn)
    assert np.isfinite(cnn.decision_function(images[:1])).all()
    with pytest.raises(NotFittedError, match="not calibrated"):
        cnn.predict_proba(images[:1])
    cnn.calibrate(images, labels).save(tmp_path)
    check_is_fitted(load_classifier(tmp_path))


def test_cnn_training_resumes_exactly_after_an_interruption(tmp_path):
    images, labels = toy_set(6, 0)
    config = dict(channels=(8, 8, 16, 16), stem_width=8, batch_size=8, tile=32)

    class Interrupted(Exception):
        pass

    def stop_at_4(record):
        if record["step"] == 4:
            raise Interrupted

    with pytest.raises(Interrupted):
        create("cnn", **config).fit(images, labels, steps=8, out=tmp_path / "run", checkpoint_every=4,
                                    on_log=stop_at_4, log_every=4)
    resumed = create("cnn", **config).fit(images, labels, steps=8, out=tmp_path / "run", checkpoint_every=4)
    straight = create("cnn", **config).fit(images, labels, steps=8)
    for (name, a), b in zip(resumed.network.state_dict().items(), straight.network.state_dict().values()):
        assert torch.equal(a, b), name
    with pytest.raises(ValueError, match="other settings"):
        create("cnn", **config).fit(images, labels, steps=8, seed=1, out=tmp_path / "run")


def test_cnn_saves_small_weights_that_reload_to_the_same_scores(tmp_path):
    images, labels = toy_set(6, 0)
    model = create("cnn", channels=(8, 8, 16, 16), stem_width=8, batch_size=8, tile=32)
    model.fit(images, labels, steps=3).calibrate(*toy_set(6, 3))
    model.save(tmp_path)
    loaded = load_classifier(tmp_path)
    assert np.allclose(loaded.decision_function(images[:3]), model.decision_function(images[:3]))
    assert (tmp_path / "cnn.safetensors").stat().st_size < 1_000_000


def _loaded(rgb: np.ndarray, tmp_path) -> object:
    from PIL import Image

    path = tmp_path / "x.png"
    Image.fromarray(rgb).save(path)
    return load_image(path)


def test_classifier_evidence_is_never_decisive_and_abstains_when_unsure(spectral, tmp_path):
    _, directory = spectral
    detector = SpectralDetector(weights=directory)
    fake = detector.detect(_loaded(toy_images(1, True, 40)[0], tmp_path))
    assert fake.signal == Signal.SYNTHETIC and fake.strength == Strength.MODERATE and fake.probability >= 0.5
    assert fuse([fake])[0] == Label.LIKELY_SYNTHETIC

    real = detector.detect(_loaded(toy_images(1, False, 41)[0], tmp_path))
    assert real.signal == Signal.NONE
    label, reasons = fuse([real])
    assert label == Label.NO_EVIDENCE and any("not proof" in r for r in reasons)

    detector.model.operating_point = OperatingPoint(1.0, 0.0, 0.01, 0.0, 10)  # everything falls in the band
    unsure = detector.detect(_loaded(toy_images(1, False, 42)[0], tmp_path))
    assert unsure.signal == Signal.UNCERTAIN and fuse([unsure])[0] == Label.INCONCLUSIVE

    small = detector.detect(_loaded(np.zeros((100, 100, 3), np.uint8), tmp_path))
    assert small.signal == Signal.SKIPPED and "smaller than one 128px tile" in small.summary


def test_missing_weights_are_skipped_with_a_reason(tmp_path):
    evidence = CNNDetector(weights=tmp_path / "none").detect(_loaded(np.zeros((64, 64, 3), np.uint8), tmp_path))
    assert evidence.signal == Signal.SKIPPED and "provenance train detector" in evidence.error


def test_cli_trains_a_spectral_detector_on_a_built_dataset_and_evaluates_it(tiny_gan, tiny_diffusion, tmp_path):
    from click.testing import CliRunner

    from provenance.cli import main
    from provenance.datasets import DatasetConfig, build_dataset

    build_dataset(tmp_path / "set", DatasetConfig(n_real=40, n_gan=40, n_diffusion=0, seed=2, splits=(0.5, 0.25, 0.25),
                                                   gan_model=str(tiny_gan), diffusion_model=str(tiny_diffusion),
                                                   c2pa_fraction=0.0, watermark_fraction=0.0))
    runner = CliRunner()
    result = runner.invoke(main, ["train", "detector", "spectral", "--dataset", str(tmp_path / "set"),
                                  "--out", str(tmp_path / "spectral")])
    assert result.exit_code == 0, result.output
    assert "cannot pin a 1.0% false-positive rate" in result.output  # honest about a tiny validation set
    result = runner.invoke(main, ["eval", "--dataset", str(tmp_path / "set"), "--detector", str(tmp_path / "spectral"),
                                  "--out", str(tmp_path / "eval"), "--json"])
    assert result.exit_code == 0, result.output
    (report,) = json.loads(result.stdout)
    assert report["overall"]["auc"] > 0.9  # a 2-step GAN is trivially detectable; this checks plumbing
    assert {s["generator"] for s in report["strata"]} == {"gan"}
    for name in ("eval.json", "eval.md", "roc.png", "robustness.png"):
        assert (tmp_path / "eval" / name).stat().st_size > 100

    result = runner.invoke(main, ["train", "detector", "export", str(tmp_path / "spectral"), "--name", "spectral",
                                  "--dest", str(tmp_path / "shipped")])
    assert result.exit_code == 0, result.output
    card = (tmp_path / "shipped" / "spectral" / "MODEL_CARD.md").read_text()
    assert "## Evaluation on the `test` split" in card and "| spectral | **all**" in card
    splits = json.loads((tmp_path / "shipped" / "spectral" / "splits.json").read_text())
    test_rows = [json.loads(line) for line in (tmp_path / "set" / "test" / "metadata.jsonl").read_text().splitlines()]
    assert splits["real_photo_groups"]["test"] == sorted({r["source_group"] for r in test_rows if r["label"] == "real"})
    assert sum(splits["images"]["test"].values()) == len(test_rows)
    assert load_classifier(tmp_path / "shipped" / "spectral").operating_point is not None


def test_check_uses_a_given_classifier_and_writes_a_heatmap(spectral, tmp_path):
    from click.testing import CliRunner
    from PIL import Image

    from provenance.cli import main

    _, directory = spectral
    path = tmp_path / "fake.png"
    Image.fromarray(toy_images(1, True, 50, size=256)[0]).save(path)
    result = CliRunner().invoke(main, ["check", "--detector", "spectral", "--classifier", str(directory),
                                       "--heatmap", str(tmp_path / "h.png"), "--json", str(path)])
    assert result.exit_code == 1, result.output  # likely synthetic
    assert "spectral heatmap" in result.stderr
    verdict = json.loads(result.stdout)
    assert verdict["label"] == "likely_synthetic"
    assert any(e["detector"] == "spectral" and e["probability"] > 0.5 for e in verdict["evidence"])
    assert Image.open(tmp_path / "h.png").size == (256, 256)
    result = CliRunner().invoke(main, ["check", "--classifier", str(directory), "--heatmap", str(tmp_path / "h.png"),
                                       str(path), str(path)])
    assert result.exit_code == 2 and "exactly one image" in result.output


def _classifier(name: str, signal: Signal, probability: float = 0.5):
    from detectors.results import Evidence

    strength = Strength.MODERATE if signal == Signal.SYNTHETIC else Strength.NONE
    return Evidence(name, "classifier", signal, strength, f"{name} says {signal.value}", probability=probability)


def test_classifiers_that_contradict_each_other_are_inconclusive_not_synthetic():
    from detectors.results import Evidence

    label, reasons = fuse([_classifier("cnn", Signal.SYNTHETIC, 0.9), _classifier("spectral", Signal.NONE, 0.01)])
    assert label == Label.INCONCLUSIVE and "the trained classifiers disagree: spectral says none" in reasons
    # below its band but not confident the image is real (P = 0.3): no contradiction
    assert fuse([_classifier("cnn", Signal.SYNTHETIC, 0.9), _classifier("spectral", Signal.NONE, 0.3)])[0] == \
        Label.LIKELY_SYNTHETIC
    assert fuse([_classifier("cnn", Signal.SYNTHETIC), _classifier("spectral", Signal.UNCERTAIN)])[0] == \
        Label.LIKELY_SYNTHETIC
    assert fuse([_classifier("cnn", Signal.SYNTHETIC), _classifier("spectral", Signal.SYNTHETIC)])[0] == \
        Label.LIKELY_SYNTHETIC
    # one abstaining while another is confident: the confident one stands, and both are reported
    label, reasons = fuse([_classifier("cnn", Signal.NONE, 0.01), _classifier("spectral", Signal.UNCERTAIN, 0.6)])
    assert label == Label.NO_EVIDENCE and {"cnn says none", "spectral says uncertain"} <= set(reasons)
    assert fuse([_classifier("cnn", Signal.NONE, 0.2), _classifier("spectral", Signal.UNCERTAIN, 0.6)])[0] == \
        Label.INCONCLUSIVE
    metadata = Evidence("metadata", "metadata", Signal.SYNTHETIC, Strength.WEAK, "generator metadata")
    assert fuse([metadata, _classifier("cnn", Signal.NONE, 0.01)])[0] == Label.LIKELY_SYNTHETIC  # a declaration stands


def test_npr_input_is_blind_to_nearest_upsampled_content_and_sees_pixel_detail():
    from detectors.learned.cnn import _residual_module

    residual = _residual_module()()
    coarse = torch.rand(1, 3, 8, 8)
    upsampled = coarse.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # 2x nearest
    assert torch.count_nonzero(residual(upsampled)) == 0
    detailed = torch.rand(1, 3, 16, 16)
    out = residual(detailed)
    assert out.shape == detailed.shape and torch.count_nonzero(out) > 0
    assert torch.all(out[..., ::2, ::2] == 0)  # each 2x2 block is taken relative to its top-left pixel


def _reference_tile_features(tiles: np.ndarray) -> np.ndarray:
    """The spectral features written plainly, one tile at a time (full FFT, scipy DCT): the
    vectorised implementation must give the same numbers."""
    from scipy.fft import dctn

    from detectors.learned.spectral import HIST_RANGE, PEAKS, RADIAL_BINS, _grey, _radial_index, _residual

    n, size = tiles.shape[0], tiles.shape[1]
    residual = _residual(_grey(tiles))
    window = np.hanning(size).astype(np.float32)
    power = np.log(np.abs(np.fft.fft2(residual * window[:, None] * window[None, :])) ** 2 + 1e-3)
    index = _radial_index(size).ravel()
    counts = np.bincount(index, minlength=RADIAL_BINS)
    radial = np.stack([np.bincount(index, weights=p.ravel(), minlength=RADIAL_BINS) / counts for p in power])
    peaks = []
    for ky, kx in PEAKS:
        y, x = (size // ky if ky else 0), (size // kx if kx else 0)
        peaks.append(power[:, y, x] - radial[:, _radial_index(size)[y, x]])
    clipped = np.clip(np.round(residual), -HIST_RANGE, HIST_RANGE).astype(int) + HIST_RANGE
    hist = np.stack([np.bincount(c.ravel(), minlength=2 * HIST_RANGE + 1) for c in clipped]) / (size * size)
    colour = _residual(np.moveaxis(tiles.astype(np.float32), -1, 1))
    flat = colour.reshape(n, 3, -1)
    flat = flat - flat.mean(axis=2, keepdims=True)
    norms = np.sqrt((flat ** 2).sum(axis=2)) + 1e-6
    corr = [(flat[:, a] * flat[:, b]).sum(axis=1) / (norms[:, a] * norms[:, b]) for a, b in ((0, 1), (1, 2), (0, 2))]
    grey = _grey(tiles)
    cut = size - size % 8
    blocks = grey[:, :cut, :cut].reshape(n, cut // 8, 8, cut // 8, 8).transpose(0, 1, 3, 2, 4)
    dct = np.log(np.abs(dctn(blocks - 128, axes=(-2, -1), norm="ortho")) + 1).mean(axis=(1, 2)).reshape(n, 64)
    return np.concatenate([radial, np.stack(peaks, 1), np.log(hist + 1e-4), np.stack(corr, 1), dct], axis=1)


@pytest.mark.parametrize("size", [128, 64, 36, 35])
def test_vectorised_spectral_features_equal_the_plain_computation(size):
    from skimage import data

    from detectors.learned.spectral import tile_features
    from detectors.learned.tiles import cut_tiles

    rng = np.random.default_rng(0)
    tiles = np.concatenate([cut_tiles(data.astronaut(), size, 6)[0], rng.integers(0, 256, (3, size, size, 3), np.uint8),
                            np.full((1, size, size, 3), 9, np.uint8)])
    np.testing.assert_allclose(tile_features(tiles), _reference_tile_features(tiles), rtol=1e-4, atol=1e-4)


def test_cnn_augment_window_draws_each_tile_from_a_window_of_the_image(monkeypatch):
    """With ``augment_window`` the augmentations see a window around the tile, not the whole training
    image; every tile still comes from the image, at any position, for both classes alike."""
    import detectors.learned.augment as augment_module

    seen = []
    monkeypatch.setattr(augment_module, "augment", lambda rgb, rng, noise=None: seen.append(rgb.shape) or rgb)
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (100, 140, 3), dtype=np.uint8)
    model = create("cnn", tile=32, batch_size=16, augment_window=72)
    tiles, targets = model._batch([image, image.copy()], np.array([0, 1]), np.random.default_rng(1))
    assert seen and all(shape == (72, 72, 3) for shape in seen)
    assert set(targets.tolist()) == {0.0, 1.0}
    flipped = image[:, ::-1]
    for tile in tiles:  # each tile is a crop of the image (or its mirror): found by exact search
        found = any((window := source[y:y + 32, x:x + 32]).shape == tile.shape and np.array_equal(window, tile)
                    for source in (image, flipped) for y in range(100 - 31) for x in range(140 - 31))
        assert found
    seen.clear()
    create("cnn", tile=32, batch_size=4)._batch([image, image], np.array([0, 1]), np.random.default_rng(1))
    assert all(shape == image.shape for shape in seen)  # the default: the whole image, as the shipped weights


def test_the_cnn_noise_augmentation_reaches_its_configured_sigma():
    """``augment_noise_sigma`` bounds the Gaussian noise drawn for both classes (the corpus recipe
    raises it to high-ISO levels); the default keeps the toy recipe's 1-6."""
    from detectors.learned.cnn import CNNClassifier

    assert CNNClassifier()._noise.high == 6.0
    model = CNNClassifier(augment_noise_sigma=40.0)
    sigmas = [model._noise.draw(np.random.default_rng(seed))["sigma"] for seed in range(200)]
    assert max(sigmas) > 30 and min(sigmas) >= 1.0 and max(sigmas) <= 40.0


def test_a_threshold_just_under_one_is_not_printed_as_one():
    from detectors.classifiers import _probability_text

    assert _probability_text(0.9969) == "0.9969" and _probability_text(0.68) == "0.68"
    assert _probability_text(1.0) == "1.00" and _probability_text(0.001) == "0.00"


def test_an_early_stop_needs_a_rise_and_a_rising_calibration():
    from detectors.learned.calibration import EarlyStop, PlattCalibration

    with pytest.raises(ValueError, match=">= 0"):
        EarlyStop(-0.5, 10, "test")
    stop = EarlyStop(1.0, 10, "test")
    rising, falling = PlattCalibration(1.0, 0.0), PlattCalibration(-1.0, 0.0)
    assert stop.stops(np.array([-5.0, -4.0]), rising, band_low=0.5)  # -4.5 + 1 is still below 0
    assert not stop.stops(np.array([-0.5, -0.5]), rising, band_low=0.5)  # within the margin of the band
    assert not stop.stops(np.array([-5.0, -4.0]), falling, band_low=0.5)  # turned around: never stops
    assert list(EarlyStop.first_half(32)) == list(range(0, 32, 2))
