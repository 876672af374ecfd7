"""The distilled placement scorer: the teacher's contract, training that learns and resumes, safe
loading bound to its teacher, an ONNX export with the same scores, and the scheme using it."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from provenance import watermark
from provenance.watermark.learned.networks import NetConfig, PlacementScores, build
from provenance.watermark.learned.registration import RegistrationConfig
from provenance.watermark.learned.scheme import scorer_onnx_path, scorer_path
from provenance.watermark.learned.scorer import (DistilledScores, ScorerConfig, export_scorer, load_scorer,
                                                 save_scorer, teacher_of)
from provenance.watermark.learned.scorer_training import ScorerTrainConfig, ScorerTrainer, peak_mismatch
from provenance.watermark.learned.weights import WeightsError, save_weights
from tests.watermark_helpers import photo_bgr

# a flatten head with three stride-2 convolutions: its dense teacher has windows 4 px apart, as shipped
TINY = NetConfig(size=32, width=8, message_grid=4, decoder_blocks=4)
SMALL = ScorerConfig(first=4, width=6, dilations=(1, 2))


def _weights(path, seed=0):
    torch.manual_seed(seed)
    encoder, decoder = build(TINY)
    save_weights(path, encoder.eval(), decoder.eval(), TINY, {"target_rms": 0.02})
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("scorer")
    photos = root / "photos"
    (photos / "a").mkdir(parents=True)
    for name in ("chelsea", "coffee", "astronaut"):
        cv2.imwrite(str(photos / "a" / f"{name}.png"), photo_bgr(name))
    return _weights(root / "tiny.safetensors"), photos


def _config(setup, **changes):
    weights, photos = setup
    values = dict(weights=str(weights), photos=str(photos), exclude=("a/coffee.png",), samples=12, steps=6,
                  batch_size=4, log_every=2, sample_every=3, checkpoint_every=3, scorer=SMALL, validation_share=0.34)
    return ScorerTrainConfig(**{**values, **changes})


@pytest.mark.parametrize("config", [ScorerConfig(), SMALL])
@pytest.mark.parametrize("shape", [(1, 3, 128, 128), (2, 3, 148, 164)])
def test_the_student_keeps_the_teachers_contract(config, shape):
    torch.manual_seed(0)
    _, decoder = build(NetConfig())
    teacher = PlacementScores(decoder, dense=True).eval()
    student = DistilledScores(teacher, config).eval()
    canvas = torch.rand(shape)
    with torch.inference_mode():
        assert student(canvas).shape == teacher(canvas).shape
    assert student.stride == teacher.stride == 4
    assert sum(p.numel() for p in student.parameters()) < sum(p.numel() for p in teacher.features.parameters()) / 4


def test_training_learns_resumes_and_refuses_another_run(setup, tmp_path):
    trainer = ScorerTrainer(tmp_path / "run", _config(setup, steps=40, sample_every=40, checkpoint_every=20))
    assert set(trainer.photo_names) == {"a/chelsea.png", "a/astronaut.png"}  # the excluded photo is never read
    assert len(trainer.train_index) and len(trainer.validation_index)
    assert not set(trainer.samples["photo"][trainer.train_index]) & set(trainer.samples["photo"][trainer.validation_index])
    losses = [trainer.train_step()["feature_loss"] for trainer.step in range(40)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])

    # resumable: 6 steps in one go equal 3 + 3 with a restart
    whole = ScorerTrainer(tmp_path / "whole", _config(setup))
    whole.run()
    first = ScorerTrainer(tmp_path / "parts", _config(setup))
    for _ in range(3):  # a run stopped after 3 of its 6 steps
        first.train_step()
        first.step += 1
    first.save()
    second = ScorerTrainer(tmp_path / "parts", _config(setup))
    assert second.step == 3
    second.run()
    for a, b in zip(whole.student.state_dict().values(), second.student.state_dict().values()):
        assert torch.allclose(a.float(), b.float(), atol=1e-6)
    info = json.loads((tmp_path / "parts" / "config.json").read_text())
    assert info["step"] == 6 and "best_window_agreement" in info["validation"] and info["hardware"]["cpu_capability"]
    with pytest.raises(ValueError, match="seed"):
        ScorerTrainer(tmp_path / "parts", _config(setup, seed=1))


def test_a_run_resumes_from_its_samples_without_the_photos(setup, tmp_path):
    """The samples file names its photos, so a run moves to another machine (a GPU) without them."""
    import shutil

    weights, photos = setup
    copied = tmp_path / "photos"
    shutil.copytree(photos, copied)
    first = ScorerTrainer(tmp_path / "run", _config(setup, photos=str(copied)))
    shutil.rmtree(copied)
    second = ScorerTrainer(tmp_path / "run", _config(setup, photos=str(copied), peak_loss=0.0))
    assert second.photo_names == first.photo_names
    second.run()
    assert json.loads((tmp_path / "run" / "config.json").read_text())["photos"] == ["a/astronaut.png", "a/chelsea.png"]
    with pytest.raises(ValueError, match="peak_loss"):
        ScorerTrainer(tmp_path / "run", _config(setup, photos=str(copied), peak_loss=1.0))


def test_peak_mismatch_compares_each_canvas_best_window():
    target = torch.zeros(2, 3, 4)
    target[0, 1, 2], target[1, 0, 0] = 2.0, 1.5
    assert peak_mismatch(target.clone(), target).item() == 0
    elsewhere = target.clone()
    elsewhere[0, 1, 2], elsewhere[0, 2, 3] = 0.0, 2.0  # the same height, at another window
    assert peak_mismatch(elsewhere, target).item() == pytest.approx(2.0 ** 2 / 2)
    flat = target * 0.5  # the right window, too low
    assert peak_mismatch(flat, target).item() == pytest.approx(2 * (1.0 ** 2 + 0.75 ** 2) / 2)


def test_saved_scorer_loads_without_code_for_its_teacher_only_and_exports_the_same_scores(setup, tmp_path):
    weights, _ = setup
    teacher = teacher_of(weights)
    torch.manual_seed(1)
    student = DistilledScores(teacher, SMALL).eval()
    for p in student.parameters():
        p.data.normal_(0, 0.3)
    path = tmp_path / "s.safetensors"
    save_scorer(path, student, weights)
    loaded = load_scorer(path, weights)
    canvas = torch.rand(2, 3, 40, 44)
    with torch.inference_mode():
        assert torch.allclose(loaded(canvas), student(canvas), atol=1e-6)
    with pytest.raises(WeightsError, match="other learned weights"):
        load_scorer(path, _weights(tmp_path / "other.safetensors", seed=1))
    with pytest.raises(WeightsError, match="not a placement scorer"):
        load_scorer(weights, weights)

    import onnxruntime

    graph = export_scorer(loaded, tmp_path / "s.onnx")
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    assert session.get_modelmeta().custom_metadata_map == {"stride": "4", "scorer": "distilled"}
    with torch.inference_mode():
        assert np.allclose(session.run(None, {"canvases": canvas.numpy()})[0], loaded(canvas).numpy(), atol=1e-4)


def test_the_scheme_ranks_placements_with_an_installed_scorer(setup, tmp_path, monkeypatch):
    """Installed beside the weights, the scorer ranks first; the exact (teacher) search runs only where
    its best reaches ``exact_above``; with ``distilled=False`` the teacher alone, as before."""
    trainer = ScorerTrainer(tmp_path / "run", _config(setup, steps=2, weights=str(_weights(tmp_path / "w.safetensors"))))
    trainer.run()
    weights = trainer.config.weights
    calls = {"teacher": 0, "student": 0}

    def counting(cls, name):
        original = cls.forward
        monkeypatch.setattr(cls, "forward", lambda self, canvas: calls.__setitem__(name, calls[name] + 1) or original(self, canvas))

    counting(PlacementScores, "teacher")
    counting(DistilledScores, "student")
    bgr = photo_bgr("chelsea")[:300, :300]

    def searched(**options):
        calls.update(teacher=0, student=0)
        registration = RegistrationConfig(refine_above=1e9, **options)  # coarse passes only: one call per scale
        watermark.get("learned", weights=weights, backend="torch", registration=registration).registered_views(bgr)
        return calls["teacher"], calls["student"]

    scales = len(RegistrationConfig().scales())
    assert searched() == (scales, 0)  # nothing installed: the decoder's own dense trunk
    assert trainer.install() == (scorer_path(weights), scorer_onnx_path(weights))
    assert searched(exact_above=None) == (0, scales)  # the scorer alone
    assert searched(exact_above=-1.0) == (scales, scales)  # always confirmed: the teacher's search again
    teacher_alone = watermark.get("learned", weights=weights, backend="torch", distilled=False,
                                  registration=RegistrationConfig(refine_above=1e9))
    calls.update(teacher=0, student=0)
    teacher_alone.registered_views(bgr)
    assert calls == {"teacher": scales, "student": 0}

    onnx_scheme = watermark.get("learned", weights=weights)
    registration = onnx_scheme.new_registration()
    assert registration.fast is not None and registration.stride == 4  # the installed export, on onnxruntime
    fast = registration.fast(registration.canvases(np.random.default_rng(0).random((28, 28, 3), dtype=np.float32), [(0, 0)]))
    with torch.inference_mode():
        reference = load_scorer(scorer_path(weights), weights)(torch.from_numpy(
            registration.canvases(np.random.default_rng(0).random((28, 28, 3), dtype=np.float32), [(0, 0)]))).numpy()
    assert np.allclose(fast, reference, atol=1e-4)
