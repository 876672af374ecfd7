"""The ``provenance`` command: a thin shell over the library; each area lives in provenance/commands/.

Subcommands are imported only when invoked (``provenance check`` does not import the training,
dataset or signing code), so a one-image check starts fast.
"""
from __future__ import annotations

import importlib

from .threads import apply_thread_policy

apply_thread_policy()  # before anything imports torch

import click  # noqa: E402

# name -> "module:attribute" under provenance.commands
COMMANDS = {
    "check": "check_cmd:check_command",
    "dataset": "dataset_cmds:dataset_group",
    "demo": "demo_cmd:demo_command",
    "eval": "eval_cmd:eval_command",
    "generate": "generate_cmd:generate_command",
    "keys": "c2pa_cmds:keys_group",
    "serve": "serve_cmd:serve_command",
    "sign": "c2pa_cmds:sign_command",
    "train": "train_cmds:train_group",
    "watermark": "watermark_cmds:watermark_group",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use (click's documented lazy-loading pattern)."""

    def __init__(self, *args, lazy_commands: dict[str, str], **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = lazy_commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy_commands})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy_commands and name not in self.commands:
            module, _, attribute = self.lazy_commands[name].partition(":")
            self.add_command(getattr(importlib.import_module(f"provenance.commands.{module}"), attribute), name)
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="provenance")
def main() -> None:
    """Tell whether images are synthetic, and label what generators make."""


if __name__ == "__main__":
    main()
