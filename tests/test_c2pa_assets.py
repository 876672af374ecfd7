"""Video, audio and PDF files with C2PA manifests: checked on their manifest, not refused as non-images."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from detectors.results import Label, Signal
from provenance.assets import LoadedAsset, load_source
from provenance.check import CheckConfig, Checker, NamedBytes, check, expand_paths
from provenance.cli import main
from provenance.imageio import LoadLimits
from tests.c2pa_helpers import (
    IPTC,
    MEDIA,
    BuilderSigner,
    action,
    flac_bytes,
    jpeg_bytes,
    manifest,
    pdf_bytes,
    svg_bytes,
)

DETECTORS = ("c2pa", "watermark", "sd-watermark", "metadata")


@pytest.fixture(scope="module")
def signer(keys) -> BuilderSigner:
    return BuilderSigner(keys)


@pytest.fixture(scope="module")
def checker(keys) -> Checker:
    return Checker(CheckConfig(detectors=DETECTORS, detector_options={
        "c2pa": {"trust_anchors": [keys.root_cert], "use_trust_store": False}}))


@pytest.fixture(scope="module")
def signed_media(signer, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    (folder / "nested").mkdir()
    ai = manifest(action("c2pa.created", "trainedAlgorithmicMedia"), generator="test-voice")
    return {name: signer.sign_to(folder / "nested" / f"ai{suffix}", ai, make(), mime)
            for name, (mime, make, suffix) in MEDIA.items()}


def _evidence(verdict, detector: str):
    return next(e for e in verdict.evidence if e.detector == detector)


@pytest.mark.parametrize("kind", sorted(MEDIA))
def test_signed_media_give_the_manifest_state_and_pixel_detectors_skip(kind, signed_media, checker):
    verdict = checker.check_one(signed_media[kind])
    assert verdict.label == Label.SYNTHETIC, verdict.reasons
    assert verdict.ai_involvement == "ai_generated"
    c2pa = _evidence(verdict, "c2pa")
    assert (c2pa.signal, c2pa.state) == (Signal.SYNTHETIC, "Trusted")
    assert c2pa.details["failures"] == [] and c2pa.details["ai_involvement"] == "ai_generated"
    for name in ("watermark", "sd-watermark"):
        skipped = _evidence(verdict, name)
        assert skipped.signal == Signal.SKIPPED and skipped.summary.startswith("not an image")
    assert _evidence(verdict, "metadata").signal == Signal.NONE  # metadata reads assets too
    assert verdict.image["mime_type"] == MEDIA[kind][0].replace("audio/wav", "audio/x-wav")
    assert any("not examined by watermark, sd-watermark: not an image" in r for r in verdict.reasons)
    json.dumps(verdict.to_dict())


@pytest.mark.parametrize("make, mime_type, kind", [(flac_bytes, "audio/flac", "audio"),
                                                    (svg_bytes, "image/svg+xml", "document")])
def test_flac_with_an_id3_tag_and_svg(make, mime_type, kind, signer, checker):
    ai = manifest(action("c2pa.created", "trainedAlgorithmicMedia"))
    verdict = checker.check_one(NamedBytes("signed", signer.sign(ai, make(), mime_type)))
    assert verdict.label == Label.SYNTHETIC and _evidence(verdict, "c2pa").state == "Trusted"
    assert (verdict.image["mime_type"], verdict.image["kind"]) == (mime_type, kind)  # c2pa tags FLAC with ID3
    assert _evidence(verdict, "watermark").signal == Signal.SKIPPED


@pytest.mark.parametrize("kind", sorted(MEDIA))
def test_changed_media_bytes_give_invalid_with_codes(kind, signed_media, checker):
    data = bytearray(signed_media[kind].read_bytes())
    # A byte of content, not of the manifest: an audio sample, the movie data, the page size.
    marker, skip = {"wav": (b"data", 100), "mp4": (b"mdat", 10), "pdf": (b"/MediaBox[0 0 ", 14)}[kind]
    data[data.index(marker) + skip] ^= 0x01
    verdict = checker.check_one(NamedBytes(f"changed.{kind}", bytes(data)))
    c2pa = _evidence(verdict, "c2pa")
    assert verdict.source == f"changed.{kind}"
    assert (c2pa.signal, c2pa.state) == (Signal.TAMPERED, "Invalid"), c2pa.summary
    codes = {f["code"] for f in c2pa.details["failures"]}
    assert codes & {"assertion.dataHash.mismatch", "assertion.bmffHash.mismatch"}, codes
    assert verdict.label == Label.INCONCLUSIVE
    assert any(code in verdict.reasons[0] for code in codes)


def test_untrusted_and_unsigned_media(signed_media, keys):
    untrusting = Checker(CheckConfig(detectors=DETECTORS, detector_options={"c2pa": {"use_trust_store": False}}))
    verdict = untrusting.check_one(signed_media["wav"])
    c2pa = _evidence(verdict, "c2pa")
    assert c2pa.state == "Valid" and {f["code"] for f in c2pa.details["failures"]} == {"signingCredential.untrusted"}
    assert verdict.label == Label.SYNTHETIC and "not on the trust list" in c2pa.summary

    for kind, (_, make, _) in MEDIA.items():
        plain = untrusting.check_one(NamedBytes(f"plain.{kind}", make()))
        assert plain.label == Label.NO_EVIDENCE, (kind, plain.reasons)
        assert _evidence(plain, "c2pa").summary == "no C2PA manifest"


def test_directory_scan_and_cli_pick_up_media(signed_media, keys, tmp_path):
    folder = signed_media["wav"].parent.parent
    found = {p.suffix for p in expand_paths([folder])}
    assert found == {".wav", ".mp4", ".pdf"}
    result = CliRunner().invoke(main, ["check", str(folder), "--json", "--no-trust-store",
                                       "--trust", str(keys.root_cert), *sum((["--detector", d] for d in DETECTORS), [])])
    records = [json.loads(line) for line in result.output.splitlines()]
    assert result.exit_code == 1, result.output
    assert len(records) == 3 and {r["label"] for r in records} == {"synthetic"}
    assert {r["ai_involvement"] for r in records} == {"ai_generated"}
    assert all(e["state"] == "Trusted" for r in records for e in r["evidence"] if e["detector"] == "c2pa")


def test_size_limit_applies_before_parsing(signed_media, tmp_path):
    small = LoadLimits(max_bytes=1000)
    verdict = Checker(CheckConfig(detectors=DETECTORS, limits=small)).check_one(signed_media["wav"])
    assert verdict.label == Label.ERROR and "over the" in verdict.error
    verdict = Checker(CheckConfig(detectors=DETECTORS, limits=small)).check_one(signed_media["wav"].read_bytes())
    assert verdict.label == Label.ERROR and "upload is" in verdict.error


def test_only_media_and_documents_take_the_asset_path(signed_media):
    assert isinstance(load_source(signed_media["mp4"]), LoadedAsset)
    assert not isinstance(load_source(jpeg_bytes()), LoadedAsset)
    verdict = check(b"plain text, not a file format")[0]
    assert verdict.label == Label.ERROR and "not a recognised image format" in verdict.error
    svg = b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>'
    assert load_source(svg).kind == "document"
    ogg = check(NamedBytes("song.ogg", b"OggS" + bytes(60)))[0]  # audio, but not a format C2PA carries
    assert ogg.label == Label.ERROR and ogg.error == "OGG audio is neither an image nor a format C2PA can carry"


def test_metadata_reads_the_xmp_of_a_document():
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
           '<rdf:Description rdf:about="" xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
           f'Iptc4xmpExt:DigitalSourceType="{IPTC}trainedAlgorithmicMedia" '
           'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="Runway 4L at JFK"/>'
           '</rdf:RDF></x:xmpmeta>').encode()
    verdict = Checker(CheckConfig(detectors=DETECTORS)).check_one(NamedBytes("report.pdf", pdf_bytes(xmp)))
    assert (verdict.label, verdict.ai_involvement) == (Label.LIKELY_SYNTHETIC, "ai_generated")
    assert "XMP Iptc4xmpExt:DigitalSourceType" in verdict.reasons[0]


# --- the API shape ----------------------------------------------------------------------------

def test_a_tuple_of_paths_is_two_sources_and_named_bytes_are_explicit(signed_media, tmp_path):
    plain = tmp_path / "plain.jpg"
    plain.write_bytes(jpeg_bytes())
    verdicts = check((str(plain), str(signed_media["pdf"])), CheckConfig(detectors=DETECTORS))
    assert [v.source for v in verdicts] == [str(plain), str(signed_media["pdf"])]
    assert [v.label for v in verdicts] == [Label.NO_EVIDENCE, Label.SYNTHETIC]
    assert verdicts[0].image["width"] == 32 and verdicts[1].image["kind"] == "document"

    [named] = check(NamedBytes("upload.pdf", signed_media["pdf"].read_bytes()), CheckConfig(detectors=DETECTORS))
    assert (named.source, named.label) == ("upload.pdf", Label.SYNTHETIC)
    with pytest.raises(TypeError, match="NamedBytes"):
        check([("name.png", b"bytes")], CheckConfig(detectors=DETECTORS))


def test_ray_adaptor_names_rows_with_named_bytes(signed_media):
    checker = Checker(CheckConfig(detectors=DETECTORS))
    out = checker({"bytes": [signed_media["wav"].read_bytes()], "path": ["clip.wav"]})
    assert out["label"] == ["synthetic"] and json.loads(out["verdict"][0])["source"] == "clip.wav"
