"""The learned watermark: plumbing with tiny untrained networks, attack layer gradients, safe weights,
training resume, and the scheme contract shared with the classical schemes."""
from dataclasses import replace
import io
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

from provenance import watermark
from provenance.watermark import payload
from provenance.watermark.null_model import Calibration
from provenance.watermark.learned import attacks
from provenance.watermark.learned.calibrate import TEST_NAME, calibrate, decode_learned
from provenance.watermark.learned.networks import NetConfig, build
from provenance.watermark.learned.scheme import MissingWeights
from provenance.watermark.learned.weights import WeightsError, load_networks, save_weights
from provenance.watermark.marking import MarkingError, psnr
from tests.watermark_helpers import photo_bgr

TINY = NetConfig(size=32, width=8, message_grid=4, decoder_blocks=3)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    torch.manual_seed(0)
    encoder, decoder = build(TINY)
    path = tmp_path_factory.mktemp("learned") / "tiny.safetensors"
    save_weights(path, encoder.eval(), decoder.eval(), TINY, {"target_rms": 0.01})
    return path


def test_registered_with_the_keyed_payload_layout():
    scheme = watermark.get("learned")
    assert "learned" in watermark.available()
    assert payload.layout_for(scheme.capacity) == payload.Layout(128, 64, True)
    bits = payload.encode_payload("k", "learned", scheme.capacity, payload.WatermarkId(7, 1234))
    assert payload.read_id(bits, "k", "learned", scheme.capacity) == (payload.WatermarkId(7, 1234), 0)


def test_missing_weights_is_a_one_line_marking_error(tmp_path):
    scheme = watermark.get("learned", weights=tmp_path / "none.safetensors")
    with pytest.raises(MarkingError, match="none.safetensors.*provenance train watermark"):
        scheme.embed(photo_bgr("coffee"), np.zeros(128, bool))
    with pytest.raises(MissingWeights, match="none.safetensors"):
        scheme.decode_soft(photo_bgr("coffee"), 128)


@pytest.mark.parametrize("shape", [(256, 256), (300, 500), (257, 1000)])
def test_embed_any_size_decode_shapes_and_strength(tiny_weights, shape):
    rng = np.random.default_rng(0)
    bgr = photo_bgr("astronaut")[: shape[0], : shape[1]].copy()
    if bgr.shape[:2] != shape:
        bgr = np.ascontiguousarray(np.resize(bgr, (*shape, 3)))
    bits = rng.integers(0, 2, 128).astype(bool)
    weak, strong = (watermark.get("learned", weights=tiny_weights, strength=s) for s in (0.5, 2.0))
    marked_weak, marked_strong = weak.embed(bgr, bits), strong.embed(bgr, bits)
    assert marked_weak.shape == bgr.shape and marked_weak.dtype == np.uint8
    assert 28 < psnr(bgr, marked_strong) < psnr(bgr, marked_weak) < 60  # rms 0.02 vs 0.005 of full scale
    soft = weak.decode_soft(marked_weak, 128)
    assert soft.shape == (128,) and np.all((soft >= 0) & (soft <= 1))
    assert weak.decode_bits(marked_weak, 128).dtype == bool


def test_contract_matches_the_other_schemes(tiny_weights):
    learned = watermark.get("learned", weights=tiny_weights)
    for name in ("dwtDctSvd", "learned"):
        scheme = learned if name == "learned" else watermark.get(name)
        with pytest.raises(ValueError, match="256x256"):
            scheme.embed(np.zeros((100, 100, 3), np.uint8), np.zeros(128, bool))
        with pytest.raises(ValueError, match="uint8"):
            scheme.decode_soft(np.zeros((300, 300, 3), np.float32), 128)
    with pytest.raises(ValueError, match="exactly 128"):
        learned.embed(photo_bgr("coffee"), np.zeros(64, bool))


def test_search_reads_more_views_and_counts_them(tiny_weights):
    plain = watermark.get("learned", weights=tiny_weights, search=False)
    searching = watermark.get("learned", weights=tiny_weights, search=True)
    bgr = photo_bgr("chelsea")
    assert plain.decode_all(bgr).shape == (1, 128)
    assert searching.decode_all(bgr).shape == (searching.trials, 128) and searching.trials > 1


