"""``provenance demo``: the whole loop on a shipped sample photo, with throw-away keys."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from .check_cmd import print_verdict
from .common import emit_json, json_option


@click.command("demo")
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the demo keys and images (default: a new temporary folder, kept).")
@json_option
def demo_command(directory, as_json):
    """Make demo keys, mark and sign a sample photo, make an unlabelled GAN image and a chart, then check them."""
    from provenance.demo import run_demo

    directory = directory or Path(tempfile.mkdtemp(prefix="provenance-demo-"))
    cases = run_demo(directory)
    if as_json:
        emit_json([{"what": c.what, **c.verdict.to_dict()} for c in cases])
        return
    click.echo(f"demo files and throw-away keys in {directory}\n")
    for case in cases:
        click.secho(f"# {case.what}", dim=True)
        print_verdict(case.verdict, verbose=False)
        click.echo()
