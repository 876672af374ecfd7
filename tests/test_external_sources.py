"""Outside images (public generators, photo benchmarks): the pinned corpus, the class-blind pipeline
that removes each known shortcut, and ``eval`` on public 0_real/1_fake trees. Fixtures are made here."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from provenance.cli import main
from provenance.datasets import DatasetConfig, build_dataset
from provenance.datasets.layout import image_path
from provenance.datasets.corpus import INDEX_PATH, RULES, Rule, read_index, rebuild, scan
from provenance.datasets.external import file_traits, measure_shortcuts, resampling_score, shortcut_gaps
from provenance.datasets.public_layouts import load_any, real_fake_rows

CROP = 96


def _texture(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour field plus fine noise: photo-like enough for JPEG and the resampling score."""
    coarse = rng.integers(0, 255, (height // 16 + 2, width // 16 + 2, 3)).astype(np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC), np.float32)
    return np.clip(smooth + rng.normal(0, 12, (height, width, 3)), 0, 255).astype(np.uint8)


def _camera_jpeg(rgb: np.ndarray) -> bytes:
    """A 'camera' file: JPEG with EXIF and its own quantisation tables."""
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    exif[0x0110] = "Model 1"
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=97, subsampling=0, exif=exif.tobytes())
    return buffer.getvalue()


@pytest.fixture(scope="module")
def biased_sources(tmp_path_factory):
    """Fakes: lossless PNG, 160x160, no EXIF, in two origin folders. Reals: camera JPEG, 200x150,
    EXIF. Every shortcut the issue lists separates these folders perfectly before the pipeline."""
    root = tmp_path_factory.mktemp("sources")
    rng = np.random.default_rng(0)
    for origin in ("repo_a", "repo_b"):
        (root / "fake" / origin).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(_texture(rng, 160, 160)).save(root / "fake" / origin / f"{i}.png")
    (root / "real").mkdir()
    for i in range(24):
        (root / "real" / f"photo{i}.jpg").write_bytes(_camera_jpeg(_texture(rng, 150, 200)))
    return root


@pytest.fixture(scope="module")
def unbiased_set(biased_sources, tmp_path_factory):
    out = tmp_path_factory.mktemp("set")
    config = DatasetConfig(n_real=0, n_gan=0, n_diffusion=0, size=CROP, perturb_fraction=0.0, jpeg_quality=(85, 85),
                           watermark_fraction=0, c2pa_fraction=0,
                           external=(f"synthetic:toygen={biased_sources / 'fake'}",
                                     f"real:cam={biased_sources / 'real'}"))
    result = build_dataset(out, config)
    assert not result.failed
    rows = [json.loads(line) for split in ("train", "validation", "test")
            for line in (out / split / "metadata.jsonl").read_text().splitlines()]
    return out, rows


def _source_traits(biased_sources):
    rows = [{"label": "synthetic", "path": p} for p in sorted((biased_sources / "fake").rglob("*.png"))]
    rows += [{"label": "real", "path": p} for p in sorted((biased_sources / "real").glob("*.jpg"))]
    return measure_shortcuts(rows, lambda row: row["path"])


def _output_traits(unbiased_set):
    out, rows = unbiased_set
    return measure_shortcuts(rows, lambda row: image_path(out, row))


@pytest.mark.parametrize("trait", ["format", "qtables", "size", "aspect", "exif"])
def test_each_shortcut_separates_the_sources_and_is_gone_after_the_pipeline(biased_sources, unbiased_set, trait):
    assert shortcut_gaps(_source_traits(biased_sources))[trait] == 1.0 or trait == "qtables"
    after = _output_traits(unbiased_set)
    assert shortcut_gaps(after)[trait] == 0.0, after


def test_camera_quantisation_tables_do_not_survive(biased_sources, unbiased_set):
    before = _source_traits(biased_sources)
    after = _output_traits(unbiased_set)
    assert set(before["real"]["qtables"]) != set(before["synthetic"]["qtables"])
    assert set(after["real"]["qtables"]) == set(after["synthetic"]["qtables"])
    assert set(after["real"]["qtables"]).isdisjoint(before["real"]["qtables"])


def test_no_class_gets_a_resampling_trace(biased_sources, unbiased_set):
    out, rows = unbiased_set
    scores = {label: np.median([file_traits(image_path(out, r))["resampling"] for r in rows if r["label"] == label])
              for label in ("real", "synthetic")}
    upscaled = np.asarray(Image.fromarray(_texture(np.random.default_rng(1), 60, 60)).resize(
        (CROP, CROP), Image.Resampling.BILINEAR))
    # The score can see resampling (a 1.6x upscale stands out) ...
    assert resampling_score(upscaled) > 2 * max(scores.values())
    # ... and neither class was resampled by the pipeline: the medians are alike.
    assert max(scores.values()) / min(scores.values()) < 1.5, scores
    assert all("scale" not in json.loads(r["source"]) for r in rows)


def test_the_card_distance_sees_a_class_that_was_upscaled(unbiased_set, tmp_path):
    """The binned resampling score enters the class distance: near 0 for the pipeline's output, large
    when one class's files carry an upscale (the trace the card must reveal)."""
    out, rows = unbiased_set
    assert shortcut_gaps(_output_traits(unbiased_set))["resampling"] <= 0.5
    upscaled_rows = []
    for i, row in enumerate(rows):
        path = image_path(out, row)
        if row["label"] == "synthetic":
            with Image.open(path) as image:
                small = image.convert("RGB").resize((CROP * 5 // 8, CROP * 5 // 8), Image.Resampling.LANCZOS)
            path = tmp_path / f"{i}.png"
            small.resize((CROP, CROP), Image.Resampling.BILINEAR).save(path)
        upscaled_rows.append({"label": row["label"], "path": path})
    biased = measure_shortcuts(upscaled_rows, lambda row: row["path"])
    assert shortcut_gaps(biased)["resampling"] >= 0.8, biased


def test_lossless_originals_get_a_lossy_history_and_crops_move(unbiased_set):
    _, rows = unbiased_set
    sources = [json.loads(r["source"]) for r in rows]
    assert all((s["processing"]["history_quality"] is None) == (s["origin_format"] == "jpeg") for s in sources)
    assert len({tuple(s["processing"]["crop_xy"]) for s in sources}) > len(sources) // 2


def test_splits_keep_each_origin_folder_and_each_photo_in_one_split(unbiased_set):
    _, rows = unbiased_set
    by_group: dict[str, set] = {}
    for row in rows:
        by_group.setdefault(row["source_group"], set()).add(row["split"])
    assert all(len(splits) == 1 for splits in by_group.values())
    assert {g for g in by_group if g.startswith("toygen:")} == {"toygen:repo_a", "toygen:repo_b"}
    assert sum(r["label"] == "real" for r in rows) == 24 and sum(r["generator"] == "toygen" for r in rows) == 24


def test_card_prints_the_per_class_shortcut_table(unbiased_set):
    out, _ = unbiased_set
    card = (out / "README.md").read_text()
    assert "## Shortcuts, measured on the written files" in card
    assert "format 0.000, qtables 0.000, size 0.000, aspect 0.000, exif 0.000" in card
    assert "synthetic `toygen` (24 images)" in card


def test_images_that_fit_the_crop_exactly_are_skipped_not_resized(tmp_path):
    (tmp_path / "gen").mkdir()
    Image.fromarray(np.zeros((CROP, CROP, 3), np.uint8) + 90).save(tmp_path / "gen" / "exact.png")
    Image.fromarray(np.zeros((50, 300, 3), np.uint8) + 90).save(tmp_path / "gen" / "thin.png")
    from provenance.datasets.external import scan_source

    images, skipped = scan_source("gen", "synthetic", tmp_path / "gen", CROP)
    assert images == [] and skipped == {"smaller than the crop": 2}


def test_build_cli_takes_sources_and_refuses_bad_ones_in_one_line(biased_sources, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(main, ["dataset", "build", "--out", str(tmp_path / "x"), "--synthetic", "nofolder"])
    assert bad.exit_code == 2 and "NAME=DIR" in bad.output and "Traceback" not in bad.output
    two = runner.invoke(main, ["dataset", "build", "--out", str(tmp_path / "x"), "--real", "a", "--real", "b"])
    assert two.exit_code == 2 and "one photo folder" in two.output
    clash = runner.invoke(main, ["dataset", "build", "--out", str(tmp_path / "x"),
                                 "--synthetic", f"gan={biased_sources / 'fake'}"])
    assert clash.exit_code == 2 and "gan" in clash.output


# -- the corpus ----------------------------------------------------------------------------------

def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture()
def snapshot(tmp_path):
    """A bare snapshot laid out like the fetch tool's: MIRROR/owner+name/repo."""
    work = tmp_path / "work"
    work.mkdir()
    rng = np.random.default_rng(3)
    (work / "out").mkdir()
    for i in range(3):
        Image.fromarray(_texture(rng, 64, 64)).save(work / "out" / f"seed{i}.png")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(work / "out" / "grey.png")
    (work / "out" / "copy.png").write_bytes((work / "out" / "seed0.png").read_bytes())
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=work)
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "someone+gen" / "repo")], check=True)
    return mirror