def test_calibrated_decision_plumbing(tiny_weights, tmp_path):
    scheme = watermark.get("learned", weights=tiny_weights, search=True)
    data = calibrate(scheme, n_images=6, n_keys=50, out=tmp_path / "cal.json")
    entry = data["tests"][TEST_NAME]
    assert entry["trials"] == 6 * scheme.trials * 50 and entry["bits"] == 64
    results = decode_learned(photo_bgr("coffee"), scheme, keys=["a", "b"], calibration=Calibration(tmp_path / "cal.json"))
    assert [r.tests for r in results] == [2 * scheme.trials] * 2
    assert all(r.corrected_p == min(1.0, r.p_value * r.tests) for r in results)
    assert all(not r.detected for r in results)  # an untrained net on an unmarked photo


def test_weights_are_safetensors_and_never_unpickled(tiny_weights, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("torch.load / pickle used to load weights")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    encoder, decoder, net = load_networks(tiny_weights)
    assert net == TINY and not encoder.training
    pickled = tmp_path / "evil.safetensors"
    pickled.write_bytes(pickle.dumps({"x": 1}))
    with pytest.raises(WeightsError, match="evil.safetensors: not a safetensors file"):
        load_networks(pickled)
    from safetensors.torch import save_file

    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="not learned-watermark weights"):
        load_networks(other)


