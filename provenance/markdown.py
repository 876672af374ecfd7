"""Markdown tables: model cards, dataset cards and benchmarks print the same kind."""
from __future__ import annotations


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    cells = [[str(c) for c in row] for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for n, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if n == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def code_section(heading: str, lines: list[str]) -> list[str]:
    """A card section holding one fenced code block (e.g. the commands that reproduce a model)."""
    return [heading, "", "```", *lines, "```", ""]


def with_last_section(card: str, heading: str, lines: list[str]) -> str:
    """``card`` with its section under ``heading`` (to the next ``## `` heading) removed and ``lines``
    (starting with that heading) appended at the end: a re-run replaces what a run wrote."""
    start = card.find(heading)
    if start >= 0:
        end = card.find("\n## ", start + len(heading))
        card = card[:start].rstrip("\n") + "\n" + (card[end:] if end >= 0 else "")
    return card.rstrip("\n") + "\n\n" + "\n".join(lines)
