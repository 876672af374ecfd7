"""Local signing keys: a private root CA and an ES256 signing certificate it issues.

The signing certificate follows the C2PA certificate profile as c2pa-rs 0.91.3 enforces it
(checked at sign time, and again by every reader): X.509 v3, P-256, CA:false (critical),
KeyUsage digitalSignature (critical), ExtendedKeyUsage emailProtection + C2PA claimSigning,
SubjectKeyIdentifier and AuthorityKeyIdentifier. c2pa-rs rejects an end-entity certificate with
no KeyUsage, no EKU, CA:true or no AKI, with only "the certificate is invalid".

There is no time-stamp authority (everything here works offline), so a manifest is validated
against the signing certificate's validity *at read time*: once the certificate expires, every
file it signed reads as Invalid (``signingCredential.expired``). The signing certificate
therefore lives ``DEFAULT_SIGNER_DAYS`` (3 years) rather than the one year the C2PA
conformance programme asks of public signers: long enough that labelled images stay readable
for a useful while, short enough that a leaked key stops working. Re-run ``keys init --force``
before it runs out; files signed with the old key turn Invalid when the old certificate expires.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provenance.files import provenance_home, write_atomically

C2PA_CLAIM_SIGNING_OID = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DEFAULT_SIGNER_DAYS = 3 * 365 + 1
ROOT_DAYS = 20 * 365 + 5  # outlives any signer it issues; the root only signs certificates
CLOCK_SKEW = dt.timedelta(minutes=5)  # backdate notBefore so a reader with a slow clock accepts it

ROOT_CERT = "root.pem"
ROOT_KEY = "root.key"
SIGNER_CERT = "signer.pem"
SIGNER_KEY = "signer.key"


class KeyFileError(ValueError):
    """Base for key problems; the message is one line."""


class KeysExistError(KeyFileError):
    pass


class KeysMissingError(KeyFileError):
    pass


@dataclass(frozen=True)
class KeyPaths:
    directory: Path
    root_cert: Path
    root_key: Path
    signer_cert: Path  # the certificate chain embedded in manifests (here the signing certificate alone)
    signer_key: Path

    @classmethod
    def in_directory(cls, directory: str | Path) -> "KeyPaths":
        directory = Path(directory).expanduser()
        return cls(
            directory=directory,
            root_cert=directory / ROOT_CERT,
            root_key=directory / ROOT_KEY,
            signer_cert=directory / SIGNER_CERT,
            signer_key=directory / SIGNER_KEY,
        )

    def files(self) -> tuple[Path, Path, Path, Path]:
        return (self.root_cert, self.root_key, self.signer_cert, self.signer_key)


def default_key_dir() -> Path:
    """``$PROVENANCE_HOME/keys`` when that is set, else ``~/.config/provenance/keys``."""
    home = provenance_home()
    return (home / "keys") if home else Path.home() / ".config" / "provenance" / "keys"


def init_keys(
    directory: str | Path | None = None,
    *,
    common_name: str = "provenance local signer",
    organization: str | None = None,
    days: int = DEFAULT_SIGNER_DAYS,
    force: bool = False,
) -> KeyPaths:
    """Create a root CA and a signing certificate in ``directory`` (default :func:`default_key_dir`).

    Private keys are created with mode 0600 from the start. Existing keys are never overwritten
    unless ``force`` is true. ``days`` is the signing certificate's lifetime, which, with no
    time-stamp authority, is also how long the files it signs stay valid.
    """
    if days < 1:
        raise KeyFileError(f"days must be at least 1, got {days}")
    if days > ROOT_DAYS:
        raise KeyFileError(f"days must be at most {ROOT_DAYS} (the root's own lifetime), got {days}")
    paths = KeyPaths.in_directory(directory if directory is not None else default_key_dir())
    existing = [p.name for p in paths.files() if p.exists()]
    if existing and not force:
        raise KeysExistError(
            f"{paths.directory}: keys already exist ({', '.join(existing)}); use --force to replace them"
        )
    paths.directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    now = dt.datetime.now(dt.timezone.utc)
    not_before = now - CLOCK_SKEW
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = _name(f"{common_name} root CA", organization)
    root_ski = x509.SubjectKeyIdentifier.from_public_key(root_key.public_key())
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(root_name)
        .issuer_name(root_name)
        .public_key(root_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + dt.timedelta(days=ROOT_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(root_ski, critical=False)
        .sign(root_key, hashes.SHA256())
    )

    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name, organization))
        .issuer_name(root_name)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION, C2PA_CLAIM_SIGNING_OID]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(signer_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )

    pem = serialization.Encoding.PEM
    _write_private(paths.root_key, _pkcs8(root_key))
    _write_private(paths.signer_key, _pkcs8(signer_key))
    _write_public(paths.root_cert, root_cert.public_bytes(pem))
    # The chain carries the signing certificate (and any intermediates), not the root: readers
    # must hold the root as a trust anchor for it to mean anything.
    _write_public(paths.signer_cert, signer_cert.public_bytes(pem))
    return paths


def load_keys(directory: str | Path | KeyPaths | None = None) -> KeyPaths:
    """The key paths in ``directory``; raises :class:`KeysMissingError` naming what is missing."""
    if isinstance(directory, KeyPaths):
        paths = directory
    else:
        paths = KeyPaths.in_directory(directory if directory is not None else default_key_dir())
    missing = [p.name for p in (paths.signer_cert, paths.signer_key) if not p.is_file()]
    if missing:
        raise KeysMissingError(
            f"{paths.directory}: no signing keys ({', '.join(missing)} missing); "
            "run `provenance keys init` first"
        )
    return paths


def _name(common_name: str, organization: str | None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _key_usage(*, digital_signature=False, key_cert_sign=False, crl_sign=False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=crl_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pkcs8(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _write_private(path: Path, data: bytes) -> None:
    """Write via a 0600 temporary file in the same directory, then rename over ``path``.

    The key is never readable by others, not even for an instant, and a replaced key file does
    not inherit the looser mode the old file might have had (``O_TRUNC`` would keep it).
    """
    write_atomically(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    write_atomically(path, data, 0o644)