@pytest.fixture
def exported(tiny_weights, tmp_path):
    """A copy of the tiny weights with their ONNX exports beside them."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    import shutil

    from provenance.watermark.learned.export import export_decoder

    weights = tmp_path / "w.safetensors"
    shutil.copy(tiny_weights, weights)
    export_decoder(weights)
    return weights


def test_onnx_decoder_matches_torch(exported):
    weights = exported
    bgr = photo_bgr("rocket")
    # the fixed views (registration picks among near-ties of an untrained net: compared below instead)
    torch_logits = watermark.get("learned", weights=weights, backend="torch", registration=None)._logits(bgr)
    onnx_logits = watermark.get("learned", weights=weights, backend="onnx", registration=None)._logits(bgr)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-4)
    # registration's placement scores, on canvases of another size than the export's example
    canvases = np.random.default_rng(0).random((2, 3, TINY.size + 8, TINY.size + 12), dtype=np.float32)
    torch_scorer, torch_stride = watermark.get("learned", weights=weights, backend="torch")._placement_scorer()
    onnx_scorer, onnx_stride = watermark.get("learned", weights=weights, backend="onnx")._placement_scorer()
    assert torch_stride == onnx_stride == 2  # the dense scorer: windows every half cell (of the tiny net's 4 px)
    onnx_scores = onnx_scorer(canvases)
    assert onnx_scores.shape == (2, 6, 8)  # twice the plain trunk's 3 x 4 windows
    np.testing.assert_allclose(onnx_scores, torch_scorer(canvases), atol=1e-5)


@pytest.mark.parametrize("name", sorted(attacks.ATTACKS))
def test_every_attack_is_differentiable(name):
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    layer = attacks.AttackLayer(geometry_p=1.0, names=(name,))
    out = layer(x, 1.0, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    out.mul(torch.linspace(0, 1, out.numel()).view_as(out)).sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_simulated_jpeg_is_close_to_a_real_encoder():
    rgb = photo_bgr("astronaut")[:128, :128, ::-1].copy()
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].float() / 255
    for quality in (50, 90):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
        real = np.asarray(Image.open(buf)).astype(float)
        simulated = attacks.jpeg(x, torch.tensor([float(quality)]))[0].permute(1, 2, 0).numpy() * 255
        real_change, simulated_change = np.abs(real - rgb).mean(), np.abs(simulated - rgb).mean()
        assert 0.8 < simulated_change / real_change < 1.25, quality  # as much damage as the real codec
        assert np.abs(simulated - real).mean() < 0.6 * real_change, quality  # and largely the same damage


def test_training_resumes_where_it_stopped(tmp_path):
    from provenance.watermark.learned.training import TrainConfig, WatermarkTrainer

    def config(steps):
        return TrainConfig(steps=steps, batch_size=2, warmup_steps=1, ramp_steps=2, log_every=1, sample_every=2,
                           checkpoint_every=1, eval_images=2)

    straight = WatermarkTrainer(tmp_path / "a", config(3), TINY)
    straight.run()
    WatermarkTrainer(tmp_path / "b", config(2), TINY).run()
    resumed = WatermarkTrainer(tmp_path / "b", config(3), TINY)
    assert resumed.step == 2
    resumed.run()
    for name, value in straight.decoder.state_dict().items():
        torch.testing.assert_close(resumed.decoder.state_dict()[name], value, msg=name)
    assert (tmp_path / "b" / "samples" / "step_0000002.png").is_file()
    assert (tmp_path / "b" / "weights.safetensors").is_file() and (tmp_path / "b" / "config.json").is_file()


DESIGNS = {
    "positional": dict(),
    "tiled-mean-image": dict(message_tile=4, decoder_head="mean", encoder_image=True),
    "tiled-bilinear": dict(message_tile=4, decoder_head="bilinear"),
}


@pytest.mark.parametrize("design", sorted(DESIGNS))
def test_every_design_builds_saves_and_loads(design, tmp_path):
    net = NetConfig(**{**TINY.to_dict(), **DESIGNS[design]})
    torch.manual_seed(0)
    encoder, decoder = build(net)
    x, bits = torch.rand(2, 3, 32, 32), torch.randint(0, 2, (2, 128))
    residual = encoder.eval()(x, bits, 0.02)
    assert residual.shape == x.shape
    torch.testing.assert_close(residual.pow(2).mean(dim=(1, 2, 3)).sqrt(), torch.full((2,), 0.02))
    assert residual.abs().max() < 2 * net.peak_ratio * 0.02  # clipped before the power was restored
    assert decoder.eval()(x + residual).shape == (2, 128)
    save_weights(tmp_path / "w.safetensors", encoder, decoder, net)
    _, loaded, read = load_networks(tmp_path / "w.safetensors")
    assert read == net
    torch.testing.assert_close(loaded(x), decoder(x))


def test_files_from_before_a_design_field_keep_their_first_design():
    old = {k: v for k, v in NetConfig(message_tile=16).to_dict().items()
           if k not in ("decoder_head", "encoder_image", "peak_ratio")}
    net = NetConfig.from_dict(old)
    assert (net.message_tile, net.decoder_head, net.encoder_image, net.peak_ratio) == (16, "mean", True, 0.0)
    assert NetConfig.from_dict(NetConfig().to_dict()) == NetConfig()
    with pytest.raises(ValueError, match="decoder_head"):
        build(NetConfig(decoder_head="max"))


def _train_briefly(net: NetConfig, steps: int) -> float:
    """Mean training bit accuracy over the last 20 of ``steps`` loud, attack-free steps on photo crops."""
    torch.manual_seed(0)
    encoder, decoder = build(net)
    optimizer = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    photo = torch.from_numpy(photo_bgr("astronaut")[:, :, ::-1].copy()).permute(2, 0, 1).float() / 255
    rng = np.random.default_rng(0)
    accuracy = []
    for _ in range(steps):
        corners = rng.integers(0, photo.shape[-1] - net.size, (8, 2))
        cover = torch.stack([photo[:, y:y + net.size, x:x + net.size] for y, x in corners])
        bits = torch.randint(0, 2, (8, net.bits)).float()
        logits = decoder(attacks.quantise_uint8(cover + encoder(cover, bits, 0.04)))
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, bits)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        accuracy.append(((logits > 0) == (bits > 0.5)).float().mean().item())
    return float(np.mean(accuracy[-20:]))


def test_the_default_design_learns_a_message_in_a_few_steps():
    # a broken encoder/decoder pairing stays near 0.5; at full size this design passes 0.95 by step 200
    assert _train_briefly(NetConfig(size=32, width=16, message_grid=4, decoder_blocks=4, bits=16), 250) > 0.85


@pytest.mark.parametrize("at", [(0.0, 0.0), (0.5, 0.5), (1.0, 0.0)])
def test_a_crop_view_puts_the_crop_back_where_it_was(at):
    import cv2

    from provenance.watermark.learned.scheme import View

    size, keep = 128, 90 / 128  # whole-pixel crop corners at these positions
    full = cv2.resize(photo_bgr("astronaut"), (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    side = round(keep * size)
    x, y = (round((size - side) * f) for f in at)
    crop = cv2.resize(full[y:y + side, x:x + side], (size, size), interpolation=cv2.INTER_CUBIC)
    view = cv2.warpAffine(crop, View(keep=keep, at=at).matrix(size), (size, size), flags=cv2.INTER_LINEAR)
    inside = (slice(y + 4, y + side - 4), slice(x + 4, x + side - 4))
    assert np.abs(view[inside] - full[inside]).mean() < 6  # back in place (resampling blur only)
    assert np.abs(np.roll(view, 4, axis=1)[inside] - full[inside]).mean() > 10  # 4 px off is far worse


def test_the_common_decision_path_uses_the_learned_null_and_views(tiny_weights, tmp_path):
    import shutil

    from provenance.watermark import decision
    from provenance.watermark.learned.calibrate import calibration_path

    weights = tmp_path / "w.safetensors"
    shutil.copy(tiny_weights, weights)
    scheme = watermark.get("learned", weights=weights, search=True)
    calibrate(scheme, n_images=4, n_keys=20)
    assert calibration_path(weights).is_file()
    shipped = Calibration()  # has no learned/uint8 entry: the scheme must not look there
    results = decision.decode_scheme(photo_bgr("coffee"), scheme, ["a", "b"], 6, shipped)
    assert [r.tests for r in results] == [6 * scheme.trials] * 2 and [r.scheme for r in results] == ["learned"] * 2


def test_a_rotation_view_undoes_a_rotation_of_a_wide_image():
    import cv2

    from provenance.watermark.learned.scheme import View

    size = 128
    wide = cv2.resize(photo_bgr("astronaut"), (576, 324), interpolation=cv2.INTER_AREA).astype(np.float32)
    rotated = cv2.warpAffine(wide, cv2.getRotationMatrix2D((288, 162), 10, 1), (576, 324))
    small = lambda x: cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA)  # noqa: E731
    inside = (slice(40, 88), slice(40, 88))
    for aspect, close in ((576 / 324, True), (1.0, False)):  # square-space undo: a shear is left
        view = cv2.warpAffine(small(rotated), View(angle=-10).matrix(size, aspect), (size, size))
        assert (np.abs(view[inside] - small(wide)[inside]).mean() < 8) == close, aspect


def test_a_registered_crop_is_the_crop_in_place_with_black_around_and_differentiable():
    leaf = torch.rand(4, 3, 64, 64, requires_grad=True)
    x = leaf * 0.8 + 0.1  # no black of its own
    generator = torch.Generator().manual_seed(0)
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    out = attacks.registered_crop(x, 0.45, u)
    assert out.shape == x.shape
    kept = (out.detach() > 0).float().mean(dim=(1, 2, 3))
    assert torch.all(kept > 0.4) and torch.all(kept < 1.0)  # 45-100% of the frame, nudged up to 2 px
    assert out.detach()[..., 0, 0].eq(0).any()  # black where the crop was not
    out.sum().backward()
    assert torch.isfinite(leaf.grad).all() and leaf.grad.abs().sum() > 0


def test_a_fine_tune_starts_from_the_given_weights_with_extra_images(tiny_weights, tmp_path):
    from provenance.watermark.learned.training import TrainConfig, WatermarkTrainer
    from provenance.watermark.learned.weights import load_networks

    extra = tmp_path / "extra"
    extra.mkdir()
    Image.fromarray(photo_bgr("coffee")[:, :, ::-1].copy()).save(extra / "generated.png")
    config = TrainConfig(steps=1, batch_size=2, log_every=1, sample_every=1, checkpoint_every=1, eval_images=2,
                         init_weights=str(tiny_weights), start_progress=0.9, registered_crop_p=1.0,
                         extra_train=str(extra))
    trainer = WatermarkTrainer(tmp_path / "run", config, TINY)
    _, decoder, _ = load_networks(tiny_weights)
    for name, value in decoder.state_dict().items():
        torch.testing.assert_close(trainer.decoder.state_dict()[name], value, msg=name)
    assert trainer.progress == 0.9 and len(trainer.sampler.photos) == len(trainer.train_photos) + 1
    trainer.run()
    assert trainer.step == 1 and (tmp_path / "run" / "weights.safetensors").is_file()
    with pytest.raises(ValueError, match="differs"):
        WatermarkTrainer(tmp_path / "other", config, NetConfig(size=32, width=8, message_grid=4, decoder_blocks=4))


def test_a_decoder_only_fine_tune_leaves_the_encoder_and_so_every_mark_as_it_was(tiny_weights, tmp_path):
    from provenance.watermark.learned.training import TrainConfig, WatermarkTrainer
    from provenance.watermark.learned.weights import load_networks

    config = TrainConfig(steps=2, batch_size=2, log_every=1, sample_every=2, checkpoint_every=1, eval_images=2,
                         init_weights=str(tiny_weights), start_progress=0.9, registered_crop_p=0.5, decoder_only=True)
    trainer = WatermarkTrainer(tmp_path / "run", config, TINY)
    trainer.run()
    encoder, decoder, _ = load_networks(tmp_path / "run" / "weights.safetensors")
    before_encoder, before_decoder, _ = load_networks(tiny_weights)
    for name, value in before_encoder.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[name], value, rtol=0, atol=0, msg=name)
    assert any(not torch.equal(decoder.state_dict()[name], value)
               for name, value in before_decoder.state_dict().items() if value.is_floating_point())
    with pytest.raises(ValueError, match="decoder_only"):  # a run resumes only as the kind of run it is
        WatermarkTrainer(tmp_path / "run", replace(config, decoder_only=False), TINY)


def test_int8_export_is_chosen_where_asked_refines_one_scale_more_and_goes_stale_on_reexport(exported, tmp_path):
    from provenance.onnx_int8 import int8_path
    from provenance.watermark.learned.export import export_decoder, export_int8
    from provenance.watermark.learned.scheme import onnx_path, placements_onnx_path

    weights = exported
    photos = []
    for name in ("rocket", "coffee", "chelsea"):
        photos.append(tmp_path / f"{name}.png")
        Image.fromarray(np.ascontiguousarray(photo_bgr(name)[:, :, ::-1])).save(photos[-1])
    report = export_int8(weights, photos, samples=4)
    assert int8_path(onnx_path(weights)).is_file() and int8_path(placements_onnx_path(weights)).is_file()
    assert set(report) == {"samples", "photos", "w.decoder.int8.onnx", "w.placements.int8.onnx"}  # no distilled scorer here
    assert all(report[g]["check_inputs"] >= 1 for g in ("w.decoder.int8.onnx", "w.placements.int8.onnx"))
    quantised = watermark.get("learned", weights=weights, backend="onnx", int8=True)
    plain = watermark.get("learned", weights=weights, backend="onnx", int8=False)
    assert (quantised.graph_precision, plain.graph_precision) == ("onnxruntime-int8", "onnxruntime-fp32")
    assert quantised.new_registration().config.refine_scales == quantised.registration.int8_refine_scales == 3
    assert plain.new_registration().config.refine_scales == plain.registration.refine_scales == 2
    bgr = photo_bgr("rocket")
    a, b = plain._logits(bgr).ravel(), quantised._logits(bgr).ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.9 and not np.array_equal(a, b)
    export_decoder(weights)  # the same weights exported again: the same graphs, still current
    assert watermark.get("learned", weights=weights, backend="onnx", int8=True).graph_precision == "onnxruntime-int8"
    torch.manual_seed(1)
    encoder, decoder = build(TINY)
    save_weights(weights, encoder.eval(), decoder.eval(), TINY, {"target_rms": 0.01})
    export_decoder(weights)  # retrained weights exported: the int8 forms no longer match and are not run
    assert watermark.get("learned", weights=weights, backend="onnx", int8=True).graph_precision == "onnxruntime-fp32"


def test_train_watermark_int8_command_writes_the_forms_and_reports_them(exported, tmp_path):
    import json

    from click.testing import CliRunner

    from provenance.cli import main

    photos = tmp_path / "photos"
    photos.mkdir()
    for name in ("rocket", "coffee"):
        Image.fromarray(np.ascontiguousarray(photo_bgr(name)[:, :, ::-1])).save(photos / f"{name}.png")
    (tmp_path / "exclude.txt").write_text("coffee.png\n")
    args = ["train", "watermark-int8", "--weights", str(exported), "--photos", str(photos), "--samples", "3"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["samples"] == 3 and report["photos"] <= 2 and "w.decoder.int8.onnx" in report
    refused = CliRunner().invoke(main, args + ["--exclude", str(tmp_path / "exclude.txt")])  # one photo left
    assert refused.exit_code != 0 and "needs at least two photos" in refused.output
    assert "Traceback" not in refused.output
    for name in ("broken.jpg", "empty.png"):  # unreadable files are skipped ...
        (photos / name).write_bytes(b"not an image" if name == "broken.jpg" else b"")
    assert CliRunner().invoke(main, args).exit_code == 0
    for name in ("rocket.png", "coffee.png"):  # ... until none is left: one line, no endless retry
        (photos / name).unlink()
    unreadable = CliRunner().invoke(main, args)
    assert unreadable.exit_code != 0 and "none of the 2 photos could be read" in unreadable.output
    assert "Traceback" not in unreadable.output
