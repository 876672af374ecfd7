"""`provenance dataset build|verify` with tiny generators: labels, shared pipeline, splits, crash safety."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from provenance.cli import main
from provenance.datasets import DatasetConfig, build_dataset, verify_dataset
from provenance.datasets.layout import BUILD_DIR, METADATA_FILE, SPLITS, TRUST_ROOT_FILE
from provenance.datasets.perturbations import PERTURBATIONS, apply_all
from provenance.datasets.plan import make_plan
from provenance.generators.photos import default_photos
from provenance.watermark.payload import WatermarkId


def small_config(tiny_gan, tiny_diffusion, **overrides) -> DatasetConfig:
    fields = dict(n_real=8, n_gan=5, n_diffusion=3, size=256, seed=3, gan_model=str(tiny_gan),
                  diffusion_model=str(tiny_diffusion), diffusion_steps=2)
    return DatasetConfig(**{**fields, **overrides})


def rows_of(out: Path) -> list[dict]:
    return [json.loads(line) for split in SPLITS for line in (out / split / METADATA_FILE).read_text().splitlines()]


def test_build_writes_imagefolder_with_every_label_and_verifies_deep(tiny_gan, tiny_diffusion, tmp_path):
    config = small_config(tiny_gan, tiny_diffusion, watermark_fraction=1.0, c2pa_fraction=1.0, stripped_fraction=0.5,
                          perturb_fraction=0.5)
    result = build_dataset(tmp_path, config)
    assert result.planned == 16 and result.made_now == 16 and not result.failed
    rows = rows_of(tmp_path)
    assert Counter((r["label"], r["generator"]) for r in rows) == {("real", "none"): 8, ("synthetic", "gan"): 5,
                                                                  ("synthetic", "diffusion"): 3}
    for row in rows:
        path = tmp_path / row["split"] / row["file_name"]
        assert Image.open(path).format == "JPEG" and (Image.open(path).size == (row["width"], row["height"]))
        if row["label"] == "synthetic":
            assert row["watermark"] and row["watermark_id"].startswith(("generator 1", "generator 2"))
            assert row["c2pa"] in ("signed", "stripped") and row["model_version"]
        else:
            assert row["source_photo"] and row["watermark_id"] == "" and row["c2pa"] == "none"
            assert json.loads(row["source"])["photo"] == row["source_photo"]
    assert (tmp_path / TRUST_ROOT_FILE).is_file()
    card = (tmp_path / "README.md").read_text()
    assert "class / generator" in card and "synthetic/diffusion" in card and "Status: complete" in card
    assert "our keyed mark (`learned`: 8 images)" in card
    checked, problems = verify_dataset(tmp_path, deep=True)
    assert checked == 16 and problems == []


def test_deep_verify_reads_every_mark_and_treats_an_unreadable_id_as_no_wrong_label(tiny_gan, tiny_diffusion, tmp_path,
                                                                                   monkeypatch):
    # (the tiny diffusion fixture's 2-step output is noise, which hides the mark: GAN images only)
    config = small_config(tiny_gan, tiny_diffusion, n_real=2, n_gan=3, n_diffusion=0, format="png",
                          perturb_fraction=0.0, watermark_fraction=1.0, c2pa_fraction=0.0)
    build_dataset(tmp_path, config)
    assert verify_dataset(tmp_path, deep=True) == (5, [])  # every learned mark decoded, with its ID
    from provenance.watermark import decision

    def decoded_as(wm_id):
        def decode(bgr, schemes):
            return [decision.DecodeResult(schemes[0], "default (public)", 60, 64, 1e-12, 1e-12, 1, True, True, wm_id)]
        return decode
    monkeypatch.setattr(decision, "decode_watermark", decoded_as(None))  # detected, ID unreadable: no problem
    assert verify_dataset(tmp_path, deep=True)[1] == []
    monkeypatch.setattr(decision, "decode_watermark", decoded_as(WatermarkId(9, 9)))  # another ID: a problem each
    assert sum("watermark ID generator 9" in p for p in verify_dataset(tmp_path, deep=True)[1]) == 3


def test_processing_is_drawn_the_same_for_both_classes():
    """The plan never looks at the class when it picks perturbation and encoding (no shortcut)."""
    config = DatasetConfig(n_real=3000, n_gan=3000, n_diffusion=0, seed=1)
    plan = make_plan(config, default_photos())
    by_class = {label: [i for i in plan if i.label == label] for label in ("real", "synthetic")}
    for label, items in by_class.items():
        perturbed = Counter(i.perturbations[0]["name"] if i.perturbations else "none" for i in items)
        assert abs(perturbed["none"] / len(items) - 0.5) < 0.04, label
        for name in config.perturbations:
            assert abs(perturbed[name] / len(items) - 0.5 / 6) < 0.025, (label, name)
        assert {i.encode["format"] for i in items} == {"jpeg"}
        assert abs(np.mean([i.encode["quality"] for i in items]) - 82.5) < 0.6, label


def test_real_photo_groups_never_span_two_splits():
    photos = default_photos()
    for seed in range(4):
        plan = make_plan(DatasetConfig(n_real=200, n_gan=0, n_diffusion=0, seed=seed), photos)
        splits_of = {}
        for item in plan:
            splits_of.setdefault(item.source["group"], set()).add(item.split)
        assert all(len(s) == 1 for s in splits_of.values())
        assert {i.split for i in plan} == set(SPLITS)


def test_png_sets_stay_png_for_both_classes_and_sizes_match(tiny_gan, tiny_diffusion, tmp_path):
    config = small_config(tiny_gan, tiny_diffusion, format="png", perturb_fraction=0.0, c2pa_fraction=0.0)
    build_dataset(tmp_path, config)
    rows = rows_of(tmp_path)
    assert {(Image.open(tmp_path / r["split"] / r["file_name"]).format, r["width"], r["height"]) for r in rows} \
        == {("PNG", 256, 256)}


@pytest.mark.parametrize("name", sorted(PERTURBATIONS.available()))
def test_each_perturbation_is_reproducible_from_its_recorded_parameters(name):
    rgb = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    params = PERTURBATIONS.create(name).draw(np.random.default_rng(1))
    once = apply_all(rgb, [{"name": name, "params": params}])
    assert np.array_equal(once, apply_all(rgb, [{"name": name, "params": json.loads(json.dumps(params))}]))
    assert once.dtype == np.uint8 and once.ndim == 3 and once.shape[2] == 3
    assert not np.array_equal(once, rgb), "the perturbation changed nothing"
    if name == "resize":
        assert once.shape[:2] == (round(64 * params["factor"]),) * 2


def _build_args(out: Path, tiny_gan, tiny_diffusion) -> list[str]:
    return ["dataset", "build", "--out", str(out), "--n-real", "30", "--n-gan", "12", "--n-diffusion", "4",
            "--seed", "5", "--gan-model", str(tiny_gan), "--diffusion-model", str(tiny_diffusion),
            "--diffusion-steps", "2", "--json"]


def test_a_killed_build_finishes_on_rerun_with_no_missing_duplicate_or_mislabelled_record(
        tiny_gan, tiny_diffusion, tmp_path):
    args = _build_args(tmp_path / "killed", tiny_gan, tiny_diffusion)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "provenance.cli", *args], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    records = tmp_path / "killed" / BUILD_DIR / "records"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        if records.is_dir() and len(list(records.glob("*.json"))) >= 10:
            break
        time.sleep(0.05)
    assert process.poll() is None, "the build ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = len(list(records.glob("*.json")))
    assert 10 <= done_before < 46

    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["already_done"] >= done_before - 1 and summary["planned"] == 46
    checked, problems = verify_dataset(tmp_path / "killed")
    assert checked == 46 and problems == []
    assert not list((tmp_path / "killed").rglob("*.tmp"))

    straight = tmp_path / "straight"
    assert CliRunner().invoke(main, _build_args(straight, tiny_gan, tiny_diffusion)).exit_code == 0

    def labels(rows):  # signed files differ in their signature time; everything else must match
        return {r["id"]: {k: v for k, v in r.items() if not (k == "sha256" and r["c2pa"] == "signed")} for r in rows}

    assert labels(rows_of(tmp_path / "killed")) == labels(rows_of(straight))


def test_verify_finds_missing_duplicate_and_changed_files(tiny_gan, tiny_diffusion, tmp_path):
    build_dataset(tmp_path, small_config(tiny_gan, tiny_diffusion, c2pa_fraction=0.0))
    rows = rows_of(tmp_path)
    first, second = rows[0], rows[-1]
    (tmp_path / first["split"] / first["file_name"]).unlink()
    Image.new("RGB", (256, 256)).save(tmp_path / second["split"] / second["file_name"], "JPEG")
    metadata = tmp_path / first["split"] / METADATA_FILE
    metadata.write_text(metadata.read_text() + metadata.read_text().splitlines()[-1] + "\n")
    _, problems = verify_dataset(tmp_path)
    text = "\n".join(problems)
    assert "listed but missing" in text and "differ from the recorded sha256" in text and "listed twice" in text


def test_rerun_with_other_settings_is_refused_in_one_line(tiny_gan, tiny_diffusion, tmp_path):
    args = _build_args(tmp_path, tiny_gan, tiny_diffusion)
    args[args.index("--n-real") + 1] = "2"
    args[args.index("--n-gan") + 1] = "0"
    args[args.index("--n-diffusion") + 1] = "0"
    assert CliRunner().invoke(main, args).exit_code == 0
    args[args.index("--seed") + 1] = "6"
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "other settings (seed)" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_loads_with_hugging_face_datasets(tiny_gan, tiny_diffusion, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a local folder: nothing may be fetched
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    datasets = pytest.importorskip("datasets", reason="the [test] extra installs it")
    build_dataset(tmp_path, small_config(tiny_gan, tiny_diffusion, c2pa_fraction=0.0))
    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path))
    assert sum(len(loaded[s]) for s in loaded) == 16
    assert set(loaded["train"].column_names) >= {"image", "label", "generator", "split", "perturbation", "quality"}
    assert sorted(loaded["train"]["label"]) == sorted(r["label"] for r in rows_of(tmp_path) if r["split"] == "train")
