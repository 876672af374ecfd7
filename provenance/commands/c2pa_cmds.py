"""``provenance keys init`` and ``provenance sign``: local C2PA signing keys and signing."""
from __future__ import annotations

from pathlib import Path

import click

from provenance.c2pa.keys import DEFAULT_SIGNER_DAYS, KeyFileError, default_key_dir, init_keys
from provenance.c2pa.signing import C2paSigner, SigningError
from provenance.c2pa.trust import default_trust_dir
from provenance.c2pa.vocabulary import SOURCE_TYPES
from provenance.imageio import ImageLoadError

from .common import emit_json, fail, json_option


@click.group("keys")
def keys_group() -> None:
    """Manage the local C2PA signing keys."""


@keys_group.command("init")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the keys (default: $PROVENANCE_HOME/keys or ~/.config/provenance/keys).")
@click.option("--force", is_flag=True, help="Replace existing keys. Files signed with the old key stay "
              "valid only until the old certificate expires.")
@click.option("--common-name", default="provenance local signer", show_default=True,
              help="Name shown as the signer of every manifest.")
@click.option("--organization", default=None,
              help="Organisation named in the certificate (readers show it as the issuer).")
@click.option("--days", type=click.IntRange(1), default=DEFAULT_SIGNER_DAYS, show_default=True,
              help="Lifetime of the signing certificate.")
@json_option
def init_command(directory: Path | None, force: bool, common_name: str, organization: str | None, days: int,
                 as_json: bool) -> None:
    """Create a local root CA and an ES256 signing certificate.

    There is no time-stamp authority (signing works offline), so a signed file reads as Invalid
    once the signing certificate expires: --days is how long signatures made with it last.
    Readers see your signatures as Valid but untrusted until they trust root.pem.
    """
    target = directory or default_key_dir()
    try:
        paths = init_keys(target, common_name=common_name, organization=organization, days=days, force=force)
    except KeyFileError as exc:
        fail(target, str(exc).removeprefix(f"{target}: "))
    except OSError as exc:
        fail(target, f"cannot write keys: {exc.strerror or exc}")
    trust_hint = (
        f"to trust these signatures: provenance check --trust {paths.root_cert} ..., "
        f"or copy {paths.root_cert.name} into {default_trust_dir()}/"
    )
    if as_json:
        emit_json({
            "directory": str(paths.directory),
            "root_cert": str(paths.root_cert),
            "root_key": str(paths.root_key),
            "signer_cert": str(paths.signer_cert),
            "signer_key": str(paths.signer_key),
            "signer_days": days,
            "trust_hint": trust_hint,
        })
        return
    click.echo(f"root certificate:    {paths.root_cert}")
    click.echo(f"root key:            {paths.root_key} (mode 0600)")
    click.echo(f"signing certificate: {paths.signer_cert} (valid {days} days)")
    click.echo(f"signing key:         {paths.signer_key} (mode 0600)")
    click.echo(trust_hint)


@click.command("sign")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "destination", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the signed image (same format as the input; may equal SOURCE).")
@click.option("--ai-generated", is_flag=True, help="Declare the image AI-generated (trainedAlgorithmicMedia).")
@click.option("--model", help="Generator model name, recorded as the softwareAgent.")
@click.option("--model-version", help="Generator model version.")
@click.option("--source-type", type=click.Choice(SOURCE_TYPES), default=None,
              help="Declare how the image was made (IPTC digital source type), e.g. digitalCapture for "
                   "a photo you took. Without it or --ai-generated, no origin is claimed.")
@click.option("--keys", "keys_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Key directory (default: $PROVENANCE_HOME/keys or ~/.config/provenance/keys).")
@json_option
def sign_command(source: Path, destination: Path, ai_generated: bool, model: str | None,
                 model_version: str | None, source_type: str | None, keys_dir: Path | None, as_json: bool) -> None:
    """Embed a signed C2PA manifest in SOURCE and write it to --out.

    A file that already has a manifest is signed as an edit that keeps the earlier manifest as
    its parent. Without a time-stamp authority the signature lasts as long as the signing
    certificate (see `provenance keys init --help`).
    """
    if (model or model_version) and not (ai_generated or source_type):
        fail(source, "--model and --model-version describe a generator; add --ai-generated", code=2)
    try:
        with C2paSigner(keys_dir) as signer:
            result = signer.sign(source, destination, ai_generated=ai_generated, source_type=source_type,
                                 model=model, model_version=model_version)
    except (SigningError, ImageLoadError) as exc:
        fail(source, str(exc).removeprefix(f"{source}: "))
    except OSError as exc:
        fail(source, exc.strerror or str(exc))
    claim = result.digital_source_type or "no origin claimed"
    if as_json:
        emit_json({
            "source": str(source),
            "destination": str(result.destination),
            "mime_type": result.mime_type,
            "action": result.action,
            "digital_source_type": result.digital_source_type,
            "parent_manifest": result.parent_manifest,
            "signer": result.signer,
            "signer_expires": result.signer_expires.isoformat(),
            "manifest_bytes": result.manifest_bytes,
        })
        return
    kept = ", earlier manifest kept as parent" if result.parent_manifest else ""
    click.echo(f"{result.destination}: signed by {result.signer} ({result.action}, {claim}{kept}); "
               f"valid until {result.signer_expires:%Y-%m-%d}")
