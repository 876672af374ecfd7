"""C2PA round trips: keys -> sign -> read back through the ``c2pa`` detector."""
from __future__ import annotations

import datetime as dt
import io
import json
import shutil
import stat
import time
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from PIL import Image
from skimage import data as samples

import detectors
from detectors import Signal, Strength
from detectors.c2pa_manifest import C2paManifestDetector
from provenance.c2pa.keys import (
    C2PA_CLAIM_SIGNING_OID,
    KeyPaths,
    KeysExistError,
    default_key_dir,
    init_keys,
)
from provenance.c2pa.signing import C2paSigner, SigningError, sign_file
from provenance.c2pa.trust import TrustAnchorError, default_trust_dir, load_trust_anchors
from provenance.commands.c2pa_cmds import keys_group, sign_command
from provenance.imageio import LoadedImage, load_image


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> KeyPaths:
    return init_keys(tmp_path_factory.mktemp("keys") / "keys", organization="Test Newsroom")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("photos")
    pixels = samples.astronaut()
    paths = {"jpeg": folder / "astronaut.jpg", "png": folder / "astronaut.png", "webp": folder / "astronaut.webp"}
    Image.fromarray(pixels).save(paths["jpeg"], quality=90)
    Image.fromarray(pixels).save(paths["png"])
    Image.fromarray(pixels).save(paths["webp"], quality=90)
    return paths


@pytest.fixture(scope="module")
def signer(keys):
    with C2paSigner(keys) as s:
        yield s


@pytest.fixture(scope="module")
def trusting(keys) -> C2paManifestDetector:
    return C2paManifestDetector(trust_anchors=[keys.root_cert], use_trust_store=False)


@pytest.fixture(scope="module")
def untrusting() -> C2paManifestDetector:
    return C2paManifestDetector(use_trust_store=False)


@pytest.fixture(scope="module")
def ai_jpeg(signer, photos, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signed") / "ai.jpg"
    signer.sign(photos["jpeg"], out, ai_generated=True, model="test-diffusion", model_version="2.1",
                extra_assertion={"seed": 1234, "watermark_id": "wm-42"})
    return out


def raw(data: bytes, mime_type: str = "image/jpeg", fmt: str = "JPEG") -> LoadedImage:
    """An image record for bytes that Pillow may not decode: the detector reads only ``data``."""
    return LoadedImage(source="test", data=data, format=fmt, mime_type=mime_type, width=1, height=1,
                       mode="RGB", rgb=np.zeros((1, 1, 3), np.uint8))


def failure_codes(evidence) -> set[str]:
    return {f["code"] for f in evidence.details["failures"]}


# --- keys -----------------------------------------------------------------------------------

def test_key_files_are_private_and_the_certificate_follows_the_c2pa_profile(keys):
    for path in (keys.root_key, keys.signer_key):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.directory.stat().st_mode) == 0o700

    root = x509.load_pem_x509_certificate(keys.root_cert.read_bytes())
    certs = x509.load_pem_x509_certificates(keys.signer_cert.read_bytes())
    assert len(certs) == 1  # the root is an anchor, not part of the embedded chain
    cert = certs[0]
    assert isinstance(cert.public_key(), ec.EllipticCurvePublicKey) and cert.public_key().curve.name == "secp256r1"
    basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert basic.critical and not basic.value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    eku = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert eku == {ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_OID}
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
    assert aki == root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    cert.verify_directly_issued_by(root)


def test_existing_keys_are_kept_unless_forced(tmp_path):
    first = init_keys(tmp_path / "k")
    old_key = first.signer_key.read_bytes()
    with pytest.raises(KeysExistError, match="already exist"):
        init_keys(tmp_path / "k")
    assert first.signer_key.read_bytes() == old_key
    first.signer_key.chmod(0o644)  # a loosened old file must not pass its mode on
    again = init_keys(tmp_path / "k", force=True)
    assert again.signer_key.read_bytes() != old_key
    assert stat.S_IMODE(again.signer_key.stat().st_mode) == 0o600


