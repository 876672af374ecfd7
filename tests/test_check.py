"""End to end: the demo's files through ``check`` (library, Ray-style batch call and CLI)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from detectors.results import Label
from provenance.check import CheckConfig, Checker, check
from provenance.cli import main
from provenance.demo import run_demo
from tests.test_imageio import make_bad_inputs, make_odd_inputs


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[str, Path]:
    cases = run_demo(tmp_path_factory.mktemp("demo"))
    return {case.path.name: case.path for case in cases} | {"root": cases[0].path.parent / "keys" / "root.pem"}


def test_demo_verdicts(demo):
    verdicts = {Path(v.source).name: v for v in check(
        [p for name, p in demo.items() if name != "root"],
        CheckConfig(detector_options={"c2pa": {"trust_anchors": [demo["root"]], "use_trust_store": False}}))}
    assert verdicts["original.jpg"].label == Label.NO_EVIDENCE
    assert verdicts["captured_signed.jpg"].label == Label.CAPTURE_DECLARED
    generated = verdicts["generated.jpg"]
    assert generated.label == Label.SYNTHETIC
    assert {e.detector for e in generated.evidence if e.signal.value == "synthetic"} == {"c2pa", "watermark"}
    reencoded = verdicts["generated_reencoded.jpg"]
    assert reencoded.label == Label.SYNTHETIC
    assert [e.state for e in reencoded.evidence if e.detector == "c2pa"] == [None]  # manifest stripped
    mark = next(e for e in reencoded.evidence if e.detector == "watermark")
    assert mark.details["scheme"] == "learned" and mark.details["serial"] == 1
    cropped = verdicts["generated_cropped.jpg"]  # the learned mark survives a crop of a re-encoded copy
    assert cropped.label == Label.SYNTHETIC, cropped.reasons
    mark = next(e for e in cropped.evidence if e.detector == "watermark")
    # the crop keeps the mark; its ID may be past what BCH corrects there, but is never misread
    assert mark.details["scheme"] == "learned" and mark.details.get("serial", 1) == 1
    tampered = verdicts["generated_tampered.jpg"]
    assert [e.state for e in tampered.evidence if e.detector == "c2pa"] == ["Invalid"]
    assert any("dataHash.mismatch" in r for r in tampered.reasons)
    unlabelled = verdicts["gan_unlabelled.jpg"]  # no mark, no manifest: the shipped classifiers alone
    assert unlabelled.label == Label.LIKELY_SYNTHETIC, unlabelled.reasons
    assert {e.family for e in unlabelled.evidence if e.signal.value == "synthetic"} == {"classifier"}
    chart = verdicts["chart.png"]  # computer-rendered: the classifiers abstain and say why
    assert chart.label == Label.NO_EVIDENCE, chart.reasons
    assert any(r.startswith("not examined by cnn, cnn-corpus, spectral, spectral-corpus: it looks computer-rendered")
               for r in chart.reasons)


def test_detectors_side_by_side_give_what_they_give_one_after_another(demo):
    # the demo's marked files have two detectors reading one image's shared watermark transforms at once
    paths = [p for name, p in demo.items() if name != "root"]
    options = {"c2pa": {"trust_anchors": [demo["root"]], "use_trust_store": False}}
    alone = Checker(CheckConfig(detector_options=options)).check(paths)
    together = Checker(CheckConfig(detector_options=options, threads=3)).check(paths)
    assert [v.label for v in together] == [v.label for v in alone]
    for a, b in zip(alone, together):
        assert [(e.detector, e.signal, e.summary) for e in b.evidence] == [(e.detector, e.signal, e.summary) for e in a.evidence]
    assert any(v.label == Label.SYNTHETIC for v in together)


def test_a_single_source_is_one_file_not_a_sequence_of_characters(demo):
    (verdict,) = Checker(CheckConfig(detectors=("metadata",))).check(str(demo["original.jpg"]))
    assert verdict.source == str(demo["original.jpg"]) and verdict.label == Label.NO_EVIDENCE


def test_untrusted_signer_is_said_so(demo):
    verdict = Checker(CheckConfig(detector_options={"c2pa": {"use_trust_store": False}})).check_one(
        demo["captured_signed.jpg"])
    # an untrusted capture claim is reported but is not "capture declared by a trusted manifest"
    assert verdict.label == Label.NO_EVIDENCE
    assert any("not on the trust list" in r or "untrusted" in r for r in verdict.reasons), verdict.reasons


def test_ray_style_batch_call(demo):
    checker = Checker()
    paths = [str(demo["original.jpg"]), str(demo["generated_reencoded.jpg"])]
    out = checker({"path": paths})
    assert out["path"] == paths and out["label"] == ["no_evidence_of_synthesis", "synthetic"]
    by_bytes = checker({"bytes": [Path(p).read_bytes() for p in paths], "path": paths})
    assert by_bytes["label"] == out["label"]
    assert json.loads(by_bytes["verdict"][1])["label"] == "synthetic"


def _write_matrix(folder: Path, demo) -> None:
    (folder / "nested").mkdir(parents=True)
    for name, data in (make_bad_inputs() | make_odd_inputs()).items():
        (folder / name).write_bytes(data)
    (folder / "nested" / "generated.jpg").write_bytes(demo["generated_reencoded.jpg"].read_bytes())
    (folder / "notes.txt").write_text("not picked up: no image suffix")


def test_cli_json_over_a_folder_with_bad_files(tmp_path, demo):
    _write_matrix(tmp_path, demo)
    result = CliRunner().invoke(main, ["check", "--json", str(tmp_path)])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    by_name = {Path(r["source"]).name: r for r in records}
    assert len(records) == len(make_bad_inputs()) + len(make_odd_inputs()) + 1
    for name in make_bad_inputs():
        assert by_name[name]["label"] == "error" and by_name[name]["error"]
    for name in make_odd_inputs():
        assert by_name[name]["label"] != "error", by_name[name]
    assert by_name["generated.jpg"]["label"] == "synthetic"
    assert result.exit_code == 1 | 4  # synthetic found and some files failed
    assert "Traceback" not in result.output


def test_cli_human_output_and_exit_codes(tmp_path, demo):
    runner = CliRunner()
    clean = runner.invoke(main, ["check", str(demo["original.jpg"])])
    assert clean.exit_code == 0 and clean.stdout.startswith("no_evidence_of_synthesis")
    found = runner.invoke(main, ["check", "-v", "--trust", str(demo["root"]), str(demo["generated.jpg"])])
    assert found.exit_code == 1
    assert "[c2pa] synthetic/declared_trusted state=Trusted" in found.stdout
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    failed = runner.invoke(main, ["check", str(empty), str(demo["original.jpg"])])
    assert failed.exit_code == 4
    assert f"provenance: {empty}: empty file (0 bytes)" in failed.stderr
    assert "no_evidence_of_synthesis" in failed.stdout  # the run went on after the bad file
    usage = runner.invoke(main, ["check", "--detector", "nope", str(empty)])
    assert usage.exit_code == 2 and "unknown detector" in usage.stderr
