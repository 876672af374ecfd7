"""Crop registration of the learned mark: the search's geometry (with a template-matching score whose
answer is known), the trunk's window scores against real views, and the view count the decision
corrects for. The shipped weights' crop reading is in test_shipped_learned_watermark.py."""
import cv2
import numpy as np
import pytest
import torch

from provenance import watermark
from provenance.watermark.learned.networks import NetConfig, PlacementScores, build
from provenance.watermark.learned.registration import Placement, Registration, RegistrationConfig
from provenance.watermark.learned.scheme import CROP_GRID_VIEWS, SEARCH_VIEWS, SHIPPED_WEIGHTS, View
from provenance.watermark.learned.weights import save_weights
from tests.watermark_helpers import photo_bgr

NET = NetConfig()  # the shipped geometry: 128 px working frame, stride-8 trunk, 16x16 read-out


def _template_scorer(frame: np.ndarray, cells: int = 16, stride: int = 8):
    """A stand-in for the decoder's confidence with a known answer: how well each 128 px window of a
    canvas matches ``frame`` (the uncropped image at the working size) where the window has content."""
    size = cells * stride

    def score(canvases: np.ndarray) -> np.ndarray:
        n, _, h, w = canvases.shape
        rows, cols = h // stride - cells + 1, w // stride - cells + 1
        out = np.zeros((n, rows, cols), np.float32)
        for i in range(n):
            for j in range(rows):
                for k in range(cols):
                    window = canvases[i, :, j * stride:j * stride + size, k * stride:k * stride + size]
                    inside = window.sum(axis=0) > 0
                    err = np.abs(window - frame)[:, inside].mean() if inside.any() else 1.0
                    out[i, j, k] = 1.0 / (0.01 + err)
        return out
    return score