def test_default_directories_follow_provenance_home(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path / "home"))
    assert default_key_dir() == tmp_path / "home" / "keys"
    assert default_trust_dir() == tmp_path / "home" / "trust"
    monkeypatch.delenv("PROVENANCE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert default_key_dir() == tmp_path / "user" / ".config" / "provenance" / "keys"


# --- sign and read back ---------------------------------------------------------------------

def test_ai_image_is_trusted_with_our_root_and_untrusted_without(ai_jpeg, trusting, untrusting):
    image = load_image(ai_jpeg)
    trusted = trusting.detect(image)
    assert (trusted.signal, trusted.strength, trusted.state) == (Signal.SYNTHETIC, Strength.DECLARED_TRUSTED, "Trusted")
    assert trusted.details["ai_declared"] and trusted.details["trusted"]
    assert trusted.details["failures"] == []
    assert trusted.details["digital_source_type"] == "trainedAlgorithmicMedia"
    assert trusted.details["actions"] == [{"action": "c2pa.created", "digitalSourceType": "trainedAlgorithmicMedia",
                                           "softwareAgent": "test-diffusion 2.1"}]
    assert trusted.details["generation"] == {"model": "test-diffusion", "model_version": "2.1",
                                             "seed": 1234, "watermark_id": "wm-42"}
    assert trusted.details["signer"]["common_name"] == "provenance local signer"
    assert trusted.details["signer"]["issuer"] == "Test Newsroom"
    assert trusted.details["claim_generator"].startswith("provenance ")

    untrusted = untrusting.detect(image)
    assert (untrusted.signal, untrusted.strength, untrusted.state) == (Signal.SYNTHETIC, Strength.DECLARED, "Valid")
    assert failure_codes(untrusted) == {"signingCredential.untrusted"}
    assert "not on the trust list" in untrusted.summary
    json.dumps(untrusted.to_dict())  # evidence must serialise as-is


def test_root_in_the_user_trust_store_confers_trust(ai_jpeg, keys, tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path))
    detector = detectors.create("c2pa")
    assert detector.detect(load_image(ai_jpeg)).state == "Valid"
    default_trust_dir().mkdir(parents=True)
    shutil.copy(keys.root_cert, default_trust_dir() / "ours.pem")
    assert detectors.create("c2pa").detect(load_image(ai_jpeg)).state == "Trusted"
    assert detectors.create("c2pa", use_trust_store=False).detect(load_image(ai_jpeg)).state == "Valid"


def test_bad_trust_anchor_is_refused_up_front(tmp_path):
    with pytest.raises(TrustAnchorError, match="not found"):
        C2paManifestDetector(trust_anchors=[tmp_path / "missing.pem"], use_trust_store=False)
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    with pytest.raises(TrustAnchorError, match="junk.pem: not a PEM certificate"):
        C2paManifestDetector(trust_anchors=[junk], use_trust_store=False)
    garbled = tmp_path / "garbled.pem"
    garbled.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    with pytest.raises(TrustAnchorError, match="garbled.pem: not a PEM certificate"):
        C2paManifestDetector(trust_anchors=[garbled], use_trust_store=False)


def test_a_trust_anchor_keeps_its_certificate_and_names_its_subject(keys):
    (anchor,) = load_trust_anchors([keys.root_cert], use_trust_store=False)
    assert "CN=" in anchor.subject
    assert anchor.pem.startswith("-----BEGIN CERTIFICATE-----")


def test_changed_image_bytes_make_the_manifest_invalid(ai_jpeg, trusting):
    data = bytearray(ai_jpeg.read_bytes())
    scan_start = data.rindex(b"\xff\xda")
    middle = (scan_start + len(data)) // 2
    assert any(data[middle:middle + 32])
    data[middle:middle + 32] = bytes(32)  # zeros never form a JPEG marker
    evidence = trusting.detect(load_image(bytes(data)))
    assert (evidence.signal, evidence.state) == (Signal.TAMPERED, "Invalid")
    assert "assertion.dataHash.mismatch" in failure_codes(evidence)
    assert evidence.details["ai_declared"]  # still reported, not relied on
    assert "declares AI generation" in evidence.summary