def test_scan_and_rebuild_check_every_hash_and_report_what_is_missing(snapshot, tmp_path):
    rule = Rule("someone/gen", r"^out/.+\.png$", "synthetic", "toy", "toy-family", "MIT", "yes")
    result = scan(snapshot, [rule])
    assert len(result.rows) == 3 and result.dropped == {"exact copy": 1, "greyscale or blank": 1}
    report = rebuild(snapshot, tmp_path / "corpus", result.rows)
    assert report.written == 3 and not report.missing
    for row in result.rows:
        assert hashlib.sha256(row.out_path(tmp_path / "corpus").read_bytes()).hexdigest() == row.sha256
    tampered = [result.rows[0].__class__(**{**result.rows[0].__dict__, "sha256": "0" * 64, "path": "out/seed1.png"})]
    ghost = [result.rows[0].__class__(**{**result.rows[0].__dict__, "repo": "nobody/absent"})]
    bad = rebuild(snapshot, tmp_path / "other", tampered + ghost)
    assert [m["problem"] for m in bad.missing] == ["SHA-256 differs from the index", "no snapshot (fetch the repository)"]
    again = rebuild(snapshot, tmp_path / "corpus", result.rows)
    assert again.already_present == 3 and again.written == 0


def test_rebuild_cli_exits_1_and_names_each_missing_file(snapshot, tmp_path):
    index = tmp_path / "index.csv"
    with open(INDEX_PATH) as handle:
        header = handle.readline()
    index.write_text(header + "someone/gen,abc,out/none.png," + "0" * 64
                     + ",synthetic,toy,toy,g,MIT,yes,64,64,png\n")
    result = CliRunner().invoke(main, ["dataset", "corpus", "rebuild", "--mirror-dir", str(snapshot),
                                       "--out", str(tmp_path / "c"), "--index", str(index)])
    assert result.exit_code == 1 and "someone/gen:out/none.png: not in snapshot" in result.output


