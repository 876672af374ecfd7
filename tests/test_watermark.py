"""Detectors: our keyed mark and the Stable Diffusion reference marks, on files made here."""
import json

import numpy as np
import pytest
from imwatermark import WatermarkEncoder

import detectors
from detectors.results import Signal, Strength
from provenance import watermark
from provenance.watermark import calibration, null_model, null_statistics, payload, soft_marks
from provenance.watermark.decision import DEFAULT_SCHEMES
from tests.watermark_helpers import as_file, photo_bgr

SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110  # generative-models WATERMARK_MESSAGE


def embed_ours(photo, scheme="dwtDctSvd", key=payload.DEFAULT_KEY, wm_id=payload.WatermarkId(7, 123456)):
    wm = watermark.get(scheme)
    bits = payload.encode_payload(key, scheme, wm.capacity, wm_id if wm.capacity is None else None)
    return wm.embed(photo_bgr(photo), bits)


# ---- our mark -------------------------------------------------------------------------------

@pytest.mark.parametrize("scheme", ["dwtDct", "dwtDctSvd"])
@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_our_mark_detected_with_id(scheme, photo):
    evidence = detectors.create("watermark").detect(as_file(embed_ours(photo, scheme)))
    assert evidence.signal is Signal.SYNTHETIC and evidence.strength is Strength.STRONG
    assert evidence.p_value <= 1e-6
    assert evidence.details["scheme"] == scheme
    assert (evidence.details["generator"], evidence.details["serial"]) == (7, 123456)
    assert evidence.details["tests"] == len(DEFAULT_SCHEMES) and evidence.details["keys_tried"] == ["default (public)"]


def test_our_svd_mark_detected_after_jpeg_q90():
    evidence = detectors.create("watermark").detect(as_file(embed_ours("chelsea"), "JPEG", quality=90, name="x.jpg"))
    assert evidence.signal is Signal.SYNTHETIC
    assert evidence.details["id"] == "generator 7, serial 123456"


def test_rivagan_mark_detected_only_when_asked():
    small = watermark.get("rivaGan").embed(
        photo_bgr("astronaut", (256, 256)), payload.encode_payload(payload.DEFAULT_KEY, "rivaGan", 32))
    image = as_file(small)
    assert detectors.create("watermark").detect(image).signal is Signal.NONE
    evidence = detectors.create("watermark", schemes=("rivaGan",)).detect(image)
    assert evidence.signal is Signal.SYNTHETIC and "no ID" in evidence.details["id"]


def test_wrong_key_not_detected_and_right_key_among_several_is():
    image = as_file(embed_ours("astronaut", key="secret-deployment-key"))
    assert detectors.create("watermark").detect(image).signal is Signal.NONE
    evidence = detectors.create("watermark", keys=(payload.DEFAULT_KEY, "secret-deployment-key")).detect(image)
    assert evidence.signal is Signal.SYNTHETIC and evidence.details["tests"] == 2 * len(DEFAULT_SCHEMES)
    assert "secret-deployment-key" not in json.dumps(evidence.to_dict())  # keys are never echoed


@pytest.mark.parametrize("photo", ["astronaut", "chelsea", "coffee", "rocket", "camera", "immunohistochemistry"])
def test_unmarked_photos_not_flagged(photo):
    image = as_file(photo_bgr(photo))
    ours = detectors.create("watermark").detect(image)
    assert ours.signal is Signal.NONE and ours.p_value > 1e-6
    assert "not proof of authenticity" in ours.summary
    assert detectors.create("sd-watermark").detect(image).signal is Signal.NONE


def test_small_images_skipped():
    image = as_file(photo_bgr("astronaut", (200, 300)))
    for name in ("watermark", "sd-watermark"):
        evidence = detectors.create(name).detect(image)
        assert evidence.signal is Signal.SKIPPED and "256x256" in evidence.summary


