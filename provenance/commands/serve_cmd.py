"""``provenance serve``: the HTTP API and the web page (needs the ``[serve]`` extra)."""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import click

from .common import EXIT_FAILED, fail

SERVE_MODULES = {"fastapi": "fastapi", "uvicorn": "uvicorn", "python_multipart": "python-multipart",
                 "fastapi_offline": "fastapi-offline"}


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind. Anything but loopback needs --token.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Server processes; each loads the models once.")
@click.option("--trust", "trust_anchors", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="PEM file (or folder of PEMs) of C2PA trust anchors; repeatable.")
@click.option("--no-trust-store", is_flag=True, help="Use only --trust anchors, not the user's trust store.")
@click.option("--detector", "detector_names", multiple=True,
              help="Run only these detectors (repeatable). Default: as `provenance check`.")
@click.option("--token", envvar="PROVENANCE_TOKEN", show_envvar=True,
              help="Require `Authorization: Bearer TOKEN` on /v1/*.")
@click.option("--max-upload-mb", default=50, show_default=True, type=click.IntRange(1),
              help="Largest request body, counted while it streams in (413 beyond).")
@click.option("--max-files", default=16, show_default=True, type=click.IntRange(1), help="Files per request.")
@click.option("--max-megapixels", default=50, show_default=True, type=click.IntRange(1),
              help="Refuse images with more pixels (read from the header, before decoding).")
@click.option("--timeout", "time_budget_s", default=60.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Seconds per request: upload, queue wait and check.")
@click.option("--concurrency", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Checks running at once in each process.")
@click.option("--queue", "queue_size", default=64, show_default=True, type=click.IntRange(0),
              help="Requests allowed to wait per process; beyond that 503 with Retry-After.")
def serve_command(host, port, workers, trust_anchors, no_trust_store, detector_names, token, max_upload_mb,
                  max_files, max_megapixels, time_budget_s, concurrency, queue_size):
    """Serve `check` over HTTP (POST /v1/check, OpenAPI at /docs) with a web page at /.

    \b
    Binds to 127.0.0.1 by default. Exit status: 0 stopped cleanly, 1 could not start
    (missing [serve] extra, bad trust anchors), 2 usage error.
    """
    from provenance.allocator import apply_allocator_policy

    apply_allocator_policy()
    missing = [package for module, package in SERVE_MODULES.items() if importlib.util.find_spec(module) is None]
    if missing:
        fail("serve", f"needs the [serve] extra ({', '.join(missing)} not installed): pip install 'provenance[serve]'")
    from provenance.service.config import ServiceConfig, is_loopback

    if not is_loopback(host) and not token:
        raise click.UsageError(f"--host {host} is reachable from other machines: set --token (or PROVENANCE_TOKEN)")
    try:
        config = ServiceConfig(
            max_upload_bytes=max_upload_mb * 2**20, max_files=max_files, max_pixels=max_megapixels * 1_000_000,
            time_budget_s=time_budget_s, concurrency=concurrency, queue_size=queue_size, token=token or None,
            detectors=tuple(detector_names) or None, trust_anchors=tuple(str(p) for p in trust_anchors),
            use_trust_store=not no_trust_store)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _run(config, host, port, workers)


def _run(config, host: str, port: int, workers: int) -> None:
    import uvicorn

    from provenance.check import Checker
    from provenance.service.app import CONFIG_ENV, app_from_environment, configure_logging, create_app

    try:
        checker = Checker(config.check_config())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        checker.detectors  # noqa: B018 - builds them now, so a bad trust anchor fails here, in one line
    except (ValueError, OSError) as exc:
        fail("serve", str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    configure_logging()
    click.echo(f"provenance serve: http://{host}:{port}/ (API docs at /docs); loading models...", err=True)
    options = dict(host=host, port=port, access_log=False, log_level="info", server_header=False)
    try:
        if workers == 1:
            uvicorn.run(create_app(config, checker), **options)
        else:
            os.environ[CONFIG_ENV] = config.to_json()
            uvicorn.run(f"{app_from_environment.__module__}:{app_from_environment.__name__}", factory=True,
                        workers=workers, **options)
    except OSError as exc:
        fail(f"{host}:{port}", exc.strerror or str(exc), EXIT_FAILED)
