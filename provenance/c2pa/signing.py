"""Embed a signed C2PA manifest in an image.

What the manifest claims, and why:

* ``ai_generated`` -> ``c2pa.created`` with digitalSourceType ``trainedAlgorithmicMedia`` and the
  model as softwareAgent. This is the label generators must attach.
* an explicit ``source_type`` (an IPTC name such as ``digitalCapture``) -> ``c2pa.created`` with
  that type. Only the caller knows how an image was made, so a capture claim is never implied.
* neither -> ``c2pa.opened`` with the input as its parent ingredient: "this signer vouches for
  these bytes", with no claim about their origin. A photo desk signing pictures it did not take
  should not say ``digitalCapture``.
* an input that already carries a manifest is always signed as an edit (``c2pa.opened``) with the
  earlier manifest kept as its ``parentOf`` ingredient; otherwise c2pa would silently replace the
  earlier history. ``ai_generated`` then adds a ``c2pa.edited`` action declaring AI content;
  other source types are refused, since the earlier manifest already states the origin.

Thumbnails are off: they add ~100 KB and ~85 ms per 1080p JPEG, which matters when a generator
signs thousands of images. There is no time-stamp authority (offline), so signatures last only
as long as the signing certificate (see :mod:`provenance.c2pa.keys`).
"""
from __future__ import annotations

import datetime as dt
import io
import json
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import c2pa
from cryptography import x509
from PIL import Image, UnidentifiedImageError

from provenance.imageio import ImageLoadError, LoadedImage, format_for_path, read_bytes

from .keys import KeyPaths, KeyFileError, load_keys
from .vocabulary import GENERATIVE_AI, c2pa_mime_type, source_type_uri

GENERATION_ASSERTION = "com.provenance.generation"
CLAIM_GENERATOR = "provenance"


class SigningError(ValueError):
    """Signing failed; the message is one line naming the problem."""


@dataclass(frozen=True)
class SignResult:
    source: str
    destination: Path | None
    mime_type: str
    action: str  # the manifest's first action: c2pa.created or c2pa.opened
    digital_source_type: str | None  # IPTC name, None when no origin is claimed
    parent_manifest: str | None  # label of the earlier manifest kept as parentOf ingredient
    signer: str  # common name of the signing certificate
    signer_expires: dt.datetime  # after this, with no time stamp, the manifest reads as Invalid
    manifest_bytes: int
    output_bytes: int


@dataclass(frozen=True)
class SignedAsset:
    data: bytes
    result: SignResult


@dataclass(frozen=True)
class _Claim:
    action: str
    digital_source_type: str | None
    extra_actions: list[dict] = field(default_factory=list)


def provenance_version() -> str:
    try:
        return metadata.version("provenance")
    except metadata.PackageNotFoundError:
        return "0.0"


