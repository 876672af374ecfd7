"""The rendered-graphic gate: its statistics, its fit/predict/save/load, the classifiers abstaining
where it fires, its training command on a tiny corpus, and the shipped gate on a chart and on photos."""
from __future__ import annotations

import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageDraw

from detectors.classifiers import SpectralDetector
from detectors.learned.rendered import (FEATURE_NAMES, GATE_FILE, NotFittedError, RenderedGraphicGate,
                                        rendering_features)
from detectors.results import Label, Signal
from provenance.check import CheckConfig, Checker, NamedBytes
from provenance.datasets.graphics import captioned, page, posted
from provenance.imageio import load_image
from provenance.rendered_gate import threshold_for
from provenance.shipped import RENDERED_GATE_DIR, shipped_classifiers


def chart(seed: int = 0, size=(640, 420)) -> np.ndarray:
    """A bar chart as Pillow draws it: flat fills, thin lines, text."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    draw.line([(50, 20), (50, size[1] - 40), (size[0] - 20, size[1] - 40)], fill="black", width=2)
    for i, height in enumerate(rng.uniform(0.2, 1.0, 8)):
        left = 60 + i * 70
        draw.rectangle([left, size[1] - 40 - height * (size[1] - 80), left + 50, size[1] - 40], fill=(40, 90, 200))
    draw.text((60, 5), "Votes by region", fill="black")
    return np.asarray(image)


def photo_like(seed: int = 0, size=(420, 640)) -> np.ndarray:
    """Smooth scene-like colour fields with sensor noise: no exact flats, no small palette."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size[0], 0:size[1]] / max(size)
    base = np.stack([np.sin(6 * x + c) * np.cos(4 * y - c) for c in (0.0, 1.0, 2.0)], axis=2) * 70 + 120
    return np.clip(base + rng.normal(0, 4, base.shape), 0, 255).astype(np.uint8)


def jpeg(rgb: np.ndarray, quality: int = 85) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def test_statistics_tell_flat_rendered_blocks_from_noisy_ones():
    drawn, noisy = rendering_features(chart()), rendering_features(photo_like())
    assert drawn.shape == noisy.shape == (len(FEATURE_NAMES),)
    flat, top_colour = 0, FEATURE_NAMES.index("palette share of the commonest colour")
    assert drawn[flat] > 0.5 and noisy[flat] == 0.0  # exactly flat blocks
    assert drawn[top_colour] > 0.5 > noisy[top_colour]
    assert np.isclose(drawn[:9].sum(), 1.0) and np.isclose(noisy[:9].sum(), 1.0)  # the range histogram
    tiny = rendering_features(chart()[:8, :8])  # one block still gives every statistic
    assert np.all(np.isfinite(tiny))
    with pytest.raises(ValueError, match="at least 8x8"):
        rendering_features(chart()[:7])


def _fitted_gate() -> RenderedGraphicGate:
    rng = np.random.default_rng(1)
    graphics = [rendering_features(np.asarray(page(rng))) for _ in range(6)] + [rendering_features(chart(s)) for s in range(6)]
    pictures = [rendering_features(photo_like(s)) for s in range(12)]
    return RenderedGraphicGate().fit(np.stack(graphics + pictures), np.array([1] * 12 + [0] * 12))


def test_gate_fits_predicts_and_survives_a_save_and_load(tmp_path):
    with pytest.raises(NotFittedError):
        RenderedGraphicGate().predict_proba(rendering_features(chart()))
    gate = _fitted_gate()
    assert gate.probability(chart(seed=99)) > 0.5 > gate.probability(photo_like(seed=99))
    gate.threshold, gate.record = 0.7, {"note": "test"}
    gate.save(tmp_path)
    loaded = RenderedGraphicGate.load(tmp_path)
    assert loaded.threshold == 0.7 and loaded.record == {"note": "test"}
    for rgb in (chart(seed=5), photo_like(seed=5)):
        assert loaded.probability(rgb) == pytest.approx(gate.probability(rgb), abs=1e-12)
    meta = json.loads((tmp_path / GATE_FILE).read_text())
    meta["features"] = meta["features"][:-1]
    (tmp_path / GATE_FILE).write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="features"):
        RenderedGraphicGate.load(tmp_path)


def test_threshold_lets_at_most_the_target_share_of_pictures_through():
    scores = np.linspace(0.0, 1.0, 1001)
    threshold = threshold_for(scores, 0.002)
    assert np.sum(scores >= threshold) <= 2 and np.sum(scores >= np.nextafter(scores[-3], 0)) == 3
    assert threshold_for(np.zeros(10), 0.002) == 0.5  # never under one half
    assert threshold_for(np.ones(10), 0.0) > 1.0  # no picture may pass: nothing is gated


def _gate_folder(tmp_path, threshold: float):
    gate = _fitted_gate()
    gate.threshold = threshold
    gate.save(tmp_path / "gate")
    return tmp_path / "gate"


def test_a_classifier_abstains_where_its_gate_fires_and_says_why(tmp_path):
    image = load_image(jpeg(chart()))
    gated = SpectralDetector(rendered_gate=_gate_folder(tmp_path, 0.5)).detect(image)
    assert gated.signal == Signal.SKIPPED and "computer-rendered" in gated.summary
    assert gated.details["rendered_graphic_probability"] >= 0.5
    never = SpectralDetector(rendered_gate=_gate_folder(tmp_path, 1.01)).detect(image)
    off = SpectralDetector(rendered_gate=False).detect(image)
    assert never.signal != Signal.SKIPPED and off.signal != Signal.SKIPPED and off.probability == never.probability


