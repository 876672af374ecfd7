"""Trust anchors: which root certificates make a valid C2PA signature *Trusted*.

Anchors come from three places: explicit files or directories (``--trust``), the user's trust
store (:func:`default_trust_dir`), and the store shipped in the package (``provenance/trust``).
"""
from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from ..files import provenance_home

SHIPPED_TRUST_DIR = Path(__file__).resolve().parent.parent / "trust"


class TrustAnchorError(ValueError):
    """A trust anchor that cannot be used; the message is one line naming the file."""


@dataclass(frozen=True)
class TrustAnchor:
    path: Path
    pem: str

    @property
    def subject(self) -> str:
        # parsed on demand: checking a file needs only the PEM, and the x509 import costs a
        # one-image check tens of milliseconds
        from cryptography import x509

        return x509.load_pem_x509_certificate(self.pem.encode("ascii")).subject.rfc4514_string()


_PEM_CERTIFICATE = re.compile(rb"-----BEGIN CERTIFICATE-----\r?\n.+?-----END CERTIFICATE-----", re.DOTALL)


def default_trust_dir() -> Path:
    """``$PROVENANCE_HOME/trust`` when that is set, else ``~/.config/provenance/trust``."""
    home = provenance_home()
    return (home / "trust") if home else Path.home() / ".config" / "provenance" / "trust"


def load_trust_anchors(
    sources: Iterable[str | Path] = (), *, use_trust_store: bool = True
) -> list[TrustAnchor]:
    """Certificates from ``sources`` (PEM files or directories of ``*.pem``), plus the stores.

    An explicit source that is missing or holds no certificate is an error; the stores are
    optional and may be empty or absent.
    """
    anchors: list[TrustAnchor] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            files = sorted(path.glob("*.pem"))
            if not files:
                raise TrustAnchorError(f"{path}: no *.pem files in this trust directory")
            for file in files:
                anchors.extend(_read_pem(file))
        elif path.is_file():
            anchors.extend(_read_pem(path))
        else:
            raise TrustAnchorError(f"{path}: trust anchor not found")
    if use_trust_store:
        for store in (default_trust_dir(), SHIPPED_TRUST_DIR):
            if store.is_dir():
                for file in sorted(store.glob("*.pem")):
                    anchors.extend(_read_pem(file))
    return _deduplicate(anchors)


def _read_pem(path: Path) -> list[TrustAnchor]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TrustAnchorError(f"{path}: cannot read: {exc.strerror or exc}") from None
    blocks = _PEM_CERTIFICATE.findall(data)
    try:
        # a certificate's DER is one ASN.1 SEQUENCE; c2pa checks the rest when it builds its trust list
        anchors = [ssl.DER_cert_to_PEM_cert(der) for der in (ssl.PEM_cert_to_DER_cert(b.decode("ascii")) for b in blocks)
                   if der[:1] == b"\x30"]
    except (ValueError, UnicodeDecodeError):
        anchors = []
    if not blocks or len(anchors) != len(blocks):
        raise TrustAnchorError(f"{path}: not a PEM certificate file")
    return [TrustAnchor(path=path, pem=pem) for pem in anchors]


def _deduplicate(anchors: list[TrustAnchor]) -> list[TrustAnchor]:
    seen: set[str] = set()
    unique = []
    for anchor in anchors:
        if anchor.pem not in seen:
            seen.add(anchor.pem)
            unique.append(anchor)
    return unique
