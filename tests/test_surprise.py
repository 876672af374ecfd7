"""The ``surprise`` classifier (a real-image model's coding-cost surprise, ZED-like) on tiny models
made here: the numpy scorer equals the torch network it was trained as, the coding costs are proper
(probabilities over all 256 grey values sum to one), the predictor never sees a fake, training
resumes exactly, and the one-class head flags what real images do not look like."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from detectors.learned import create, load_classifier
from detectors.learned.surprise import (SurpriseConfig, SurpriseHead, build_predictor, grey_levels,
                                        level_statistics, train_predictor)

TINY = dict(tile=32, max_tiles=16, levels=2, context=5, width=8, radius=6, batch_size=4)


def photos(n: int, seed: int, size: int = 64, checker: float = 0.0) -> list[np.ndarray]:
    """Smooth 'photos' with sensor-like noise; ``checker`` adds a 2-pixel checkerboard (an upsampling trace)."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        base = gaussian_filter(rng.normal(128, 40, (size, size, 3)), sigma=(3, 3, 0)) + rng.normal(0, 3, (size, size, 3))
        base += checker * ((np.indices((size, size)).sum(0) % 2) * 2 - 1)[..., None]
        out.append(base.clip(0, 255).astype(np.uint8))
    return out


def test_numpy_scorer_equals_the_torch_network():
    config = SurpriseConfig(**TINY)
    torch.manual_seed(0)
    network = build_predictor(config).eval()
    with torch.no_grad():
        for p in network.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    weights = network.to_weights()
    tiles = np.stack(photos(3, 0, size=32))
    for level, grey in enumerate(grey_levels(tiles, config.levels)):
        point, log_p = weights.predict(grey, level, config.context)
        with torch.no_grad():
            t_point, t_logits = network(torch.from_numpy((grey - 128) / 64).float()[:, None], level)
        np.testing.assert_allclose(point, t_point.numpy(), rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(log_p, torch.log_softmax(t_logits, 1).permute(0, 2, 3, 1).numpy(), atol=1e-4)


def test_the_blind_spot_never_sees_the_pixel_it_predicts():
    config = SurpriseConfig(**TINY)
    weights = build_predictor(config).to_weights()
    grey = np.random.default_rng(1).integers(0, 256, (1, 9, 9)).astype(np.float32)
    changed = grey.copy()
    changed[0, 4, 4] = 255 - changed[0, 4, 4]  # the centre of the middle output's 5x5 context
    a, b = weights.predict(grey, 0, 5), weights.predict(changed, 0, 5)
    assert a[0][0, 2, 2] == b[0][0, 2, 2] and np.array_equal(a[1][0, 2, 2], b[1][0, 2, 2])
    assert not np.array_equal(a[0], b[0])  # its neighbours do see it


def _full_distribution(log_p: np.ndarray, centre: float, radius: int) -> np.ndarray:
    """The bins spread over the 256 grey values: window bins one value each, tails uniform."""
    p = np.exp(log_p)
    full = np.zeros(256)
    for v in range(256):
        r = v - centre
        if r < -radius:
            full[v] = p[0] / max(centre - radius, 1)
        elif r > radius:
            full[v] = p[-1] / max(255 - centre - radius, 1)
        else:
            full[v] = p[int(r) + radius + 1]
    return full


@pytest.mark.parametrize("centre,value", [(128, 128), (128, 131), (30, 2), (200, 255)])
def test_coding_cost_and_entropy_are_those_of_a_distribution_over_the_256_values(centre, value):
    radius = 6
    rng = np.random.default_rng(centre + value)
    logits = rng.normal(0, 2, 2 * radius + 3)
    log_p = logits - np.log(np.exp(logits).sum())
    stats = level_statistics(log_p[None, None, None], np.array([[[value]]], float), np.array([[[centre]]], float),
                             radius)[0]
    full = _full_distribution(log_p, centre, radius)
    assert full.sum() == pytest.approx(1.0)
    nonzero = full[full > 0]
    assert stats[0] == pytest.approx(-np.log(full[value]))  # NLL: the cost of the actual value
    assert stats[1] == pytest.approx(-(nonzero * np.log(nonzero)).sum())  # H: the expected cost
    assert stats[2] == pytest.approx(stats[0] - stats[1])


def test_the_predictor_learns_from_real_images_only(monkeypatch):
    import detectors.learned.surprise as surprise

    seen = []
    original = surprise.train_predictor

    def recording(reals, *args, **kwargs):
        seen.extend(reals)
        return original(reals, *args, **kwargs)

    monkeypatch.setattr(surprise, "train_predictor", recording)
    reals, fakes = photos(3, 0), photos(3, 1, checker=8)
    create("surprise", **TINY).fit(reals + fakes, [0, 0, 0, 1, 1, 1], steps=2)
    assert len(seen) == 3 and all(any(np.array_equal(s, r) for r in reals) for s in seen)


def test_training_resumes_exactly_after_an_interruption(tmp_path):
    config = SurpriseConfig(**TINY)
    reals = photos(3, 0)

    class Interrupted(Exception):
        pass

    def stop_at_2(entry):
        if entry["step"] == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        train_predictor(reals, config, 4, out=tmp_path, checkpoint_every=2, on_log=stop_at_2, log_every=2)
    resumed = train_predictor(reals, config, 4, out=tmp_path, checkpoint_every=2)
    straight = train_predictor(reals, config, 4)
    for name in ("context_w", "head_w", "linear_w"):
        np.testing.assert_allclose(getattr(resumed, name), getattr(straight, name), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="other settings"):
        train_predictor(reals, SurpriseConfig(**{**TINY, "width": 4}), 4, out=tmp_path)


def test_one_class_head_flags_what_real_images_do_not_look_like(tmp_path):
    """Fitted on real tiles alone, the head scores images with an upsampling trace higher."""
    from sklearn.metrics import roc_auc_score

    reals = photos(12, 0)
    model = create("surprise", **{**TINY, "head": "gaussian"}).fit(reals, np.zeros(12, int), steps=40)
    held_out, fakes = photos(8, 5), photos(8, 6, checker=6)
    scores = model.decision_function(held_out + fakes)
    assert roc_auc_score([0] * 8 + [1] * 8, scores) > 0.9
    model.calibrate(held_out + fakes, [0] * 8 + [1] * 8).save(tmp_path)
    loaded = load_classifier(tmp_path)
    np.testing.assert_allclose(loaded.decision_function(fakes[:2]), model.decision_function(fakes[:2]), rtol=1e-5)
    assert {p.name for p in tmp_path.iterdir()} == {"classifier.json", "surprise.safetensors"}


def test_zed_head_reads_only_the_full_resolution_gap_and_ignores_the_labels():
    """One-class: fitted on real tiles alone (the synthetic ones are not looked at); a tile cheaper
    to code than the real ones expect scores high, and no other feature moves the score."""
    from detectors.learned.surprise import FEATURES_PER_LEVEL

    rng = np.random.default_rng(0)
    reals = rng.normal(size=(50, 2 * len(FEATURES_PER_LEVEL)))
    fakes = rng.normal(5, 1, size=(50, reals.shape[1]))
    head = SurpriseHead.fit("zed", np.r_[reals, fakes], np.r_[np.zeros(50), np.ones(50)].astype(int))
    assert np.allclose(head.mean, reals.mean(0))
    gap = FEATURES_PER_LEVEL.index("gap")
    probe = np.zeros((2, reals.shape[1]))
    probe[1, gap] = -1.0  # cheaper than expected
    assert head(probe)[1] > head(probe)[0]
    probe[:, [i for i in range(reals.shape[1]) if i != gap]] = 9.0
    assert head(probe)[1] - head(probe)[0] == pytest.approx(1 / head.scale[gap])


def test_heads_reject_what_they_cannot_fit():
    features = np.random.default_rng(0).normal(size=(20, 4))
    with pytest.raises(ValueError, match="unknown surprise head"):
        SurpriseHead.fit("svm", features, np.zeros(20, int))
    with pytest.raises(ValueError, match="both real and synthetic"):
        create("surprise", **TINY).fit(photos(2, 0), [0, 0], steps=1)