def test_shipped_index_is_pinned_deduplicated_and_licensed():
    rows = read_index()
    assert len(rows) > 1000
    assert len({r.sha256 for r in rows}) == len(rows)
    assert all(len(r.commit) == 40 and len(r.sha256) == 64 for r in rows)
    assert {r.label for r in rows} == {"real", "synthetic"}
    assert {r.repo for r in rows} <= {rule.repo for rule in RULES}
    assert all(r.licence and r.commercial in ("yes", "no", "unknown") for r in rows)
    assert all(r.width > 0 and r.height > 0 for r in rows) and sum(min(r.width, r.height) >= 224 for r in rows) > 0.95 * len(rows)
    with open(INDEX_PATH) as handle:
        assert next(csv.reader(handle))[:4] == ["repo", "commit", "path", "sha256"]


# -- eval on public layouts ----------------------------------------------------------------------

def test_real_fake_tree_rows_name_generators_and_skip_bad_files(tmp_path):
    rng = np.random.default_rng(5)
    for generator, nested in (("progan", "car/"), ("sdv14", "")):
        for folder in ("0_real", "1_fake"):
            (tmp_path / generator / nested / folder).mkdir(parents=True)
            for i in range(2):
                Image.fromarray(_texture(rng, 64, 64)).save(tmp_path / generator / nested / folder / f"{i}.png")
    (tmp_path / "sdv14" / "0_real" / "broken.png").write_bytes(b"not an image")
    rows = real_fake_rows(tmp_path)
    assert {r["generator"] for r in rows if r["label"] == "synthetic"} == {"progan", "sdv14"}
    skipped = []
    images, labels, kept = load_any(tmp_path, "test", on_skip=lambda path, problem: skipped.append(path))
    assert len(images) == 8 and labels.sum() == 4 and skipped == [str(tmp_path / "sdv14" / "0_real" / "broken.png")]


def test_verify_accepts_the_set_and_catches_an_outside_group_split_in_two(unbiased_set, tmp_path):
    import shutil

    from provenance.datasets import verify_dataset

    out, _ = unbiased_set
    checked, problems = verify_dataset(out)
    assert checked == 48 and problems == []
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    rows = {s: [json.loads(l) for l in (copy / s / "metadata.jsonl").read_text().splitlines()]
            for s in ("train", "validation", "test")}
    donor = next(s for s in rows if any(r["generator"] == "toygen" for r in rows[s]))
    other = next(s for s in rows if s != donor)
    moved = next(r for r in rows[donor] if r["generator"] == "toygen")
    fake = {**moved, "id": "ext_toygen_999999", "file_name": "ext_toygen_999999.jpg", "split": other}
    shutil.copy(copy / donor / moved["file_name"], copy / other / fake["file_name"])
    with open(copy / other / "metadata.jsonl", "a") as handle:
        handle.write(json.dumps(fake) + "\n")
    _, problems = verify_dataset(copy)
    assert any(f"group {moved['source_group']!r} appears in splits" in p for p in problems)


