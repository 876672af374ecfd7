"""Our generators: tiny configs trained for a few steps on the shipped photos (whole file well under a minute)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from provenance import generators
from provenance.generators import load_generator
from provenance.generators.photos import PatchSampler, default_photos, group_of, split_photos
from provenance.generators.quality import quality_report, swd
from provenance.generators.training import Trainer, train
from provenance.registry import UnknownNameError
from tests.conftest import TINY, tiny_train_config

def test_registry_lists_both_families_and_rejects_unknown_names():
    assert generators.available() == ["diffusion", "gan"]
    with pytest.raises(UnknownNameError, match="available: diffusion, gan"):
        generators.create("vae")


def test_load_generator_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory nor a shipped generator"):
        load_generator("no-such-generator")
    with pytest.raises(FileNotFoundError, match="missing config.json"):
        load_generator(tmp_path)


def test_default_photos_load_offline_and_split_keeps_pairs_together():
    photos = default_photos()
    assert len(photos) == 11 and all(p.rgb.ndim == 3 and p.rgb.dtype == np.uint8 for p in photos)
    assert {p.group for p in photos if p.name.startswith("motorcycle")} == {"motorcycle"}
    for seed in range(5):
        train, held_out = split_photos(photos, holdout_fraction=0.3, seed=seed)
        assert {p.group for p in train}.isdisjoint({p.group for p in held_out}) and held_out
        assert len(train) + len(held_out) == len(photos)


@pytest.mark.parametrize("name,group", [("aloeL.jpg", "aloe"), ("aloeR.png", "aloe"), ("graf3.png", "graf"),
                                        ("motorcycle_left.png", "motorcycle"), ("IMG_1234.jpg", "img_1234")])
def test_group_of_merges_stereo_and_edited_pairs_only(name, group):
    assert group_of(name) == group


def test_patch_sampler_is_seeded_and_rejects_flat_crops():
    flat = np.zeros((64, 64, 3), np.uint8)
    textured = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    from provenance.generators.photos import Photo

    sampler = PatchSampler([Photo("flat", "flat", flat), Photo("tex", "tex", textured)], patch=16, scales=(1.0,))
    batch = sampler.batch(8, np.random.default_rng(1))
    assert batch.shape == (8, 16, 16, 3) and batch.dtype == np.uint8
    assert all(crop.std() > 10 for crop in batch)
    assert np.array_equal(batch, sampler.batch(8, np.random.default_rng(1)))


@pytest.mark.parametrize("family", ["gan", "diffusion"])
def test_tiny_model_trains_samples_at_256_and_is_deterministic_by_seed(family, tmp_path):
    model = train(family, tmp_path, tiny_train_config(), TINY[family])
    images = model.sample(2, size=256, seed=3)
    assert images.shape == (2, 256, 256, 3) and images.dtype == np.uint8
    assert np.array_equal(images, model.sample(2, size=256, seed=3))
    assert not np.array_equal(images, model.sample(2, size=256, seed=4))
    assert model.sample(1, size=(64, 96), seed=0).shape == (1, 64, 96, 3)
    with pytest.raises(ValueError, match="multiples"):
        model.sample(1, size=255)

    log = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4] and all(r["images_per_s"] > 0 for r in log)
    assert (tmp_path / "samples" / "step_0000004.png").is_file()
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["family"] == family and config["step"] == 4
    assert set(config["photos"]["held_out"]) == {"coffee", "china"}

    loaded = load_generator(tmp_path)
    assert np.array_equal(loaded.sample(2, size=64, seed=5), model.sample(2, size=64, seed=5))


@pytest.mark.parametrize("family", ["gan", "diffusion"])
def test_resume_continues_the_step_count_and_matches_an_uninterrupted_run(family, tmp_path):
    straight = train(family, tmp_path / "straight", tiny_train_config(steps=6), TINY[family])

    train(family, tmp_path / "resumed", tiny_train_config(steps=3), TINY[family])
    trainer = Trainer(family, tmp_path / "resumed", tiny_train_config(steps=6), TINY[family])
    assert trainer.step == 3
    resumed = trainer.run()
    log = [json.loads(line)["step"] for line in (tmp_path / "resumed" / "log.jsonl").read_text().splitlines()]
    assert log == [2, 3, 4, 6]

    for (name, a), (_, b) in zip(straight.export_state_dict().items(), resumed.export_state_dict().items()):
        assert torch.equal(a, b), name


def test_resume_refuses_changed_settings(tmp_path):
    train("gan", tmp_path, tiny_train_config(steps=2), TINY["gan"])
    with pytest.raises(ValueError, match="seed"):
        Trainer("gan", tmp_path, tiny_train_config(steps=4, seed=1), TINY["gan"])
    with pytest.raises(ValueError, match="gan run, not diffusion"):
        Trainer("diffusion", tmp_path, tiny_train_config(steps=4), TINY["diffusion"])


def test_swd_ranks_real_below_blur_below_noise():
    rows = dict(quality_report(n=24, size=64, seed=0))
    floor = rows["held-out reals, other crops (floor)"].mean
    blurred = rows["held-out reals, blurred sigma=2"].mean
    assert floor == min(r.mean for r in rows.values())
    assert floor < blurred < rows["Gaussian noise, real mean/std"].mean
    assert blurred < rows["uniform noise"].mean
    assert len(rows["uniform noise"].per_level) == 3  # 64, 32 and the 16px low-pass


def test_swd_is_seeded_and_sizes_must_match():
    images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    other = np.random.default_rng(1).integers(0, 128, (4, 32, 32, 3), dtype=np.uint8)
    assert swd(images, other, seed=2, per_image=32).per_level == swd(images, other, seed=2, per_image=32).per_level
    with pytest.raises(ValueError, match="sizes differ"):
        swd(images, images[:, :16, :16])


def test_cli_trains_resumes_and_reports_quality(tmp_path):
    from provenance.commands.train_cmds import generator_group as train_group

    runner = CliRunner()
    args = ["gan", "--out", str(tmp_path / "run"), "--steps", "2", "--patch", "16", "--batch-size", "4",
            "--width", "4", "--threads", "1", "--sample-every", "2", "--checkpoint-every", "1"]
    result = runner.invoke(train_group, args)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run" / "weights.safetensors").stat().st_size < 5_000_000
    result = runner.invoke(train_group, args[:3] + ["--steps", "3"] + args[5:])
    assert result.exit_code == 0, result.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["step"] == 3
    result = runner.invoke(train_group, args[:3] + ["--steps", "4", "--seed", "1"] + args[5:])
    assert result.exit_code == 1 and "different seed" in result.output

    result = runner.invoke(train_group, ["quality", "--model", str(tmp_path / "run"), "-n", "8", "--size", "32",
                                         "--sample-size", "64", "--threads", "1"])
    assert result.exit_code == 0, result.output
    assert str(tmp_path / "run") in result.output and "uniform noise" in result.output
    result = runner.invoke(train_group, ["quality", "--model", str(tmp_path / "run"), "--sample-steps", "3"])
    assert result.exit_code == 2 and "--sample-steps" in result.output  # a GAN samples in one step


def test_curated_package_photos_have_unique_names_and_pairs_share_a_group():
    from provenance.generators.photo_packages import PACKAGE_PHOTOS

    names = [dst for files in PACKAGE_PHOTOS.values() for _, dst in files]
    assert len(names) == len(set(names)) == 66
    groups = {name: group_of(name) for name in names}
    for pair in (("opencv_aloeL.jpg", "opencv_aloeR.jpg"), ("opencv_booksL.jpg", "opencv_booksR.jpg"),
                 ("opencv_notebookA.jpg", "opencv_notebookB.jpg"), ("opencv_grafA.png", "opencv_grafB.png")):
        assert groups[pair[0]] == groups[pair[1]]
    assert groups["mate_garden.jpg"] != groups["mate_dune.jpg"]


def test_photo_folders_are_capped_in_size(tmp_path):
    from PIL import Image

    from provenance.generators.photos import load_photos

    Image.new("RGB", (3000, 1500), (10, 200, 30)).save(tmp_path / "big.png")
    Image.new("RGB", (300, 200), (200, 20, 30)).save(tmp_path / "small.png")
    shapes = {p.name: p.rgb.shape for p in load_photos(tmp_path)}
    assert shapes == {"big.png": (512, 1024, 3), "small.png": (200, 300, 3)}