class C2paSigner:
    """Loads the keys once and signs many images; use as a context manager or call :meth:`close`.

    ``trust_anchor_for_verify``: c2pa verifies every manifest right after signing it; giving it our
    own root keeps that check (and the parent-ingredient validation recorded in edits) free of
    "untrusted signer" noise. Default: ``root.pem`` next to the keys, when present.
    """

    def __init__(
        self,
        keys: KeyPaths | str | Path | None = None,
        *,
        trust_anchor_for_verify: str | Path | None = None,
    ):
        try:
            self.keys = load_keys(keys)
        except KeyFileError as exc:
            raise SigningError(str(exc)) from None
        chain_pem = _read_key_file(self.keys.signer_cert)
        key_pem = _read_key_file(self.keys.signer_key)
        try:
            certificate = x509.load_pem_x509_certificate(chain_pem)
        except ValueError:
            raise SigningError(f"{self.keys.signer_cert}: not a PEM certificate") from None
        self.signer_name = _common_name(certificate)
        self.signer_expires = certificate.not_valid_after_utc
        self._check_validity(certificate)

        anchor = Path(trust_anchor_for_verify) if trust_anchor_for_verify else self.keys.root_cert
        settings: dict[str, Any] = {
            "builder": {"thumbnail": {"enabled": False}},
            "verify": {"remote_manifest_fetch": False},
        }
        if anchor.is_file():
            settings["trust"] = {"user_anchors": _read_key_file(anchor).decode("ascii", "replace")}
        elif trust_anchor_for_verify:
            raise SigningError(f"{anchor}: trust anchor not found")
        try:
            signer = c2pa.Signer.from_info(
                c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain_pem, key_pem, None)
            )
        except c2pa.C2paError:
            # The message may quote the input; never echo anything derived from a private key.
            raise SigningError(f"{self.keys.signer_key}: not a usable ES256 (P-256) private key") from None
        # The Context takes ownership of the signer; Builders made from it sign with it.
        self._context = c2pa.Context.from_dict(settings, signer=signer)
        self._generator = {"name": CLAIM_GENERATOR, "version": provenance_version()}

    def close(self) -> None:
        self._context.close()

    def __enter__(self) -> "C2paSigner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def sign(
        self,
        source: str | Path | bytes | LoadedImage,
        destination: str | Path,
        **claims,
    ) -> SignResult:
        """Sign ``source`` and write the signed image to ``destination`` (may be the same path).

        Keyword arguments are those of :meth:`sign_bytes`.
        """
        destination = Path(destination)
        data, mime_type, label = _source_bytes(source)
        mime_type = c2pa_mime_type(mime_type or _sniff_mime_type(data, label))
        _check_extension(destination, mime_type)
        signed = self.sign_bytes(data, mime_type=mime_type, source_name=label, title=destination.name,
                                 **claims)
        try:
            destination.write_bytes(signed.data)
        except OSError as exc:
            raise SigningError(f"{destination}: cannot write: {exc.strerror or exc}") from None
        return replace(signed.result, destination=destination)

    def sign_bytes(
        self,
        data: bytes,
        *,
        mime_type: str | None = None,
        ai_generated: bool = False,
        source_type: str | None = None,
        model: str | None = None,
        model_version: str | None = None,
        extra_assertion: dict | None = None,
        title: str | None = None,
        source_name: str = "<bytes>",
    ) -> SignedAsset:
        """Sign an encoded image held in memory; returns the signed bytes and what was claimed."""
        mime_type = c2pa_mime_type(mime_type or _sniff_mime_type(data, source_name))
        if mime_type not in c2pa.Builder.get_supported_mime_types():
            raise SigningError(f"{source_name}: C2PA signing does not support {mime_type}")
        if ai_generated and source_type and source_type not in GENERATIVE_AI:
            raise SigningError(f"--ai-generated contradicts source type {source_type!r}")
        if ai_generated and not source_type:
            source_type = "trainedAlgorithmicMedia"
        if source_type:
            try:
                source_type_uri(source_type)
            except ValueError as exc:
                raise SigningError(str(exc)) from None

        parent_label = self._existing_manifest(data, mime_type, source_name)
        claim = self._claim(parent_label, source_type, model, model_version, source_name)
        manifest: dict[str, Any] = {"claim_generator_info": [self._generator], "assertions": []}
        if title:
            manifest["title"] = title
        if claim.action == "c2pa.created":
            created = _action(claim.action, source_type, model, model_version)
            manifest["assertions"].append({"label": "c2pa.actions.v2", "data": {"actions": [created]}})
        generation = _generation_assertion(model, model_version, extra_assertion)
        if generation:
            manifest["assertions"].append({"label": GENERATION_ASSERTION, "data": generation})

        output = io.BytesIO()
        try:
            with c2pa.Builder(manifest, context=self._context) as builder:
                if claim.action == "c2pa.opened":
                    builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
                    builder.add_ingredient(
                        {"title": Path(source_name).name, "relationship": "parentOf"}, mime_type, io.BytesIO(data)
                    )
                    for action in claim.extra_actions:
                        builder.add_action(action)
                manifest_store = builder.sign(mime_type, io.BytesIO(data), output)
        except c2pa.C2paError as exc:
            raise SigningError(f"{source_name}: signing failed: {_c2pa_message(exc)}") from None
        signed = output.getvalue()
        return SignedAsset(
            data=signed,
            result=SignResult(
                source=source_name,
                destination=None,
                mime_type=mime_type,
                action=claim.action,
                digital_source_type=claim.digital_source_type,
                parent_manifest=parent_label,
                signer=self.signer_name,
                signer_expires=self.signer_expires,
                manifest_bytes=len(manifest_store),
                output_bytes=len(signed),
            ),
        )

    def _claim(self, parent_label, source_type, model, model_version, source_name) -> _Claim:
        if parent_label is None:
            if source_type:
                return _Claim("c2pa.created", source_type)
            return _Claim("c2pa.opened", None)
        if source_type is None:
            return _Claim("c2pa.opened", None)
        if source_type in GENERATIVE_AI:
            return _Claim("c2pa.opened", source_type, [_action("c2pa.edited", source_type, model, model_version)])
        raise SigningError(
            f"{source_name}: already carries a C2PA manifest that states its origin; "
            f"it can be re-signed as an edit, but not re-declared as {source_type}"
        )

    def _existing_manifest(self, data: bytes, mime_type: str, source_name: str) -> str | None:
        """Label of the input's active manifest, or None when it has none."""
        try:
            reader = c2pa.Reader.try_create(mime_type, io.BytesIO(data), None, self._context)
        except c2pa.C2paError as exc:
            raise SigningError(
                f"{source_name}: cannot read its existing C2PA data: {_c2pa_message(exc)}"
            ) from None
        if reader is None:
            return None
        with reader:
            return json.loads(reader.json()).get("active_manifest") or "unlabelled manifest"

    def _check_validity(self, certificate: x509.Certificate) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        if now < certificate.not_valid_before_utc:
            raise SigningError(
                f"{self.keys.signer_cert}: signing certificate is not valid until "
                f"{certificate.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        if now > certificate.not_valid_after_utc:
            raise SigningError(
                f"{self.keys.signer_cert}: signing certificate expired on "
                f"{certificate.not_valid_after_utc:%Y-%m-%d}; run `provenance keys init --force`"
            )


def sign_file(
    source: str | Path | bytes | LoadedImage,
    destination: str | Path,
    *,
    keys: KeyPaths | str | Path | None = None,
    trust_anchor_for_verify: str | Path | None = None,
    **claims,
) -> SignResult:
    """One-shot :meth:`C2paSigner.sign`; for many files build one :class:`C2paSigner` instead."""
    with C2paSigner(keys, trust_anchor_for_verify=trust_anchor_for_verify) as signer:
        return signer.sign(source, destination, **claims)


def _action(action: str, source_type: str, model: str | None, model_version: str | None) -> dict:
    entry: dict[str, Any] = {"action": action, "digitalSourceType": source_type_uri(source_type)}
    if model:
        entry["softwareAgent"] = {"name": model, **({"version": model_version} if model_version else {})}
    return entry


def _generation_assertion(model, model_version, extra: dict | None) -> dict:
    data = {"model": model, "model_version": model_version}
    data = {k: v for k, v in data.items() if v is not None}
    if extra:
        try:
            json.dumps(extra)
        except (TypeError, ValueError) as exc:
            raise SigningError(f"extra assertion is not JSON-serialisable: {exc}") from None
        data.update(extra)
    return data


def _source_bytes(source: str | Path | bytes | LoadedImage) -> tuple[bytes, str | None, str]:
    if isinstance(source, LoadedImage):
        return source.data, source.mime_type, source.source
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source), None, "<bytes>"
    try:
        return read_bytes(source), None, str(source)
    except ImageLoadError as exc:
        raise SigningError(f"{source}: {exc}") from None


