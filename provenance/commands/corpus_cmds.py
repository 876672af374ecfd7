"""``provenance dataset corpus rebuild|scan|summary``: the public-image corpus from local git snapshots."""
from __future__ import annotations

from pathlib import Path

import click

from .common import EXIT_FAILED, emit_json, fail, json_option

_mirror_option = click.option("--mirror-dir", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
                              help="Folder of bare snapshots, one per repository as owner+name/repo.")
_index_option = click.option("--index", "index_path", type=click.Path(dir_okay=False, path_type=Path),
                             help="Corpus index CSV (default: the one shipped with provenance).")


@click.group("corpus", context_settings={"help_option_names": ["-h", "--help"]})
def corpus_group() -> None:
    """The pinned corpus of public generator outputs and real photos (index shipped, images rebuilt)."""


@corpus_group.command("rebuild")
@_mirror_option
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@_index_option
@json_option
def rebuild_command(mirror_dir: Path, out: Path, index_path: Path | None, as_json: bool) -> None:
    """Write every indexed image into OUT from the snapshots, check each SHA-256, list what is missing.

    Exit 1 when any indexed image could not be rebuilt."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from provenance.datasets.corpus import INDEX_PATH, read_index, rebuild

    try:
        rows = read_index(index_path or INDEX_PATH)
    except (OSError, KeyError, TypeError, ValueError) as exc:
        fail(index_path or INDEX_PATH, f"not a corpus index: {exc}")
    with Progress(TextColumn("corpus"), BarColumn(), MofNCompleteColumn(), transient=True, disable=as_json) as bar:
        task = bar.add_task("rebuild", total=len(rows))
        report = rebuild(mirror_dir, out, rows, on_file=lambda: bar.advance(task))
    if as_json:
        emit_json(report.to_dict())
    else:
        for entry in report.missing:
            click.echo(f"provenance: {entry['repo']}:{entry['path']}: {entry['problem']}", err=True)
        click.echo(f"{out}: {report.written} written, {report.already_present} already present, "
                   f"{len(report.missing)} missing of {len(rows)} indexed")
    if report.missing:
        raise SystemExit(EXIT_FAILED)


@corpus_group.command("scan")
@_mirror_option
@click.option("--write-index", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the new index CSV.")
@click.option("--drop-sha256", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="File of SHA-256 digests to leave out (e.g. what reserved-check matched), one per line.")
@json_option
def scan_command(mirror_dir: Path, write_index: Path, drop_sha256: Path | None, as_json: bool) -> None:
    """Maintainers: apply the source rules to the snapshots and write a new index."""
    from provenance.datasets.corpus import scan, write_index as save

    drop = set()
    if drop_sha256:
        drop = {line.split()[0] for line in drop_sha256.read_text().splitlines() if line.strip()}
    result = scan(mirror_dir, reserved_sha256=drop)
    save(result.rows, write_index)
    if as_json:
        emit_json({"index": str(write_index), "images": len(result.rows), "dropped": result.dropped})
    else:
        click.echo(f"{write_index}: {len(result.rows)} images; dropped: "
                   + (", ".join(f"{k} {v}" for k, v in sorted(result.dropped.items())) or "none"))


@corpus_group.command("summary")
@_index_option
@json_option
def summary_command(index_path: Path | None, as_json: bool) -> None:
    """Counts per class, family and generator, with licences."""
    from provenance.datasets.corpus import INDEX_PATH, read_index, summary

    table = summary(read_index(index_path or INDEX_PATH))
    if as_json:
        emit_json(table)
        return
    for entry in table:
        click.echo(f"{entry['label']:9} {entry['family']:20} {entry['generator']:22} {entry['images']:5}  "
                   f"{'; '.join(entry['licences'])} (commercial: {'/'.join(entry['commercial'])})")
