"""Soft decisions on the public Stable Diffusion marks: marks the hard votes miss, and no hits on
unmarked images. Fixtures are made here: the SD words embedded with imwatermark as the reference
scripts do, then damaged."""
import io

import numpy as np
import pytest
from imwatermark import WatermarkEncoder
from PIL import Image

import detectors
from detectors.results import Signal
from provenance.watermark import null_model, null_statistics, soft_marks, thirdparty
from tests.test_watermark import sdxl_embedder
from tests.watermark_helpers import as_file, photo_bgr

SD1, SD2, SDXL = thirdparty.KNOWN_MARKS


def _sd_script(photo: str, message: bytes) -> np.ndarray:
    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", message)  # CompVis / Stability scripts/txt2img.py
    return encoder.encode(photo_bgr(photo), "dwtDct")


def _jpeg_444(bgr: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buffer, "JPEG", quality=quality, subsampling=0)
    return np.ascontiguousarray(np.asarray(Image.open(buffer))[:, :, ::-1])


def _noisy(bgr: np.ndarray, sd: float) -> np.ndarray:
    return np.clip(bgr + np.random.default_rng(0).normal(0, sd, bgr.shape), 0, 255).astype(np.uint8)


# Measured here: hard matches stay far below the corrected thresholds (100/136, 32/32, 42/48),
# while t is 10-33 against thresholds of about 6-8.
@pytest.mark.parametrize("word,path,make", [
    (SD1, "uint8", lambda: _jpeg_444(_sd_script("astronaut", b"StableDiffusionV1"), 70)),  # hard 84/136
    (SD1, "uint8", lambda: _noisy(_sd_script("coffee", b"StableDiffusionV1"), 6)),  # hard 81/136
    (SD2, "uint8", lambda: _sd_script("coffee", b"SDV2")),  # untouched, hard 25/32: dwtDct's weak 0-bits
    (SDXL, "float32", lambda: sdxl_embedder("coffee")),  # untouched, hard 29/48 on its own path
])
def test_soft_decision_reads_marks_the_hard_decision_misses(word, path, make):
    detector = detectors.create("sd-watermark")
    evidence = detector.detect(as_file(make()))
    results = {r["test"]: r for r in evidence.details["results"]}
    hard = [r for r in results.values() if r["decision"] == "hard" and r["mark"] == word.label]
    assert hard and all(r["matches"] < r["threshold"] and r["corrected_p"] > 1e-6 for r in hard)

    soft = results[soft_marks.soft_test_name(word, path)]
    assert soft["t"] > soft["threshold"] and soft["corrected_p"] <= 1e-6
    assert evidence.signal is Signal.SYNTHETIC and evidence.details["decision"] == "soft"
    # the explanation names the word, path, statistic and calibrated threshold, and keeps the hard result
    assert evidence.summary.startswith(f"evidence of the {word.label} reference-script watermark (a public, forgeable mark)")
    assert f"soft decision t = {soft['t']:.1f} for the {word.label} word on the {path} path" in evidence.summary
    assert f"calibrated threshold {soft['threshold']:.2f} for FPR 1e-6 over {soft_marks.test_count()} tests" in evidence.summary
    assert "hard decision" in evidence.summary and f"/{word.length} bits" in evidence.summary


