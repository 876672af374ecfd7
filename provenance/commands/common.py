"""Conventions shared by every command: one-line errors, --json output, exit codes.

Exit codes (documented in README):
  0  success (for ``check``: every file checked, none synthetic or likely synthetic)
  1  ``check``: at least one file is synthetic or likely synthetic; other commands: the work failed
  2  usage error (bad option or argument; click's own exit status for usage errors)
  4  ``check``: at least one file could not be checked (added to 1 when both happen: 5)
"""
from __future__ import annotations

import json
import sys
from typing import NoReturn

import click

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_FOUND_SYNTHETIC = 1
EXIT_SOME_FILES_FAILED = 4
EXIT_USAGE = 2  # what click gives a usage error; also a missing optional extra named by a flag


def crop_sides(ctx, param, value: str) -> list[int]:
    """Click callback: a comma-separated list of crop sides in px ("384,256"), as a usage error if not."""
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"not a list of sides in px: {value!r}") from None


def error_line(source: object, problem: str) -> str:
    return f"provenance: {source}: {problem}"


def fail(source: object, problem: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print one line naming the file and the problem, then exit; never a traceback."""
    click.echo(error_line(source, problem), err=True)
    sys.exit(code)


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output (JSON).")
