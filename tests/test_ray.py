"""The Ray engine in local mode: one machine's verdicts and dataset, resume after a killed job.

One Ray session (2 CPUs) serves the whole module and is shut down after it. Without Ray these tests
skip with the reason; the install hint for ``--engine ray`` is tested either way.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from provenance.check import CheckConfig, Checker, expand_paths
from provenance.cli import main
from provenance.imageio import encode_image
from provenance.watermark.marking import Mark, embed_mark
from provenance.watermark.payload import WatermarkId
from tests.test_dataset import rows_of, small_config
from tests.test_imageio import make_bad_inputs
from tests.watermark_helpers import photo_bgr

HAVE_RAY = importlib.util.find_spec("ray") is not None
# Declared signals only: the verdicts are the same with the classifiers, which only add start-up time.
CONFIG = CheckConfig(detectors=("c2pa", "watermark", "sd-watermark", "metadata"),
                     detector_options={"c2pa": {"use_trust_store": False}})


@pytest.fixture(scope="module")
def ray_local():
    if not HAVE_RAY:
        pytest.skip("Ray is not installed (pip install 'provenance[ray]')")
    import ray
    from ray.data import DataContext

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False)
    DataContext.get_current().enable_progress_bars = False
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def mixed_folder(tmp_path_factory) -> Path:
    """Synthetic (our watermark), real photos, and broken files."""
    folder = tmp_path_factory.mktemp("mixed")
    for name in ("astronaut", "coffee", "chelsea"):
        rgb = photo_bgr(name, (256, 256))[:, :, ::-1]
        (folder / f"real_{name}.jpg").write_bytes(encode_image(rgb, "JPEG", quality=90))
        marked = embed_mark(rgb, Mark(watermark_id=WatermarkId(generator=0, serial=len(name))))
        (folder / f"synthetic_{name}.png").write_bytes(encode_image(marked, "PNG"))
    for name, data in make_bad_inputs().items():
        (folder / f"broken_{name}").write_bytes(data)
    return folder


def comparable(record: dict) -> dict:
    """A verdict as both engines write it, less what differs run to run (timing, worker)."""
    evidence = record["evidence"] if isinstance(record["evidence"], list) else json.loads(record["evidence"])
    image = record["image"] if isinstance(record["image"], (dict, type(None))) else json.loads(record["image"])
    return {"label": record["label"], "reasons": list(record["reasons"]), "evidence": evidence, "image": image,
            "error": record["error"] or ""}


def local_verdicts(folder: Path) -> dict[str, dict]:
    return {Path(v.source).name: comparable(v.to_dict()) for v in Checker(CONFIG).check(expand_paths([folder]))}


def out_records(out: Path) -> list[dict]:
    import pyarrow.json
    import pyarrow.parquet

    tables = [pyarrow.parquet.read_table(f) for f in sorted(out.glob("*.parquet"))]
    tables += [pyarrow.json.read_json(f) for f in sorted(out.glob("*.json"))]
    return [row for table in tables for row in table.to_pylist()]


def test_check_on_ray_gives_the_local_verdicts_with_models_loaded_once_per_actor(ray_local, mixed_folder, tmp_path):
    from provenance.engines.ray_engine import RayOptions, check_on_ray

    result = check_on_ray(mixed_folder, tmp_path / "out", CONFIG, RayOptions(num_workers=2, batch_size=2))
    records = out_records(tmp_path / "out")
    expected = local_verdicts(mixed_folder)
    assert len(records) == len(expected) == 10 and result.checked_now == 10 and result.already_done == 0
    assert {Path(r["path"]).name: comparable(r) for r in records} == expected
    assert {expected[n]["label"] for n in expected if n.startswith("synthetic")} == {"synthetic"}
    assert {expected[n]["label"] for n in expected if n.startswith("broken")} == {"error"}
    assert {expected[n]["label"] for n in expected if n.startswith("real")} == {"no_evidence_of_synthesis"}
    assert result.counts == {"synthetic": 3, "no_evidence_of_synthesis": 3, "error": 4}
    # 5 batches of 2 went to at most 2 actors: each actor kept its Checker (and models) for every batch it ran
    assert 1 <= len({r["worker"] for r in records}) <= 2

    again = check_on_ray(mixed_folder, tmp_path / "out", CONFIG, RayOptions(num_workers=2))
    assert again.checked_now == 0 and again.already_done == 10 and len(out_records(tmp_path / "out")) == 10


def test_a_killed_job_resumes_from_a_table_input_to_jsonl(ray_local, mixed_folder, tmp_path):
    """A table of bytes in, JSON lines out; the OUT a killed job leaves (finished files, one cut short)
    is finished by running the same command again, each image once."""
    import pyarrow as pa
    import pyarrow.parquet

    from provenance.engines.ray_engine import RayOptions, check_on_ray

    files = list(expand_paths([mixed_folder]))
    table = tmp_path / "images.parquet"
    pyarrow.parquet.write_table(pa.table({"path": [f.name for f in files],
                                          "bytes": [f.read_bytes() for f in files]}), table)
    first = tmp_path / "first.parquet"  # the part of the job that finished before the kill
    pyarrow.parquet.write_table(pa.table({"path": [f.name for f in files[:4]],
                                          "bytes": [f.read_bytes() for f in files[:4]]}), first)
    out = tmp_path / "out"
    check_on_ray(first, out, CONFIG, RayOptions(num_workers=1, batch_size=2), out_format="jsonl")
    finished = sorted(out.glob("*.json"))
    assert finished
    cut = finished[0].read_bytes()
    (out / "killed_000000-0.json").write_bytes(cut[: len(cut) // 2])  # a write the kill interrupted

    result = CliRunner().invoke(main, ["check", "--engine", "ray", "--num-workers", "1", "--out-format", "jsonl",
                                       "--detector", "c2pa", "--detector", "watermark", "--detector", "sd-watermark",
                                       "--detector", "metadata", "--no-trust-store", "--json",
                                       str(table), "--out", str(out)])
    assert result.exit_code == 1 | 4, result.output  # synthetic found, some files failed
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["already_done"] == 4 and summary["checked_now"] == 6
    assert "killed_000000-0.json: set aside, unreadable" in result.stderr
    records = out_records(out)
    assert sorted(Path(r["path"]).name for r in records) == sorted(f.name for f in files)
    assert {Path(r["path"]).name: comparable(r) for r in records} == local_verdicts(mixed_folder)


def test_a_file_of_paths_and_uris_with_missing_entries(ray_local, mixed_folder, tmp_path):
    from provenance.engines.ray_engine import RayOptions, check_on_ray

    real = mixed_folder / "real_coffee.jpg"
    listing = tmp_path / "inputs.txt"
    uri = (mixed_folder / "synthetic_coffee.png").as_uri()
    listing.write_text(f"# one path, one URI, one missing file\n{real}\n{uri}\n{mixed_folder / 'gone.jpg'}\n")
    result = check_on_ray(listing, tmp_path / "out", CONFIG, RayOptions(num_workers=1, batch_size=4))
    labels = {Path(r["path"]).name: (r["label"], r["error"]) for r in out_records(tmp_path / "out")}
    assert labels["real_coffee.jpg"] == ("no_evidence_of_synthesis", "")
    assert labels["synthetic_coffee.png"] == ("synthetic", "")
    assert labels["gone.jpg"][0] == "error" and "not found" in labels["gone.jpg"][1]
    assert result.counts == {"no_evidence_of_synthesis": 1, "synthetic": 1, "error": 1}


def test_dataset_build_on_ray_is_the_local_build_and_resumes(ray_local, tiny_gan, tiny_diffusion, tmp_path):
    from provenance.datasets import build_dataset
    from provenance.datasets.layout import record_path
    from provenance.engines.ray_engine import RayOptions, dataset_item_runner

    config = small_config(tiny_gan, tiny_diffusion, n_real=3, n_gan=3, n_diffusion=1, c2pa_fraction=0.5)
    build_dataset(tmp_path / "local", config)
    on_ray = dataset_item_runner(RayOptions(num_workers=2))
    result = build_dataset(tmp_path / "ray", config, map_items=on_ray)
    assert result.made_now == 7 and not result.failed

    local, distributed = rows_of(tmp_path / "local"), rows_of(tmp_path / "ray")

    def unsigned_bytes(out: Path, rows: list[dict]) -> dict[str, bytes]:  # a signature carries its signing time
        return {r["id"]: (out / r["split"] / r["file_name"]).read_bytes() for r in rows if r["c2pa"] != "signed"}

    def labels(rows):
        return [{k: v for k, v in r.items() if not (k == "sha256" and r["c2pa"] == "signed")} for r in rows]

    assert labels(distributed) == labels(local)
    assert unsigned_bytes(tmp_path / "ray", distributed) == unsigned_bytes(tmp_path / "local", local)
    compared = unsigned_bytes(tmp_path / "ray", distributed)
    assert len(compared) >= 4 and len({i.split("_")[0] for i in compared}) >= 2, sorted(compared)  # real + synthetic

    # a kill leaves images without records (or none at all): the same build makes exactly those again
    for row in distributed[:2]:
        record_path(tmp_path / "ray", row["id"]).unlink()
    again = build_dataset(tmp_path / "ray", config, map_items=on_ray)
    assert again.made_now == 2 and again.already_done == 5 and not again.failed
    assert labels(rows_of(tmp_path / "ray")) == labels(local)


def test_without_ray_the_flag_says_how_to_install_it(monkeypatch, tmp_path):
    for name in ("ray", "ray.data"):
        monkeypatch.setitem(sys.modules, name, None)  # as if not installed
    for args in (["check", "--engine", "ray", str(tmp_path), "--out", str(tmp_path / "out")],
                 ["dataset", "build", "--engine", "ray", "--out", str(tmp_path / "set")]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2
        assert result.output.strip() == ("provenance: --engine ray: the Ray engine needs Ray Data; "
                                         "install it with: pip install 'provenance[ray]'"), result.output


def test_ray_only_options_are_refused_with_the_local_engine(tmp_path):
    result = CliRunner().invoke(main, ["check", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "--out only applies with --engine ray" in result.output


def test_an_image_that_makes_a_detector_raise_gets_an_error_and_the_batch_goes_on(mixed_folder, monkeypatch):
    """Inside a Ray worker (called directly here: no Ray needed), one failing image must not fail the job."""
    from provenance.engines.ray_engine import CheckWorker

    worker = CheckWorker(CheckConfig(detectors=("metadata",)))
    detector = worker.checker.detectors[0]
    detect_batch = detector.detect_batch

    def fails_on_coffee(images):
        if any("coffee" in image.source for image in images):
            raise RuntimeError("boom")
        return detect_batch(images)

    monkeypatch.setattr(detector, "detect_batch", fails_on_coffee)
    paths = [str(mixed_folder / name) for name in ("real_coffee.jpg", "real_astronaut.jpg", "broken_empty.jpg")]
    verdicts = worker.check_rows(paths, [None] * len(paths))
    assert [v.label.value for v in verdicts] == ["error", "no_evidence_of_synthesis", "error"]
    assert "RuntimeError: boom" in verdicts[0].error and "empty" in verdicts[2].error
