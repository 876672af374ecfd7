"""The one progress bar of the CLI: on stderr, only when stderr is a terminal (so ``--json`` output
and logs stay clean), with a label, done/total and the time left."""
from __future__ import annotations

import json
from contextlib import contextmanager
from typing import Callable, Iterator

import click


class Bar:
    """What a command moves; does nothing when no bar is shown."""

    def __init__(self, progress=None, task=None):
        self._progress, self._task = progress, task

    def update(self, completed: int | None = None, total: int | None = None, note: str | None = None) -> None:
        if self._progress is None:
            return
        fields = {"note": note} if note is not None else {}
        if total is not None:
            fields["total"] = total
        self._progress.update(self._task, completed=completed, **fields)

    def advance(self, steps: int = 1) -> None:
        if self._progress is not None:
            self._progress.advance(self._task, steps)


def on_terminal() -> bool:
    from rich.console import Console

    return Console(stderr=True).is_terminal


@contextmanager
def progress_bar(label: str, total: int | None = None, completed: int = 0, enabled: bool = True,
                 transient: bool = True, note: bool = False) -> Iterator[Bar]:
    """``with progress_bar("checking", total=n) as bar: ... bar.advance()``. ``note`` adds a text
    column the command fills with ``bar.update(note=...)`` (e.g. training losses)."""
    if not enabled or not on_terminal():
        yield Bar()
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()]
    if note:
        columns.append(TextColumn("{task.fields[note]}"))
    with Progress(*columns, console=Console(stderr=True), transient=transient) as progress:
        yield Bar(progress, progress.add_task(label, total=total, completed=completed, note=""))


@contextmanager
def training_progress(total: int, completed: int = 0) -> Iterator[Callable[[dict], None]]:
    """An ``on_log`` callback: a progress bar with the latest losses on a terminal, else one JSON
    line per log record on stderr (for log files)."""
    if not on_terminal():
        yield lambda record: click.echo(json.dumps(record), err=True)
        return
    # The total shows once a first record arrives: a closed-form fit reports none and stays a spinner.
    with progress_bar("training", completed=completed, transient=False, note=True) as bar:
        def on_log(record: dict) -> None:
            shown = {k: v for k, v in record.items() if k not in ("step", "seconds", "load_1m")}
            bar.update(completed=record["step"], total=total,
                       note=" ".join(f"{k}={v:.3g}" for k, v in shown.items()))

        yield on_log


# -- generators ------------------------------------------------------------------------------------