def test_reencoding_drops_the_manifest(ai_jpeg, trusting):
    buffer = io.BytesIO()
    Image.open(ai_jpeg).save(buffer, "JPEG", quality=90)
    evidence = trusting.detect(load_image(buffer.getvalue()))
    assert (evidence.signal, evidence.strength, evidence.summary) == (Signal.NONE, Strength.NONE, "no C2PA manifest")
    assert evidence.state is None


def test_resigning_keeps_the_earlier_manifest_as_parent(ai_jpeg, signer, trusting, tmp_path):
    first_label = trusting.detect(load_image(ai_jpeg)).details["active_manifest"]
    result = signer.sign(ai_jpeg, tmp_path / "resigned.jpg")
    assert result.parent_manifest == first_label and result.action == "c2pa.opened"
    evidence = trusting.detect(load_image(tmp_path / "resigned.jpg"))
    assert evidence.state == "Trusted" and evidence.details["active_manifest"] != first_label
    [parent] = evidence.details["ingredients"]["items"]
    assert parent["relationship"] == "parentOf" and parent["has_manifest"]
    assert [a["action"] for a in evidence.details["actions"]] == ["c2pa.opened"]
    # The AI declaration lives in the parent manifest and still counts.
    assert evidence.signal == Signal.SYNTHETIC and evidence.details["ai_declared"]
    assert evidence.details["synthetic_declared_in"] == [first_label]
    assert "earlier manifest" in evidence.summary

    with pytest.raises(SigningError, match="not be re-declared as digitalCapture|but not re-declared"):
        signer.sign(ai_jpeg, tmp_path / "capture.jpg", source_type="digitalCapture")


def test_png_capture_claim_round_trip(signer, photos, trusting, untrusting, tmp_path):
    out = tmp_path / "capture.png"
    result = signer.sign(photos["png"], out, source_type="digitalCapture")
    assert result.mime_type == "image/png" and result.digital_source_type == "digitalCapture"
    image = load_image(out)
    assert np.array_equal(image.rgb, samples.astronaut())  # signing never touches pixels
    trusted = trusting.detect(image)
    assert (trusted.signal, trusted.strength) == (Signal.CAPTURE, Strength.DECLARED_TRUSTED)
    assert not trusted.details["ai_declared"] and trusted.details["capture_declared"]
    untrusted = untrusting.detect(image)
    assert (untrusted.signal, untrusted.strength) == (Signal.CAPTURE, Strength.DECLARED)
    assert "not on the trust list" in untrusted.summary


def test_signing_without_a_claim_declares_no_origin(signer, photos, trusting, tmp_path):
    out = tmp_path / "plain.jpg"
    result = signer.sign(photos["jpeg"], out)
    assert (result.action, result.digital_source_type, result.parent_manifest) == ("c2pa.opened", None, None)
    assert result.manifest_bytes < 8_000  # no thumbnail: a bulk signer must not add ~100 KB per image
    evidence = trusting.detect(load_image(out))
    assert (evidence.signal, evidence.state) == (Signal.NONE, "Trusted")
    assert "makes no claim" in evidence.summary
    assert not evidence.details["ai_declared"] and not evidence.details["capture_declared"]


def test_webp_round_trip(signer, photos, trusting, tmp_path):
    out = tmp_path / "ai.webp"
    signer.sign(photos["webp"], out, ai_generated=True)
    evidence = trusting.detect(load_image(out))
    assert (evidence.signal, evidence.strength) == (Signal.SYNTHETIC, Strength.DECLARED_TRUSTED)


