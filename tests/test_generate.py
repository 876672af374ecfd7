"""`provenance generate`: a tiny GAN trained here for two steps, its images marked, signed and checked."""
from __future__ import annotations

import io
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import provenance
from detectors.results import Label
from provenance.check import CheckConfig, Checker
from provenance.cli import main
from provenance.generation import WATERMARK_CODES, GenerationError, serial_for
from provenance.watermark.decision import best, decode_watermark


def checker_trusting(keys) -> Checker:
    return Checker(CheckConfig(detector_options={"c2pa": {"trust_anchors": [keys.root_cert],
                                                          "use_trust_store": False}}))


def test_generated_images_carry_a_decodable_id_and_a_trusted_ai_manifest(tiny_gan, keys, tmp_path):
    images = provenance.generate(tiny_gan, n=2, size=256, seed=5, out=tmp_path, keys=keys.directory)
    assert [image.index for image in images] == [0, 1]
    for image in images:
        assert image.path.is_file() and image.path.suffix == ".png"
        decoded = best(decode_watermark(np.asarray(Image.open(image.path))[:, :, ::-1].copy(), ("learned",)))
        assert decoded.detected
        assert decoded.watermark_id.generator == WATERMARK_CODES["gan"]
        assert decoded.watermark_id.serial == serial_for(5, image.index) == image.serial

    verdicts = checker_trusting(keys).check([image.path for image in images])
    for verdict in verdicts:
        assert verdict.label == Label.SYNTHETIC
        found = {e.family: e for e in verdict.evidence if e.signal.value == "synthetic"}
        assert {"c2pa", "watermark"} <= set(found), verdict.reasons
        assert found["c2pa"].state == "Trusted"
        manifest = json.dumps(found["c2pa"].details)
        assert "trainedAlgorithmicMedia" in manifest and "provenance-tiny_gan" in manifest
        assert '"seed": 5' in manifest

    records = [json.loads(line) for line in (tmp_path / "generated.jsonl").read_text().splitlines()]
    assert [r["serial"] for r in records] == [image.serial for image in images]


def test_same_seed_same_pixels_in_any_chunking_and_another_seed_differs(tiny_gan):
    whole = provenance.generate(tiny_gan, n=3, size=64 * 4, seed=1, c2pa=False, batch_size=3)
    chunked = provenance.generate(tiny_gan, n=3, size=64 * 4, seed=1, c2pa=False, batch_size=1)
    assert all(np.array_equal(a.rgb, b.rgb) for a, b in zip(whole, chunked))
    other = provenance.generate(tiny_gan, n=1, size=256, seed=2, c2pa=False)
    assert not np.array_equal(other[0].rgb, whole[0].rgb)
    assert len({image.serial for image in whole + other}) == 4


def test_unlabelled_output_for_datasets_has_neither_mark_nor_manifest(tiny_gan, keys, tmp_path):
    (image,) = provenance.generate(tiny_gan, n=1, size=256, seed=0, out=tmp_path, format="jpeg",
                                   watermark=False, c2pa=False)
    assert image.path.suffix == ".jpg" and image.watermark_id is None and not image.c2pa_signed
    verdict = checker_trusting(keys).check_one(image.path)
    # nothing declared; the trained classifiers may abstain on a 2-step GAN's output (inconclusive)
    assert verdict.label in (Label.NO_EVIDENCE, Label.INCONCLUSIVE)
    assert not any(e.signal.value == "synthetic" for e in verdict.evidence)
    assert all(e.signal.value == "none" for e in verdict.evidence if e.family != "classifier")


def test_jpeg_output_keeps_the_mark_and_the_manifest(tiny_gan, keys, tmp_path):
    (image,) = provenance.generate(tiny_gan, n=1, size=256, seed=0, out=tmp_path, format="jpeg",
                                   keys=keys.directory)
    assert Image.open(io.BytesIO(image.data)).format == "JPEG"
    verdict = checker_trusting(keys).check_one(image.path)
    assert verdict.label == Label.SYNTHETIC
    assert {e.family for e in verdict.evidence if e.signal.value == "synthetic"} >= {"c2pa", "watermark"}


def test_bad_requests_name_the_problem(tiny_gan, tmp_path):
    with pytest.raises(GenerationError, match="not a directory nor a shipped generator"):
        provenance.generate("no-such-model", n=1)
    with pytest.raises(GenerationError, match="keys init"):
        provenance.generate(tiny_gan, n=1, keys=tmp_path / "no-keys")
    with pytest.raises(ValueError, match="multiples"):
        provenance.generate(tiny_gan, n=1, size=250, c2pa=False)


def test_cli_generates_json_records_and_fails_in_one_line(tiny_gan, keys, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["generate", "--model", str(tiny_gan), "-n", "2", "--out", str(tmp_path / "out"),
                                  "--keys", str(keys.directory), "--seed", "3", "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["index"] for r in records] == [0, 1] and all(r["c2pa_signed"] for r in records)
    assert all((tmp_path / "out" / r["file"].split("/")[-1]).is_file() for r in records)

    result = runner.invoke(main, ["generate", "--model", str(tiny_gan), "-n", "1", "--out", str(tmp_path / "x"),
                                  "--keys", str(tmp_path / "missing")])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1 and "keys init" in result.output
    for size, problem in (("250", "multiples"), ("128", "watermarks need")):
        result = runner.invoke(main, ["generate", "--model", str(tiny_gan), "--size", size, "--no-c2pa",
                                      "--out", str(tmp_path / "y"), "-n", "3"])
        assert result.exit_code == 1 and problem in result.output, result.output
        assert len(result.output.strip().splitlines()) == 1
