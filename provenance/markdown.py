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