def test_a_gated_graphic_gets_no_evidence_with_the_reason_not_inconclusive(tmp_path):
    folder = _gate_folder(tmp_path, 0.5)
    config = CheckConfig(detectors=("c2pa", "metadata", "spectral", "cnn"),
                         detector_options={"spectral": {"rendered_gate": folder}, "cnn": {"rendered_gate": folder}})
    verdict = Checker(config).check_one(NamedBytes("chart.png", _png(chart())))
    assert verdict.label == Label.NO_EVIDENCE
    assert any(r.startswith("not examined by spectral, cnn: it looks computer-rendered") for r in verdict.reasons)


def _png(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_training_command_writes_a_gate_and_card_from_a_corpus(tmp_path, monkeypatch):
    from provenance.commands.train_cmds import train_group

    pictures = []
    for i in range(30):
        path = tmp_path / f"picture{i}.jpg"
        path.write_bytes(jpeg(photo_like(seed=i, size=(200, 260))))
        pictures.append(SimpleNamespace(label=i % 2, split=("train", "validation", "test")[i % 3],
                                        image=SimpleNamespace(path=str(path))))
    monkeypatch.setattr("provenance.corpus_detector.corpus_samples", lambda corpus: pictures)
    out = tmp_path / "gate"
    result = CliRunner().invoke(train_group, ["detector", "rendered-gate", "--corpus", str(tmp_path), "--out", str(out),
                                              "--graphics", "25", "--json"])
    assert result.exit_code == 0, result.output
    record = json.loads(result.output)
    gate = RenderedGraphicGate.load(out)
    assert gate.threshold >= 0.5 and record["graphics"] == 25 and "validation" in record["threshold_rule"]
    assert record["gated"]["photo"]["test"]["images"] == 5 and record["gated"]["figure"]["test"]["images"] > 0
    card = (out / "MODEL_CARD.md").read_text()
    assert "provenance train detector rendered-gate" in card and f"{gate.threshold:.4f}" in card


def test_captioned_and_posted_pictures_stay_pictures_of_a_size():
    rng = np.random.default_rng(0)
    picture = Image.fromarray(photo_like())
    for _ in range(6):
        data, suffix = posted(rng, captioned(rng, picture))
        decoded = load_image(data)
        assert suffix in (".png", ".jpg") and decoded.width >= picture.width // 2 and decoded.height >= picture.height // 2


# -- the shipped gate ------------------------------------------------------------------------------

shipped = pytest.mark.skipif(not (RENDERED_GATE_DIR / GATE_FILE).is_file(), reason="no shipped gate")


@shipped
def test_shipped_gate_is_small_documented_and_no_classifier_of_its_own():
    assert "rendered-graphic" not in shipped_classifiers()
    assert (RENDERED_GATE_DIR / GATE_FILE).stat().st_size < 20_000
    card = (RENDERED_GATE_DIR / "MODEL_CARD.md").read_text()
    assert "## Measured" in card and "rendered-gate" in card


@shipped
def test_shipped_gate_calls_a_drawn_chart_rendered_and_photos_not():
    from skimage import data

    gate = RenderedGraphicGate.load(RENDERED_GATE_DIR)
    for seed in range(3):
        assert gate.probability(load_image(jpeg(chart(seed))).rgb) >= gate.threshold
    for name in ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry"):
        rgb = getattr(data, name)()
        assert gate.probability(load_image(jpeg(rgb[..., :3])).rgb) < gate.threshold, name


@shipped
def test_check_cli_gates_a_chart_unless_told_not_to(tmp_path):
    from provenance.cli import main as cli

    path = tmp_path / "chart.png"
    path.write_bytes(_png(chart(seed=7)))
    runner = CliRunner()
    gated = json.loads(runner.invoke(cli, ["check", "--json", str(path)]).output)  # one file: one JSON line
    assert gated["label"] == "no_evidence_of_synthesis"
    classifiers = [e for e in gated["evidence"] if e["family"] == "classifier"]
    assert classifiers and all(e["signal"] == "skipped" and "computer-rendered" in e["summary"] for e in classifiers)
    scored = json.loads(runner.invoke(cli, ["check", "--json", "--no-rendered-gate", str(path)]).output)
    assert all(e["signal"] != "skipped" for e in scored["evidence"] if e["family"] == "classifier")


def test_classifiers_sharing_a_gate_score_an_image_once(tmp_path, monkeypatch):
    folder = _gate_folder(tmp_path, 0.5)
    calls = []
    real = RenderedGraphicGate.probability
    monkeypatch.setattr(RenderedGraphicGate, "probability", lambda self, rgb: calls.append(1) or real(self, rgb))
    image = load_image(_png(chart()))
    from detectors.classifiers import CNNDetector

    for detector in (SpectralDetector(rendered_gate=folder), CNNDetector(rendered_gate=folder)):
        assert detector.detect(image).signal == Signal.SKIPPED
    assert len(calls) == 1
