"""``--engine local|ray`` and the Ray options, shared by ``check`` and ``dataset build``."""
from __future__ import annotations

import click

from .common import EXIT_USAGE, fail


def engine_options(command):
    """Adds ``engine``, ``address`` and ``num_workers`` parameters."""
    for option in reversed([
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help="Where the work runs: this machine, or a Ray cluster (pip install 'provenance[ray]')."),
        click.option("--address", default=None, metavar="auto|ray://HOST:PORT",
                     help="Ray cluster to use (--engine ray); default: start Ray on this machine."),
        click.option("--num-workers", type=click.IntRange(min=1), default=None,
                     help="Ray actors, each loading the models once (--engine ray; default: 2 for check, "
                          "--workers for dataset build)."),
    ]):
        command = option(command)
    return command


def ray_options(address: str | None, num_workers: int | None, default_workers: int = 2):
    """The library's :class:`RayOptions`, or a one-line usage error (exit 2) saying how to install Ray."""
    from provenance.engines.ray_engine import RayEngineError, RayOptions, require_ray

    try:
        require_ray()
    except RayEngineError as exc:
        fail("--engine ray", str(exc), EXIT_USAGE)
    return RayOptions(address=address, num_workers=num_workers or default_workers)


def refuse_ray_only_options(engine: str, **given) -> None:
    if engine != "ray":
        used = [f"--{name.replace('_', '-')}" for name, value in given.items() if value is not None]
        if used:
            raise click.UsageError(f"{', '.join(used)} only applies with --engine ray")