def _frame(bgr: np.ndarray) -> np.ndarray:
    small = cv2.resize(bgr, (128, 128), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    return small.transpose(2, 0, 1).astype(np.float32) / 255


@pytest.mark.parametrize("area, left, top", [(0.5, 0.83, 0.11), (0.64, 0.2, 0.9), (0.81, 0.55, 0.45)])
def test_registration_finds_where_a_crop_sat(area, left, top):
    bgr = cv2.resize(photo_bgr("astronaut"), (512, 512), interpolation=cv2.INTER_AREA)
    side = round(512 * area ** 0.5)
    x, y = round((512 - side) * left), round((512 - side) * top)
    crop = bgr[y:y + side, x:x + side]
    config = RegistrationConfig(min_keep=0.69, coarse_phases=(0, 4), phases=(0, 2, 4, 6), refine_scales=2)
    best = Registration(NET, _template_scorer(_frame(bgr)), config).placements(crop, 1)[0]
    assert abs(best.keep / (side / 512) - 1) < 0.03  # the scale grid is 5%: the nearest step
    assert abs(best.x - x / 4) <= 3 and abs(best.y - y / 4) <= 3  # working px (512 / 128)

    def error(placement):  # the crop put back by the view the scheme would read, against the frame
        view = View(keep=placement.keep, at=placement.view_at(128))
        placed = cv2.warpAffine(_frame(crop).transpose(1, 2, 0), view.matrix(128), (128, 128))
        return np.abs(placed - _frame(bgr).transpose(1, 2, 0))[placed.sum(axis=2) > 0].mean()

    assert error(best) < 0.5 * error(Placement(0, best.keep, best.x + 6, best.y))


def test_registration_of_a_resized_crop_reads_its_frame_in_the_new_pixels():
    bgr = cv2.resize(photo_bgr("coffee"), (512, 512), interpolation=cv2.INTER_AREA)
    crop = cv2.resize(bgr[40:40 + 400, 100:100 + 400], (300, 300), interpolation=cv2.INTER_AREA)
    best = Registration(NET, _template_scorer(_frame(bgr)),
                        RegistrationConfig(coarse_phases=(0, 4), phases=(0, 2, 4, 6))).placements(crop, 1)[0]
    assert abs(best.keep / (400 / 512) - 1) < 0.03 and abs(best.x - 25) <= 3 and abs(best.y - 10) <= 3


def test_select_refines_on_real_views_and_keeps_distinct_placements():
    bgr = cv2.resize(photo_bgr("astronaut"), (512, 512), interpolation=cv2.INTER_AREA)
    crop = bgr[100:100 + 400, 60:60 + 400]
    frame = _frame(bgr)
    config = RegistrationConfig(coarse_phases=(0, 4), phases=(0, 4), candidates=3, refine=1, nudges=((1.0, 0.01),))
    registration = Registration(NET, _template_scorer(frame), config)
    seen = []

    def confidence(placements):  # the real views of the placements, scored like the canvases
        seen.extend(placements)
        views = [cv2.warpAffine(_frame(crop).transpose(1, 2, 0), View(keep=p.keep, at=p.view_at(128)).matrix(128),
                                (128, 128)).transpose(2, 0, 1) for p in placements]
        return _template_scorer(frame)(np.stack(views))[:, 0, 0]

    picked = registration.select(crop, confidence)
    assert len(picked) == 3 and len(seen) == config.shortlist + 6  # shortlist, then 6 nudges of the best
    assert abs(picked[0].x - 15) <= 2 and abs(picked[0].y - 25) <= 2
    for i, p in enumerate(picked):
        for q in picked[i + 1:]:
            assert abs(p.keep / q.keep - 1) > 0.03 or abs(p.x - q.x) + abs(p.y - q.y) > config.separation


@pytest.mark.skipif(not SHIPPED_WEIGHTS.is_file(), reason="needs the shipped learned weights")
def test_window_read_outs_equal_the_decoders_on_the_real_view():
    from provenance.watermark.learned.weights import load_networks

    _, decoder, _ = load_networks(SHIPPED_WEIGHTS)
    scores = PlacementScores(decoder).eval()
    crop = cv2.resize(photo_bgr("rocket"), (96, 96), interpolation=cv2.INTER_AREA)[:, :, ::-1]
    crop = crop.astype(np.float32).transpose(2, 0, 1) / 255
    canvas = np.zeros((1, 3, 128 + 32, 128 + 32), np.float32)
    canvas[0, :, 32 + 2:32 + 2 + 96, 32 + 6:32 + 6 + 96] = crop  # whole-cell offset 4, phase (6, 2)
    view = np.zeros((1, 3, 128, 128), np.float32)
    view[0, :, 8 + 2:8 + 2 + 96, 16 + 6:16 + 6 + 96] = crop  # the crop at (22, 10) in the frame
    with torch.inference_mode():
        windows = scores.logits(torch.from_numpy(canvas)).numpy()[0]  # (bits, 3, 3)
        real = decoder(torch.from_numpy(view)).numpy()[0]
        confidence = scores(torch.from_numpy(canvas)).numpy()[0]
    # the window starting at cell (row 3, col 2) holds the crop at (38 - 16, 34 - 24) = (22, 10)
    assert windows.shape[1:] == (5, 5)
    match = [[np.corrcoef(windows[:, j, k], real)[0, 1] for k in range(5)] for j in range(5)]
    assert match[3][2] > 0.9  # the same read-out (0.93), but for the frame's zero padding at its edges
    assert max(m for j, row in enumerate(match) for k, m in enumerate(row) if (j, k) != (3, 2)) < 0.5
    assert np.isclose(confidence[3, 2], np.abs(windows[:, 3, 2]).mean(), rtol=1e-5)


def test_views_are_counted_with_and_without_registration(tmp_path):
    torch.manual_seed(0)
    encoder, decoder = build(NET)
    weights = tmp_path / "w.safetensors"
    save_weights(weights, encoder.eval(), decoder.eval(), NET, {"target_rms": 0.01})
    bgr = photo_bgr("chelsea")
    registered = watermark.get("learned", weights=weights, backend="torch")
    assert registered.trials == len(SEARCH_VIEWS) + registered.registration.candidates
    assert registered.decode_all(bgr).shape == (registered.trials, 128)
    grid = watermark.get("learned", weights=weights, backend="torch", registration=None)
    assert grid.trials == len(SEARCH_VIEWS) + len(CROP_GRID_VIEWS) == 14
    assert grid.decode_all(bgr).shape == (14, 128)
    assert watermark.get("learned", weights=weights, search=False).trials == 1


def test_placement_geometry():
    p = Placement(score=1.0, keep=0.75, x=8.0, y=24.0)
    assert p.view_at(128) == (0.25, 0.75)
    assert np.allclose(View(keep=p.keep, at=p.view_at(128)).matrix(128), [[0.75, 0, 8], [0, 0.75, 24]])
    assert RegistrationConfig(min_keep=0.7, scale_step=0.05).scales().min() >= 0.7


def test_dense_scores_hold_the_plain_windows_and_the_half_cell_shifts():
    torch.manual_seed(0)
    _, decoder = build(NET)
    decoder.eval()
    plain, dense = PlacementScores(decoder).eval(), PlacementScores(decoder, dense=True).eval()
    assert (plain.stride, dense.stride) == (8, 4)
    canvas = torch.zeros(1, 3, 208, 208)
    canvas[..., 40:160, 36:156] = torch.rand(1, 3, 120, 120)
    shifted = torch.zeros_like(canvas)  # the content 4 px up and left: plain windows start 4 px later
    shifted[..., :-4, :-4] = canvas[..., 4:, 4:]
    with torch.inference_mode():
        every, even, odd = dense.logits(canvas), plain.logits(canvas), plain.logits(shifted)
    assert every.shape[-2:] == (2 * even.shape[-2], 2 * even.shape[-1])
    assert torch.allclose(every[..., ::2, ::2], even, atol=1e-5)  # the same windows, exactly
    # away from the canvas's edges (zero padding differs there) the odd windows are the shifted canvas's
    assert torch.allclose(every[..., 9:14:2, 9:14:2], odd[..., 4:7, 4:7], atol=1e-4)
