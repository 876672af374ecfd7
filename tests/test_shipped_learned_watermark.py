"""Smoke tests of the shipped learned-watermark weights (skipped where none ship): documented,
calibrated, safe to load, invisible at >= 40 dB, read back through the common decision path after
the edits its model card claims, and silent on an unmarked photo."""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from PIL import Image

from provenance import watermark
from provenance.watermark import decision, payload
from provenance.watermark.learned.calibrate import TEST_NAME, calibration_path
from provenance.watermark.learned.scheme import SHIPPED_WEIGHTS, onnx_path, placements_onnx_path
from provenance.watermark.marking import psnr
from provenance.watermark.null_model import Calibration
from tests.watermark_helpers import photo_bgr

pytestmark = pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason=f"no learned weights ship at {SHIPPED_WEIGHTS}")
KEY = "shipped-smoke-test-key"
WM_ID = payload.WatermarkId(2, 4242)


def _jpeg(bgr: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(bgr[:, :, ::-1])).save(buffer, "JPEG", quality=quality)
    return np.ascontiguousarray(np.asarray(Image.open(buffer))[:, :, ::-1])


def _decide(scheme, bgr):
    return decision.decode_scheme(bgr, scheme, [KEY], 1, Calibration())[0]


@pytest.fixture(scope="module")
def marked():
    scheme = watermark.get("learned", search=True)
    bgr = cv2.resize(photo_bgr("coffee"), (512, 512), interpolation=cv2.INTER_AREA)  # held out in training
    bits = payload.encode_payload(KEY, "learned", scheme.capacity, WM_ID)
    return scheme, bgr, scheme.embed(bgr, bits)


def test_shipped_files_are_documented_and_calibrated():
    card = (SHIPPED_WEIGHTS.parent / "MODEL_CARD.md").read_text()
    for needed in ("Steps", "Hardware", "PSNR", "SSIM", "dwtDctSvd", "JPEG q50", "crop to 50% area"):
        assert needed in card, needed
    assert onnx_path(SHIPPED_WEIGHTS).is_file() and placements_onnx_path(SHIPPED_WEIGHTS).is_file()
    entry = json.loads(calibration_path(SHIPPED_WEIGHTS).read_text())["tests"][TEST_NAME]
    assert entry["trials"] >= 1_000_000 and entry["views"] == watermark.get("learned").trials


def test_invisible_and_read_back_with_its_id(marked):
    scheme, bgr, out = marked
    assert psnr(bgr, out) >= 40
    result = _decide(scheme, out)
    assert result.detected and result.watermark_id == WM_ID


@pytest.mark.parametrize("edit", ["jpeg75", "resize0.5", "rotate10", "mirror"])
def test_survives_the_edits_it_was_measured_on(marked, edit):
    scheme, _, out = marked
    edited = {
        "jpeg75": lambda x: _jpeg(x, 75),
        "resize0.5": lambda x: cv2.resize(x, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA),
        "rotate10": lambda x: cv2.warpAffine(x, cv2.getRotationMatrix2D((256, 256), 10, 1), (512, 512)),
        "mirror": lambda x: np.ascontiguousarray(x[:, ::-1]),
    }[edit](out)
    if min(edited.shape[:2]) < 256:
        edited = cv2.resize(edited, (256, 256), interpolation=cv2.INTER_CUBIC)
    assert _decide(scheme, edited).detected


@pytest.mark.parametrize("area, left, top", [(0.5, 0.8, 0.3), (0.64, 0.1, 0.7)])
def test_registration_reads_a_crop_at_an_arbitrary_position(marked, area, left, top):
    scheme, bgr, out = marked
    side = round(512 * area ** 0.5)
    x, y = round((512 - side) * left), round((512 - side) * top)
    assert _decide(scheme, out[y:y + side, x:x + side]).detected
    assert not _decide(scheme, bgr[y:y + side, x:x + side]).detected
    grid = watermark.get("learned", search=True, registration=None)  # what the crop needed registration for
    assert _decide(grid, out[y:y + side, x:x + side]).matches < 50


def test_shipped_int8_graphs_are_current_and_read_a_crop_as_the_float_graphs_do(marked):
    """Every shipped export has a current int8 form (made from that very float graph); on it the
    search refines one crop scale more, and a half-area crop is found either way."""
    from provenance.onnx_int8 import is_int8, open_session
    from provenance.watermark.learned.scheme import scorer_onnx_path

    for graph in (onnx_path(SHIPPED_WEIGHTS), placements_onnx_path(SHIPPED_WEIGHTS), scorer_onnx_path(SHIPPED_WEIGHTS)):
        assert is_int8(open_session(graph, int8=True)), graph
    _, bgr, out = marked
    side = round(512 * 0.5 ** 0.5)
    crop = out[40:40 + side, 100:100 + side]
    for int8 in (False, True):
        scheme = watermark.get("learned", search=True, int8=int8)
        assert scheme.graph_precision == f"onnxruntime-{'int8' if int8 else 'fp32'}"
        result = _decide(scheme, crop)
        assert result.detected and result.watermark_id in (None, WM_ID), int8  # a half crop may lose the ID's BCH
        assert not _decide(scheme, bgr[40:40 + side, 100:100 + side]).detected, int8


def test_check_names_what_read_the_learned_mark(marked):
    import detectors
    from provenance.precision import use_int8
    from tests.watermark_helpers import as_file

    _, _, out = marked
    evidence = detectors.create("watermark").detect(as_file(out))
    assert evidence.details["backends"] == {"learned": f"onnxruntime-{'int8' if use_int8() else 'fp32'}"}


