"""How an exception is reported in one line: batch records, error evidence and CLI messages."""
from __future__ import annotations


def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first non-empty line of ``str(exc)`` (``KeyError`` quotes dropped); with ``with_type``,
    prefixed by the exception's class name, for records where a bug must stay recognisable."""
    text = str(exc).strip()
    if isinstance(exc, KeyError) and len(exc.args) == 1 and isinstance(exc.args[0], str):
        text = exc.args[0].strip()
    line = text.splitlines()[0] if text else ""
    if not with_type:
        return line or type(exc).__name__
    return f"{type(exc).__name__}: {line}" if line else type(exc).__name__
