"""``provenance watermark`` commands, driven through click."""
import json

import numpy as np
from click.testing import CliRunner

from provenance import watermark
from provenance.commands.watermark_cmds import watermark_group
from provenance.watermark.decision import DEFAULT_SCHEMES
from provenance.imageio import encode_image
from tests.watermark_helpers import photo_bgr


def _write(path, bgr, fmt="PNG"):
    path.write_bytes(encode_image(np.ascontiguousarray(bgr[:, :, ::-1]), fmt))
    return str(path)


def test_embed_then_decode_png_and_jpeg(tmp_path):
    src = _write(tmp_path / "in.png", photo_bgr("coffee"))
    runner = CliRunner()
    for out in ("out.png", "out.jpg"):
        result = runner.invoke(watermark_group, ["embed", src, "--out", str(tmp_path / out),
                                                 "--generator", "9", "--serial", "31337", "--json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.output)
        # the learned mark alone is ~41.7 dB here; JPEG q95's own loss of the photo comes on top
        assert record["readback"]["detected"] and record["psnr_db"] > (40 if out.endswith(".png") else 37)
        decoded = runner.invoke(watermark_group, ["decode", str(tmp_path / out), "--json"])
        assert decoded.exit_code == 0, decoded.output
        best = json.loads(decoded.output)["best"]
        assert best["detected"] and best["scheme"] == "learned"  # the default embed scheme
        assert best["id"]["generator"] == 9 and best["id"]["serial"] == 31337
    text = runner.invoke(watermark_group, ["decode", str(tmp_path / "out.png")]).output
    assert "DETECTED" in text and "generator 9, serial 31337" in text


def test_embed_strength_trades_psnr_for_a_stronger_learned_mark_and_is_refused_elsewhere(tmp_path):
    src = _write(tmp_path / "in.png", photo_bgr("coffee"))
    runner = CliRunner()
    psnrs = []
    for strength in ("1.0", "1.2"):
        result = runner.invoke(watermark_group, ["embed", src, "--out", str(tmp_path / f"s{strength}.png"),
                                                 "--strength", strength, "--json"])
        assert result.exit_code == 0, result.output
        record = json.loads(result.output)
        assert record["readback"]["detected"]
        psnrs.append(record["psnr_db"])
    assert psnrs[0] - 2.0 < psnrs[1] < psnrs[0] - 1.0  # 20 log10(1.2) = 1.6 dB
    default = runner.invoke(watermark_group, ["embed", src, "--out", str(tmp_path / "default.png"), "--json"])
    assert abs(json.loads(default.output)["psnr_db"] - psnrs[1]) < 0.01  # 1.2 is the default
    refused = runner.invoke(watermark_group, ["embed", src, "--out", str(tmp_path / "x.png"), "--scheme", "dwtDctSvd",
                                              "--strength", "1.2"])
    assert refused.exit_code != 0 and "no strength setting" in refused.output
    assert "Traceback" not in refused.output


def test_decode_unmarked_and_wrong_key(tmp_path):
    src = _write(tmp_path / "plain.png", photo_bgr("rocket"))
    result = CliRunner().invoke(watermark_group, ["decode", src, "--key", "a", "--key", "b", "--json"])
    assert result.exit_code == 0
    data = json.loads(result.output)
    tests = 2 * len(DEFAULT_SCHEMES)  # schemes x keys, and each of the learned scheme's views
    views = {"learned": watermark.get("learned").trials}
    assert not data["best"]["detected"] and len(data["results"]) == tests
    assert all(r["tests"] == tests * views.get(r["scheme"], 1) for r in [*data["results"], data["best"]])


def test_bad_inputs_give_one_line_errors(tmp_path):
    runner = CliRunner()
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    small = _write(tmp_path / "small.png", photo_bgr("astronaut", (100, 100)))
    good = _write(tmp_path / "good.png", photo_bgr("astronaut"))
    cases = [
        (["decode", str(tmp_path / "missing.png")], "missing.png: file not found"),
        (["decode", str(tmp_path / "junk.png")], "junk.png: not a recognised image format"),
        (["decode", small], "small.png: image is 100x100"),
        (["embed", small, "--out", str(tmp_path / "o.png")], "small.png: image is 100x100"),
        (["embed", good, "--out", str(tmp_path / "o.xyz")], "o.xyz: cannot tell the image format"),
        (["embed", good, "--out", str(tmp_path / "o.png"), "--scheme", "rivaGan", "--serial", "5"], "no room"),
    ]
    for args, message in cases:
        result = runner.invoke(watermark_group, args)
        assert result.exit_code == 1, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and lines[0].startswith("provenance: "), result.output
        assert "Traceback" not in result.output


def test_calibrate_command_writes_json(tmp_path):
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(watermark_group, ["calibrate", "--n-images", "10", "--keys", "3",
                                                  "--rivagan-images", "0", "--workers", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["tests"]["dwtDct/uint8"]["trials"] == 30
    assert "dwtDctSvd/uint8" in result.output and "emp.FPR" in result.output