# ---- Stable Diffusion marks, embedded the reference way -------------------------------------
# Measured with these embedders (matches on the best path): SD1 136/136 astronaut, 134 rocket;
# SD2 32/32 astronaut, rocket; SDXL 48/48 astronaut, chelsea (float32 path), rocket (uint8 path).
# Some photos stay below threshold (coffee: SDXL 29/48, SD2 25/32): dwtDct misreads 0-bits.

def sd_script(photo, message: bytes):
    """CompVis / Stability txt2img: imwatermark on the uint8 BGR image."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", message)
    return encoder.encode(photo_bgr(photo), "dwtDct")


def sdxl_embedder(photo, flip_to_bgr=True):
    """generative-models WatermarkEmbedder: float32 255*x, RGB->BGR (old diffusers: no flip),
    then /255, clamp, and quantised to uint8 as a saved PNG is."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", [int(b) for b in bin(SDXL_MESSAGE)[2:]])
    x = photo_bgr(photo)[:, :, ::-1].astype(np.float32) / 255.0  # the pipeline's RGB in [0, 1]
    image = 255 * x
    image = np.ascontiguousarray(image[:, :, ::-1] if flip_to_bgr else image)
    image = encoder.encode(image, "dwtDct")
    rgb = np.clip((image[:, :, ::-1] if flip_to_bgr else image) / 255, 0.0, 1.0)
    return np.ascontiguousarray(np.round(rgb * 255).astype(np.uint8)[:, :, ::-1])


@pytest.mark.parametrize(
    "label,make",
    [
        ("Stable Diffusion 1.x", lambda: sd_script("astronaut", b"StableDiffusionV1")),
        ("Stable Diffusion 1.x", lambda: sd_script("rocket", b"StableDiffusionV1")),
        ("Stable Diffusion 2.x", lambda: sd_script("astronaut", b"SDV2")),
        ("Stable Diffusion 2.x", lambda: sd_script("rocket", b"SDV2")),
        ("Stable Diffusion XL", lambda: sdxl_embedder("astronaut")),
        ("Stable Diffusion XL", lambda: sdxl_embedder("chelsea")),
        ("Stable Diffusion XL", lambda: sdxl_embedder("rocket")),
        ("Stable Diffusion XL", lambda: sdxl_embedder("chelsea", flip_to_bgr=False)),
    ],
)
def test_sd_reference_marks_recognised(label, make):
    evidence = detectors.create("sd-watermark").detect(as_file(make()))
    assert evidence.signal is Signal.SYNTHETIC and evidence.strength is Strength.MODERATE
    assert evidence.summary.startswith(f"evidence of the {label} reference-script watermark (a public, forgeable mark)")
    assert evidence.p_value <= 1e-6 and evidence.details["tests"] == soft_marks.test_count() == 5 + 9


def test_sd_mark_is_not_our_keyed_mark():
    evidence = detectors.create("watermark").detect(as_file(sd_script("astronaut", b"SDV2")))
    assert evidence.signal is Signal.NONE


# ---- calibration ----------------------------------------------------------------------------

def test_shipped_calibration_meets_the_target():
    from scipy import stats

    data = null_model.Calibration().data
    for test in ("dwtDct/uint8", "dwtDctSvd/uint8"):
        entry = data["tests"][test]
        assert entry["trials"] >= 1_000_000
        assert entry["empirical_fpr_at_threshold"] <= 1e-6
        # measured, not only modelled: the one-sided 95% Poisson upper bound on the FPR is <= 1e-6
        hits = entry["trials_at_or_above_threshold"]
        assert stats.chi2.ppf(0.95, 2 * (hits + 1)) / 2 / entry["trials"] <= 1e-6
        assert entry["tail_ratio_max"] <= 1.0  # the p-value model is no lighter than the measured tail
    for name, entry in data["tests"].items():
        null = null_model.Calibration().null(name)
        assert null.p_value(entry["threshold_at_1e-6"]) <= 1e-6 < null.p_value(entry["threshold_at_1e-6"] - 1)