def test_camera_style_jpeg_with_preview_round_trip(signer, trusting, tmp_path):
    """Pillow calls a JPEG with an embedded preview (MPO) image/mpo; it is still a JPEG to c2pa."""
    photo = Image.fromarray(samples.astronaut())
    source = tmp_path / "camera.jpg"
    photo.save(source, "MPO", save_all=True, append_images=[photo.resize((64, 64))])
    assert load_image(source).mime_type == "image/mpo"
    result = signer.sign(source, tmp_path / "signed.jpg", source_type="digitalCapture")
    assert result.mime_type == "image/jpeg"
    evidence = trusting.detect(load_image(tmp_path / "signed.jpg"))
    assert (evidence.signal, evidence.state) == (Signal.CAPTURE, "Trusted")


def test_sign_file_one_shot_and_in_place(keys, photos, trusting, tmp_path):
    target = tmp_path / "in_place.jpg"
    shutil.copy(photos["jpeg"], target)
    result = sign_file(target, target, keys=keys.directory, ai_generated=True)
    assert result.destination == target
    assert trusting.detect(load_image(target)).signal == Signal.SYNTHETIC


# --- inputs the detector cannot use -----------------------------------------------------------

def test_garbage_truncated_and_unsupported_inputs_give_evidence_not_exceptions(ai_jpeg, trusting):
    garbage = trusting.detect(raw(b"\x00garbage" * 50))
    assert garbage.signal == Signal.ERROR and "does not recognise" in garbage.error

    data = ai_jpeg.read_bytes()
    manifest_at = data.index(b"\xff\xeb")  # APP11 carries the JUMBF manifest store
    cut_in_manifest = trusting.detect(raw(data[: manifest_at + 400]))
    assert cut_in_manifest.signal == Signal.ERROR and cut_in_manifest.error

    cut_in_pixels = trusting.detect(raw(data[: len(data) * 3 // 4]))
    assert cut_in_pixels.signal == Signal.TAMPERED
    assert "assertion.dataHash.mismatch" in failure_codes(cut_in_pixels)

    buffer = io.BytesIO()
    Image.fromarray(samples.astronaut()).save(buffer, "BMP")
    bmp = trusting.detect(load_image(buffer.getvalue()))
    assert bmp.signal == Signal.SKIPPED and "BMP" in bmp.summary


# --- certificates the library refuses -------------------------------------------------------

def issue_signer(keys: KeyPaths, folder: Path, *, not_before: dt.datetime, not_after: dt.datetime,
                 ca: bool = False, with_aki: bool = True) -> KeyPaths:
    root_key = serialization.load_pem_private_key(keys.root_key.read_bytes(), None)
    root = x509.load_pem_x509_certificate(keys.root_cert.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "variant")]))
        .issuer_name(root.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(not_before).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_OID]),
                       critical=False)
    )
    if with_aki:
        ski = root.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski),
                                        critical=False)
    cert = builder.sign(root_key, hashes.SHA256())
    paths = KeyPaths.in_directory(folder)
    folder.mkdir()
    shutil.copy(keys.root_cert, paths.root_cert)
    paths.signer_cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.signer_key.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                   serialization.NoEncryption()))
    return paths


def test_expired_and_future_certificates_are_refused(keys, tmp_path):
    now = dt.datetime.now(dt.timezone.utc)
    expired = issue_signer(keys, tmp_path / "expired", not_before=now - dt.timedelta(days=30),
                           not_after=now - dt.timedelta(days=1))
    with pytest.raises(SigningError, match="expired on"):
        C2paSigner(expired)
    future = issue_signer(keys, tmp_path / "future", not_before=now + dt.timedelta(days=1),
                          not_after=now + dt.timedelta(days=30))
    with pytest.raises(SigningError, match="not valid until"):
        C2paSigner(future)


@pytest.mark.parametrize("variant", [{"ca": True}, {"with_aki": False}])
def test_certificates_outside_the_profile_cannot_sign(keys, photos, tmp_path, variant):
    now = dt.datetime.now(dt.timezone.utc)
    paths = issue_signer(keys, tmp_path / "variant", not_before=now - dt.timedelta(hours=1),
                         not_after=now + dt.timedelta(days=30), **variant)
    with C2paSigner(paths) as signer, pytest.raises(SigningError, match="certificate is invalid"):
        signer.sign(photos["jpeg"], tmp_path / "out.jpg")