def _unmarked_images():
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:320, 0:448]
    stripes = ((y // 64) % 2 * 200).astype(np.uint8)
    yield "noise", rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    yield "noise-large", rng.integers(0, 256, (512, 640, 3), dtype=np.uint8)
    yield "noise-jpeg", _jpeg_444(rng.integers(0, 256, (384, 384, 3), dtype=np.uint8), 80)
    yield "grey", np.repeat(rng.integers(0, 256, (320, 320, 1), dtype=np.uint8), 3, axis=2)
    yield "flat", np.full((288, 288, 3), 77, np.uint8)
    yield "stripes", np.ascontiguousarray(np.stack([stripes, 255 - stripes, stripes], -1))
    yield "gradient", np.stack([x / 448 * 255, y / 320 * 255, 0 * x + 90], -1).astype(np.uint8)
    yield "photo", photo_bgr("chelsea")
    yield "photo-jpeg", _jpeg_444(photo_bgr("rocket"), 90)


@pytest.mark.parametrize("name,bgr", list(_unmarked_images()), ids=lambda v: v if isinstance(v, str) else "")
def test_unmarked_images_do_not_trigger(name, bgr):
    evidence = detectors.create("sd-watermark").detect(as_file(bgr))
    assert evidence.signal is Signal.NONE
    soft = [r for r in evidence.details["results"] if r["decision"] == "soft"]
    assert len(soft) == len(thirdparty.KNOWN_MARKS) * len(thirdparty.PATH_OPTIONS)
    assert all(r["corrected_p"] > 1e-3 and r["t"] < r["threshold"] for r in soft), name


def test_degenerate_images_give_t_zero():
    y, x = np.mgrid[0:256, 0:384]
    grey = np.repeat((x % 251).astype(np.uint8)[:, :, None], 3, axis=2)  # U is 128 (uint8) or 0.5 + rounding (float32)
    assert set(soft_marks.soft_statistics(np.ascontiguousarray(grey)).values()) == {0.0}


def test_word_t_follows_the_word_and_ignores_a_shuffled_one():
    rng = np.random.default_rng(0)
    signs = np.where(SD1.bits, 1.0, -1.0)[np.arange(64 * 48) % SD1.length].reshape(64, 48)
    noise = rng.normal(size=(64, 48))
    assert soft_marks.word_t(noise + 0.5 * signs, SD1.bits) > 10
    assert abs(soft_marks.word_t(noise, SD1.bits)) < 4
    shuffled = rng.permutation(SD1.bits)
    assert soft_marks.word_t(noise + 0.5 * signs, shuffled) < soft_marks.word_t(noise + 0.5 * signs, SD1.bits) / 2


def test_a_texture_that_varies_by_column_does_not_read_as_the_word():
    # 48 blocks wide (a 384 px crop): SD 1.x's position i sees only columns c = i (mod 8). Columns
    # that differ by class as the word's 1-bits do shift the plain t, never the within-class one.
    rng = np.random.default_rng(5)
    word = SD1.bits
    share = np.bincount(np.arange(word.size) % 8, weights=word.astype(float)) / np.bincount(np.arange(word.size) % 8)
    columns = np.tile(share - share.mean(), 6) * 3
    texture = np.broadcast_to(columns, (48, 48))
    for seed in range(5):
        grid = texture + rng.normal(size=(48, 48))
        assert soft_marks.unstratified_t(grid, word) > 6  # past every shipped 1e-6 threshold
        assert abs(soft_marks.word_t(grid, word)) < 4
    signs = np.where(word, 1.0, -1.0)[np.arange(48 * 48) % word.size].reshape(48, 48)
    assert soft_marks.word_t(texture + rng.normal(size=(48, 48)) + 0.5 * signs, word) > 10  # a mark still reads


@pytest.mark.parametrize("word,cols,defined", [(SD1, 48, True), (SD1, 64, True), (SD1, 17 * 4, False),
                                                (SD2, 48, True), (SD2, 64, False), (SDXL, 128, True), (SDXL, 48, False)])
def test_soft_t_is_undefined_where_the_word_repeats_with_the_columns(word, cols, defined):
    rng = np.random.default_rng(0)
    signs = np.where(word.bits, 1.0, -1.0)[np.arange(40 * cols) % word.length].reshape(40, cols)
    t = soft_marks.word_t(rng.normal(size=(40, cols)) + signs, word.bits)
    assert (t > 8) if defined else (t == 0.0)


def test_shipped_soft_nulls_meet_the_target():
    from scipy import stats

    calibration = null_model.Calibration()
    tests = {soft_marks.soft_test_name(m, p) for m, p in soft_marks.soft_tests()}
    assert tests <= set(calibration.data["tests"])
    for name in tests:
        entry = calibration.data["tests"][name]
        null = calibration.null(name)
        assert entry["kind"] == "soft" and entry["images"] >= 2000 and entry["dof"] == soft_marks.soft_dof(entry["bits"])
        assert entry["trials_at_or_above_threshold"] == 0 and entry["max_t"] < entry["threshold_at_1e-6"]
        assert entry["tail_ratio_max"] is None or entry["tail_ratio_max"] <= 1.0  # the model dominates the measured tail
        threshold = entry["threshold_at_1e-6"]
        assert null.p_value(threshold) <= 1e-6 < null.p_value(threshold - entry["grid_step"])
        for t in (0.5, 2.0, 4.0, threshold):  # never lighter than Student t with the reference dof
            assert null.p_value(t) >= stats.t.sf(t, entry["dof"]) * (1 - 1e-9)


def test_soft_null_reads_down_to_the_grid_and_clamps():
    null = null_model.SoftNullFit("x", 0.5, (0.5, 0.1, 0.01, 1e-7))
    assert null.p_value(-3.0) == null.p_value(float("nan")) == 0.5
    assert null.p_value(0.99) == 0.1 and null.p_value(1.0) == 0.01 and null.p_value(99.0) == 1e-7
    assert null.threshold(1e-6) == 1.5 and null.threshold(1e-9) == float("inf")


def test_summarise_soft_widens_a_heavy_tail_and_keeps_the_reference():
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(size=1980), rng.normal(0, 4, 20)])  # a heavy 1% tail
    entry = null_statistics.summarise_soft(values, 32, values.size, 30)
    assert entry["scale"] > entry["scale_fit"] and entry["tail_ratio_max"] <= 1.0
    assert entry["threshold_at_1e-6"] > null_statistics.summarise_soft(rng.normal(size=2000), 32, 2000, 30)["threshold_at_1e-6"]