def test_corpus_summary_lists_families_with_licences():
    result = CliRunner().invoke(main, ["dataset", "corpus", "summary", "--json"])
    assert result.exit_code == 0
    table = json.loads(result.output)
    assert {"gan", "midjourney", "dalle-2", "stable-diffusion-1"} <= {e["family"] for e in table}
    assert all(e["licences"] and e["images"] > 0 for e in table)


def test_rebuild_refuses_a_file_that_is_not_an_index_in_one_line(snapshot, tmp_path):
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n")
    result = CliRunner().invoke(main, ["dataset", "corpus", "rebuild", "--mirror-dir", str(snapshot),
                                       "--out", str(tmp_path / "c"), "--index", str(tmp_path / "bad.csv")])
    assert result.exit_code == 1 and "not a corpus index: columns are" in result.output
    assert "Traceback" not in result.output


def test_scan_with_history_pins_removed_files_at_the_commit_that_added_them(snapshot, tmp_path):
    """A render a later commit deleted (generator-testing's cleanup) is indexed at the commit that
    added it, named by the rule's own prefix map, and rebuilt from there; without history it is absent."""
    work = tmp_path / "work"
    rng = np.random.default_rng(11)
    (work / "img").mkdir()
    Image.fromarray(_texture(rng, 64, 64)).save(work / "img" / "7-1-99.png")
    Image.fromarray(_texture(rng, 64, 64)).save(work / "img" / "7-5-99.png")  # not in the map
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "render", cwd=work)
    added = subprocess.run(["git", "rev-parse", "HEAD"], cwd=work, check=True, capture_output=True,
                           text=True).stdout.strip()
    _git("rm", "-rq", "img", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "cleanup", cwd=work)
    mirror = tmp_path / "mirror2"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "someone+gen" / "repo")], check=True)
    rule = dict(repo="someone/gen", pattern=r"^img/(?P<prefix>\d+-\d)-\d+\.png$", label="synthetic", source="",
                family="", licence="MIT", commercial="yes", prefixes={"7-1": ("toy-xl", "toy-family")})
    assert scan(mirror, [Rule(**rule)]).rows == []
    result = scan(mirror, [Rule(**rule, history=True)])
    assert [(r.path, r.commit, r.generator, r.family) for r in result.rows] == [
        ("img/7-1-99.png", added, "toy-xl", "toy-family")]
    assert result.dropped.get("not a listed generator") == 1
    report = rebuild(mirror, tmp_path / "corpus", result.rows)
    assert report.written == 1 and not report.missing


def test_scan_drops_palette_reduced_files_and_applies_the_rules_lists(tmp_path, monkeypatch):
    """A colour-quantised copy (pngquant) carries a processing trace no class may own: dropped. A
    rule's curated lists keep only the listed paths, or leave the listed ones out."""
    import provenance.datasets.corpus as corpus

    work = tmp_path / "work"
    rng = np.random.default_rng(12)
    (work / "out").mkdir(parents=True)
    for i in range(4):
        Image.fromarray(_texture(rng, 64, 64)).save(work / "out" / f"seed{i}.png")
    Image.fromarray(_texture(rng, 64, 64)).quantize(256).save(work / "out" / "quantised.png")
    _git("init", "-q", cwd=work)
    _git("add", ".", cwd=work)
    _git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x", cwd=work)
    mirror = tmp_path / "mirror"
    subprocess.run(["git", "clone", "-q", "--bare", str(work), str(mirror / "someone+gen" / "repo")], check=True)
    lists = tmp_path / "lists"
    lists.mkdir()
    (lists / "keep.txt").write_text("out/seed0.png\nout/seed1.png\nout/quantised.png\n")
    (lists / "drop.txt").write_text("out/seed1.png\n")
    monkeypatch.setattr(corpus, "LISTS_DIR", lists)
    rule = dict(repo="someone/gen", pattern=r"^out/.+\.png$", label="synthetic", source="toy", family="toy-family",
                licence="MIT", commercial="yes")
    plain = scan(mirror, [Rule(**rule)])
    assert sorted(r.path for r in plain.rows) == [f"out/seed{i}.png" for i in range(4)]
    assert plain.dropped == {"palette-reduced": 1}
    listed = scan(mirror, [Rule(**rule, keep_list="keep.txt", drop_list="drop.txt")])
    assert [r.path for r in listed.rows] == ["out/seed0.png"]
    assert listed.dropped == {"left out by the rule's list": 3, "palette-reduced": 1}


def test_shipped_rules_lists_exist_and_name_paths_their_rule_selects():
    import re

    users: dict[str, list[Rule]] = {}
    for rule in RULES:
        for name in (rule.keep_list, rule.drop_list):
            if name is not None:
                users.setdefault(name, []).append(rule)
    assert users
    for name, rules in users.items():  # a list may serve several rules of one repository
        paths = rules[0].listed(name)
        assert paths and all(any(re.match(rule.pattern, p) for rule in rules) for p in paths), name