def test_silent_on_unmarked_photos():
    scheme = watermark.get("learned", search=True)
    for name in ("coffee", "chelsea", "astronaut"):
        assert not _decide(scheme, photo_bgr(name)).detected, name


def test_soft_votes_read_a_crop_the_hard_count_misses(marked):
    """A crop to 42% of the area: registration puts it back, but the bits of the missing region
    read as coin flips; weighting bits by the decoder's confidence still finds the mark."""
    scheme, bgr, out = marked
    side = round(512 * 0.42 ** 0.5)
    x, y = round((512 - side) * 0.8), round((512 - side) * 0.3)
    soft = _decide(scheme, out[y:y + side, x:x + side])
    hard = _decide(watermark.get("learned", soft=False), out[y:y + side, x:x + side])
    assert soft.detected and soft.statistic == "weighted-sign"
    assert not hard.detected and hard.statistic == "matches" and hard.matches == soft.matches
    assert not _decide(scheme, bgr[y:y + side, x:x + side]).detected


def test_registration_runs_only_when_the_fixed_views_decide_nothing(marked, monkeypatch):
    """An uncropped marked image is decided on the fixed views alone (the search is most of a
    decode's cost); an unmarked one and a crop read every view; both are corrected for all views."""
    scheme, bgr, out = marked
    searched = []
    original = type(scheme).registered_views
    monkeypatch.setattr(type(scheme), "registered_views",
                        lambda self, *args, **kwargs: searched.append(1) or original(self, *args, **kwargs))
    whole = _decide(scheme, out)
    assert whole.detected and whole.watermark_id == WM_ID and not searched
    assert whole.tests == scheme.trials
    assert not _decide(scheme, bgr).detected and len(searched) == 1
    side = round(512 * 0.5 ** 0.5)
    assert _decide(scheme, out[:side, -side:]).detected and len(searched) == 2


def test_an_unconfident_search_leaves_its_views_unread_and_still_counts_them(marked, monkeypatch):
    """Where the search finds no placement the decoder is sure of (an unmarked photo), a decision
    reads the fixed views alone (``read_unconfident=True``: all 8, as before); the correction counts
    every view either way, and a marked crop, which the search is sure of, is read and found."""
    from provenance.watermark.learned.registration import RegistrationConfig

    scheme, bgr, out = marked
    # nothing is confident at this bar, whichever graphs (float or int8) score the placements
    unsure = RegistrationConfig(refine_above=float("inf"))
    every = watermark.get("learned", search=True, registration=RegistrationConfig(refine_above=float("inf"), read_unconfident=True))
    decoded = []
    original = type(scheme)._run
    monkeypatch.setattr(type(scheme), "_run", lambda self, views: decoded.append(len(views)) or original(self, views))
    lazy = _decide(watermark.get("learned", search=True, registration=unsure), bgr)
    assert decoded == [len(scheme.fixed_views)] and not lazy.detected and lazy.tests == scheme.trials
    decoded.clear()
    full = _decide(every, bgr)
    assert decoded == [len(scheme.fixed_views), scheme.registration.candidates] and full.tests == lazy.tests
    side = round(512 * 0.5 ** 0.5)
    decoded.clear()
    assert _decide(scheme, out[:side, -side:]).detected and sum(decoded) > len(scheme.fixed_views)


def test_the_chosen_views_reuse_the_logits_the_search_decoded(marked, monkeypatch):
    """On a crop the search decodes its candidates' real views to rank them; the chosen ones are
    not decoded again, and their logits are what a fresh decode of those views gives."""
    scheme, _, out = marked
    side = round(512 * 0.64 ** 0.5)
    crop = np.ascontiguousarray(out[40:40 + side, 90:90 + side])
    reading = scheme._reading(crop)
    decoded = []
    original = type(scheme)._run
    monkeypatch.setattr(type(scheme), "_run", lambda self, views: decoded.append(len(views)) or original(self, views))
    logits = scheme._registered_logits(reading)
    monkeypatch.undo()
    views = scheme.registered_views(reading.bgr, reading.base, reading.search_base)
    fresh = scheme._run(scheme._warp(reading.base, views, reading.aspect))
    assert logits.shape == (scheme.registration.candidates, scheme.capacity)
    np.testing.assert_allclose(logits, fresh, atol=1e-5)
    assert len(decoded) == 2  # the shortlist and one round of nudges: no third decode of the chosen views


def test_shipped_registration_ranks_with_its_distilled_scorer():
    """The shipped scorer is bound to these weights, its export gives the torch scorer's scores, and the
    shipped scheme ranks with it (a marked crop is still found: the registration tests above)."""
    import onnxruntime
    import torch

    from provenance.watermark.learned.scheme import scorer_onnx_path, scorer_path
    from provenance.watermark.learned.scorer import load_scorer, scorer_metadata

    session = onnxruntime.InferenceSession(str(scorer_onnx_path(SHIPPED_WEIGHTS)), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == {"stride": "4", "scorer": "distilled"}
    scorer = load_scorer(scorer_path(SHIPPED_WEIGHTS), SHIPPED_WEIGHTS)  # refuses a scorer of other weights
    assert scorer_metadata(scorer_path(SHIPPED_WEIGHTS))["photos"]
    canvas = np.random.default_rng(0).random((2, 3, 148, 156), dtype=np.float32)
    with torch.inference_mode():
        assert np.allclose(session.run(None, {"canvases": canvas})[0], scorer(torch.from_numpy(canvas)).numpy(), atol=1e-4)
    assert watermark.get("learned").new_registration().fast is not None
