"""The corpus-trained CNN (provenance/corpus_cnn.py) on tiny material and a tiny network: the folder it
writes loads without pickle and runs its own exported graphs, no held-out threshold photo reaches the
threshold under either graph, a finished run is loaded rather than redone, and the ``cnn-corpus``
detector reads such a folder with its scope."""
from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from detectors import create
from detectors.learned import load_classifier
from detectors.learned.cnn import ONNX_FILE, ONNX_INT8_FILE
from detectors.results import Signal
from provenance import corpus_cnn
from provenance.imageio import load_image
from tests.test_corpus_detector import _tiny_material

pytest.importorskip("onnx")  # the export extra: training exports both graphs

TINY = {"channels": (8, 8, 16, 16), "stem_width": 8, "batch_size": 16}


@pytest.fixture(scope="module")
def tiny_cnn(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("corpus-cnn")
    samples = _tiny_material(tmp_path / "images")
    lines: list[str] = []
    result = corpus_cnn.fit(samples, tmp_path / "run", steps=30, crops=2, on_progress=lines.append, **TINY)
    return result, tmp_path / "run", samples, lines


def test_the_folder_loads_without_pickle_and_runs_its_own_graph(tiny_cnn, monkeypatch):
    result, run, _, _ = tiny_cnn
    for name in ("classifier.json", "cnn.safetensors", ONNX_FILE, ONNX_INT8_FILE, "splits.json", "scores.npz"):
        assert (run / name).is_file(), name

    def refuse(*args, **kwargs):
        raise AssertionError("a trained model must not be unpickled")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    model = load_classifier(run)
    assert model.runtime is not None  # the graphs were exported from these very weights
    assert model.training["scope"] == corpus_cnn.SCOPE
    assert model.training["crops_per_training_image"] == 2
    assert model.config.augment_window == corpus_cnn.AUGMENT_WINDOW
    assert model.config.max_tiles == corpus_cnn.CHECK_MAX_TILES
    assert model.config.augment_noise_sigma == corpus_cnn.NOISE_SIGMA
    assert model.training["threshold_reals"]["graphs"] == ["fp32", "int8"]
    assert any(line.startswith("train ") for line in tiny_cnn[3])


def test_no_threshold_photo_reaches_the_threshold_under_either_graph(tiny_cnn):
    result, run, _, _ = tiny_cnn
    point, calibration = result.model.operating_point, result.model.calibration
    assert point.target_fpr == 0.01 and point.measured_fpr == 0.0  # each source here is small: none allowed
    keys = {s.key: s for s in result.samples}
    with np.load(run / "scores.npz", allow_pickle=False) as saved:
        for graph in corpus_cnn.GRAPHS:
            crops = dict(zip(map(str, saved["keys"]), saved[f"crop_logits_{graph}"]))
            files = dict(zip(map(str, saved[f"file_keys_{graph}"]), saved[f"file_logits_{graph}"]))
            validation = [k for k, s in keys.items() if not s.label and s.split == "validation"]
            training = [k for k, s in keys.items() if not s.label and s.split == "train"]
            assert validation and training
            assert (calibration(np.array([crops[k] for k in validation])) < point.threshold).all()
            assert (calibration(np.array([files[k] for k in validation + training])) < point.threshold).all()
    # held-out files are recorded for the card's tables: the validation and test photos, never training ones
    assert set(result.full_logits) == {k for k, s in keys.items() if not s.label and s.split != "train"}


def test_a_finished_run_is_loaded_not_redone(tiny_cnn):
    result, run, samples, _ = tiny_cnn
    lines: list[str] = []
    again = corpus_cnn.fit(samples, run, steps=30, crops=2, on_progress=lines.append, **TINY)
    assert lines and "finished run loaded" in lines[0] and not any(line.startswith("train ") for line in lines)
    assert again.model.operating_point == result.model.operating_point
    assert np.allclose(again.logits, result.logits)
    assert [s.key for s in again.samples] == [s.key for s in result.samples]


def test_the_cnn_corpus_detector_reads_the_folder_with_its_scope(tiny_cnn):
    result, run, samples, _ = tiny_cnn
    detector = create("cnn-corpus", weights=str(run))
    evidence = detector.detect(load_image(samples[0].image.path))
    assert evidence.detector == "cnn-corpus"
    assert evidence.signal in (Signal.SYNTHETIC, Signal.UNCERTAIN, Signal.NONE)
    assert evidence.details["scope"] == corpus_cnn.SCOPE and evidence.details["backend"].startswith("onnxruntime")
    assert evidence.details["tiles"] == 16  # a 260px image: 4 x 4 tiles of 64px, under the 32-tile budget
    assert json.loads((run / "splits.json").read_text())["groups"]["test"]


@pytest.mark.parametrize("family, option", [("spectral", ["--steps", "5"]), ("cnn", ["--C", "0.1"])])
def test_the_corpus_command_refuses_an_option_of_the_other_family(tmp_path, family, option):
    from click.testing import CliRunner

    from provenance.cli import main

    result = CliRunner().invoke(main, ["train", "detector", "corpus", "--family", family, "--corpus", str(tmp_path),
                                       "--out", str(tmp_path / "run"), *option])
    assert result.exit_code == 2 and "--family" in result.output
    assert not (tmp_path / "run").exists()


def _budget_of_16(run, tmp_path, early_stop: dict | None = None):
    """A copy of the tiny run whose budget (16 tiles) a 260 px image fills: only full budgets stop early."""
    import shutil

    folder = tmp_path / "cnn-16"
    shutil.copytree(run, folder, ignore=shutil.ignore_patterns("crops-*", "checkpoint*", "scores.npz"))
    meta = json.loads((folder / "classifier.json").read_text())
    meta["config"]["max_tiles"] = 16
    meta.pop("early_stop", None)
    if early_stop:
        meta["early_stop"] = early_stop
    (folder / "classifier.json").write_text(json.dumps(meta))
    return folder


@pytest.mark.parametrize("margin", [0.0, 100.0])
def test_an_early_stop_scores_half_the_tiles_only_below_its_margin(tiny_cnn, tmp_path, margin):
    """The uncertain band set at the median first-half score of six images: with margin 0 those
    below it stop after every other tile, the rest are scored whole; with margin 100 none stops.
    The batched path agrees with the one-image path, and a stop never reads above the band."""
    _, run, samples, _ = tiny_cnn
    plain = create("cnn-corpus", weights=str(_budget_of_16(run, tmp_path / "plain")))
    images = [load_image(s.image.path) for s in samples[:6]]
    model = plain.model
    first_means = [float(model.score_tiles(image.rgb)[0][::2].mean()) for image in images]
    band = float(np.median(model.probability(np.array(first_means))))
    folder = _budget_of_16(run, tmp_path / "staged", {"margin": margin, "images": 1, "measured_on": "test"})
    meta = json.loads((folder / "classifier.json").read_text())
    meta["operating_point"].update(band_low=band, threshold=max(band, meta["operating_point"]["threshold"]))
    (folder / "classifier.json").write_text(json.dumps(meta))
    staged = create("cnn-corpus", weights=str(folder))
    batch = staged.detect_batch(images)
    stopped = 0
    for image, batched, first_mean in zip(images, batch, first_means):
        whole, evidence = plain.detect(image), staged.detect(image)
        assert evidence.probability == pytest.approx(batched.probability, abs=1e-6)
        if margin == 0 and model.probability(np.array([first_mean]))[0] < band:
            stopped += 1
            assert evidence.details["tiles"] == 8 and evidence.details["tiles_unscored"] == 8
            assert evidence.details["tile_logit_mean"] == pytest.approx(first_mean, abs=1e-5)
            assert "stopped early" in evidence.summary and evidence.signal == Signal.NONE
        else:
            assert evidence.details["tiles"] == 16 and "tiles_unscored" not in evidence.details
            assert evidence.probability == pytest.approx(whole.probability, abs=1e-6)
    assert stopped >= 1 if margin == 0 else stopped == 0


def test_the_early_stop_margin_is_the_largest_rise_off_the_test_split(tiny_cnn, tmp_path):
    from provenance.early_stop import EARLY_STOP_HEADING, measure_early_stop, tile_means

    _, run, samples, _ = tiny_cnn
    folder = _budget_of_16(run, tmp_path)
    (folder / "MODEL_CARD.md").write_text("# card\n")
    record = measure_early_stop(folder, samples)
    model = load_classifier(folder)
    means = tile_means(model, samples)
    rises = {s.key: means[s.key][1] - means[s.key][0] for s in samples}
    assert model.early_stop.margin == pytest.approx(max(r for s, r in zip(samples, rises.values()) if s.split != "test"))
    assert record.measured_images == sum(s.split != "test" for s in samples)
    assert record.test_images == sum(s.split == "test" for s in samples)
    assert 0 <= record.test_changed <= record.test_stopped <= record.test_images
    measure_early_stop(folder, samples)  # a re-run replaces the card's section
    assert (folder / "MODEL_CARD.md").read_text().count(EARLY_STOP_HEADING) == 1