def test_signature_turns_invalid_when_the_certificate_expires(keys, photos, trusting, tmp_path):
    """No time-stamp authority: validity is judged at read time, so expiry breaks old files."""
    now = dt.datetime.now(dt.timezone.utc)
    expires = now.replace(microsecond=0) + dt.timedelta(seconds=2)
    short = issue_signer(keys, tmp_path / "short", not_before=now - dt.timedelta(hours=1), not_after=expires)
    out = tmp_path / "short.jpg"
    with C2paSigner(short) as signer:
        signer.sign(photos["jpeg"], out, ai_generated=True)
    assert trusting.detect(load_image(out)).state == "Trusted"
    time.sleep(max(0.0, (expires - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.1)
    evidence = trusting.detect(load_image(out))
    assert (evidence.signal, evidence.state) == (Signal.TAMPERED, "Invalid")
    assert "signingCredential.expired" in failure_codes(evidence)


def test_unusable_key_is_reported_without_echoing_it(keys, tmp_path):
    folder = tmp_path / "badkey"
    shutil.copytree(keys.directory, folder)
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    (folder / "signer.key").write_text(secret)
    with pytest.raises(SigningError) as caught:
        C2paSigner(folder)
    assert "signer.key: not a usable" in str(caught.value) and "c2VjcmV0" not in str(caught.value)


# --- CLI --------------------------------------------------------------------------------------

@pytest.fixture
def cli(tmp_path, monkeypatch):
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path / "home"))
    root = click.Group("provenance")
    root.add_command(keys_group)
    root.add_command(sign_command)
    runner = CliRunner()
    return lambda *args: runner.invoke(root, [str(a) for a in args])


def test_cli_keys_init_and_sign(cli, photos, tmp_path):
    created = cli("keys", "init", "--json")
    assert created.exit_code == 0, created.output
    paths = json.loads(created.output)
    assert paths["directory"] == str(tmp_path / "home" / "keys")
    assert "--trust" in paths["trust_hint"] and "PRIVATE" not in created.output

    again = cli("keys", "init")
    assert again.exit_code == 1 and "already exist" in again.output and "--force" in again.output

    out = tmp_path / "signed.jpg"
    signed = cli("sign", photos["jpeg"], "--out", out, "--ai-generated", "--model", "m", "--json")
    assert signed.exit_code == 0, signed.output
    assert json.loads(signed.output)["digital_source_type"] == "trainedAlgorithmicMedia"
    evidence = C2paManifestDetector(trust_anchors=[paths["root_cert"]], use_trust_store=False).detect(load_image(out))
    assert evidence.details["actions"][0]["softwareAgent"] == "m"

    human = cli("sign", out, "--out", tmp_path / "again.jpg")
    assert human.exit_code == 0 and "earlier manifest kept as parent" in human.output


def test_cli_errors_are_one_line(cli, photos, tmp_path):
    no_keys = cli("sign", photos["jpeg"], "--out", tmp_path / "x.jpg")
    assert no_keys.exit_code == 1 and "keys init" in no_keys.output
    assert cli("keys", "init").exit_code == 0
    missing = cli("sign", tmp_path / "nope.jpg", "--out", tmp_path / "x.jpg")
    assert missing.exit_code == 1
    assert missing.output.strip() == f"provenance: {tmp_path / 'nope.jpg'}: file not found"
    wrong_ext = cli("sign", photos["jpeg"], "--out", tmp_path / "x.png")
    assert wrong_ext.exit_code == 1 and len(wrong_ext.output.strip().splitlines()) == 1
    assert "does not convert formats" in wrong_ext.output
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"not an image at all")
    bad = cli("sign", garbage, "--out", tmp_path / "x.jpg")
    assert bad.exit_code == 1 and "not a recognised image format" in bad.output
    for result in (no_keys, missing, wrong_ext, bad):
        assert "Traceback" not in result.output
