"""The ``provenance`` command: a thin shell over the library; each area lives in provenance/commands/."""
from __future__ import annotations

from .threads import apply_thread_policy

apply_thread_policy()  # before anything imports torch

import click  # noqa: E402

from .commands.c2pa_cmds import keys_group, sign_command  # noqa: E402
from .commands.check_cmd import check_command  # noqa: E402
from .commands.dataset_cmds import dataset_group  # noqa: E402
from .commands.demo_cmd import demo_command  # noqa: E402
from .commands.eval_cmd import eval_command  # noqa: E402
from .commands.generate_cmd import generate_command  # noqa: E402
from .commands.train_cmds import train_group  # noqa: E402
from .commands.watermark_cmds import watermark_group  # noqa: E402


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="provenance")
def main() -> None:
    """Tell whether images are synthetic, and label what generators make."""


for command in (check_command, dataset_group, demo_command, eval_command, generate_command, keys_group, sign_command, train_group, watermark_group):
    main.add_command(command)


if __name__ == "__main__":
    main()