def _sniff_mime_type(data: bytes, source_name: str) -> str:
    """The format from the header only: decoding pixels would cost more than signing."""
    if not data:
        raise SigningError(f"{source_name}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise SigningError(f"{source_name}: not a recognised image format") from None
    except Exception:  # noqa: BLE001 - Pillow raises many types on hostile headers
        raise SigningError(f"{source_name}: unreadable image header") from None
    mime_type = Image.MIME.get(fmt or "")
    if not mime_type:
        raise SigningError(f"{source_name}: no MIME type known for format {fmt}")
    return mime_type


def _check_extension(destination: Path, mime_type: str | None) -> None:
    """Signing never converts formats, so a .png name on JPEG bytes would only mislead."""
    if mime_type is None:
        return
    try:
        fmt = format_for_path(destination)
    except ImageLoadError:
        return  # unknown extension: nothing to contradict
    expected = Image.MIME.get(fmt)
    if expected and c2pa_mime_type(expected) != mime_type:
        raise SigningError(
            f"{destination}: the extension says {fmt} but the image is {mime_type}; "
            "signing does not convert formats"
        )


def _read_key_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SigningError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _common_name(certificate: x509.Certificate) -> str:
    names = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(names[0].value) if names else certificate.subject.rfc4514_string()


def _c2pa_message(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    text = " ".join(line.strip() for line in lines[:2]) if lines else type(exc).__name__
    return text[:300]