def test_keyed_p_value_is_not_binomial_and_is_monotone():
    from scipy import stats

    null = null_model.Calibration().null("dwtDctSvd/uint8")
    p = [null.p_value(m) for m in range(30, 65)]
    assert all(a >= b for a, b in zip(p, p[1:]))
    # Balanced keyed sync bits: the worst image gives about twice the binomial tail at 52/64.
    assert null.p_value(52) > 1.5 * stats.binom.sf(51, 64, 0.5)


def test_calibration_run_small():
    result = calibration.run_calibration(n_images=12, n_keys=7, rivagan_images=0, workers=1)
    entry = result["tests"]["dwtDctSvd/uint8"]
    assert entry["trials"] == 12 * 7 and sum(entry["histogram"]) == 84
    soft = {f"{word}/{path}/t" for word in ("sd1", "sd2", "sdxl") for path in ("uint8", "float32", "float32-rgb")}
    assert set(result["tests"]) == {"dwtDct/uint8", "dwtDctSvd/uint8", "sd1/uint8", "sd2/uint8",
                                    "sdxl/uint8", "sdxl/float32", "sdxl/float32-rgb"} | soft
    for name in soft:  # grey variants (t = 0 by definition) are left out of a soft null's fit
        entry = result["tests"][name]
        assert entry["kind"] == "soft" and entry["images"] == 12
        assert entry["trials"] == round(12 * (1 - entry["share_degenerate"]))


def test_keyed_matches_counts_agreements():
    words = np.array([[1, 0, 1, 0], [0, 0, 0, 0]], dtype=bool)
    keys = ["a", "b", "c"]
    counts = null_statistics.keyed_matches(words, "dwtDct", keys)
    for i, word in enumerate(words):
        for j, key in enumerate(keys):
            assert counts[i, j] == np.count_nonzero(word == payload.sync_pattern(key, "dwtDct", 4))
    assert np.all(counts[1] == 2)  # a collapsed word meets a balanced pattern exactly half-way


def test_calibration_variants_are_reproducible_big_enough_and_varied():
    from provenance.generators.photos import sample_photo
    from provenance.watermark.size import MIN_PIXELS

    photo = sample_photo("coins")  # a small greyscale photo (303x384): resizes must keep 256x256 of area
    variants = [calibration.make_variant(photo, np.random.default_rng([5, i])) for i in range(40)]
    again = calibration.make_variant(photo, np.random.default_rng([5, 3]))
    assert np.array_equal(again, variants[3])
    assert all(v.dtype == np.uint8 and v.shape[2] == 3 and v.shape[0] * v.shape[1] >= MIN_PIXELS for v in variants)
    assert len({v.shape for v in variants}) > 5  # rescaled and cropped, not one size


def test_calibration_negatives_add_trials_to_the_fixed_word_tests_only(tmp_path):
    from PIL import Image

    for i, name in enumerate(("astronaut", "coffee", "rocket")):
        Image.fromarray(np.ascontiguousarray(photo_bgr(name)[:, :, ::-1])).save(tmp_path / f"{i}.png")
    (tmp_path / "broken.jpg").write_bytes(b"not an image")
    Image.fromarray(np.zeros((100, 100, 3), np.uint8)).save(tmp_path / "small.png")  # under 256x256: skipped
    result = calibration.run_calibration(n_images=10, n_keys=3, rivagan_images=0, workers=1, negatives=[tmp_path])
    assert result["settings"]["negatives"] == [{"source": str(tmp_path), "images": 3}]
    assert result["tests"]["sd1/uint8"]["trials"] == 13 and result["tests"]["sd2/uint8/t"]["images"] == 13
    assert result["tests"]["dwtDct/uint8"]["images"] == 10
    # a crop per side where the photo is large enough (astronaut 512x512, coffee 400x600, rocket 427x640)
    cropped = calibration.run_calibration(n_images=10, n_keys=3, rivagan_images=0, workers=1, negatives=[tmp_path],
                                          negative_crops=[384, 448])
    assert cropped["settings"]["negatives"] == [{"source": str(tmp_path), "images": 3, "crops": 4,
                                                 "crop_sides": [384, 448]}]
    assert cropped["tests"]["sd1/uint8"]["trials"] == 17
