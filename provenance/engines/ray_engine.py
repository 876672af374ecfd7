"""Ray Data engine: ``check`` and ``dataset build`` across a Ray cluster, with one machine's results.

How the work is spread: inputs become rows of a Ray dataset, cut into blocks of ``batch_size`` rows;
an actor pool of ``num_workers`` actors takes the blocks as they come. Each actor builds one
:class:`~provenance.check.Checker` (or one dataset ``ItemMaker``) when it starts, so models load
once per actor, never per batch. Reads and writes are Ray tasks that reserve no CPU, so they keep
flowing while the actors fill the cluster.

``check``: OUT is a Parquet or JSONL dataset written by Ray's own writers, one file per block, one
row per image. A run skips every input whose path is already recorded in OUT, so after a killed job
the same command finishes the rest (a file the kill left half-written is set aside and its images
are checked again).

``dataset build``: the local build's plan, files and records (:func:`provenance.datasets.build_dataset`);
only the mapping of planned items to workers is Ray's. Each item is written atomically and
recorded after its file, so a killed job resumes exactly as a local one does.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sys
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from detectors.results import Label, Verdict
from provenance.check import NamedBytes
from provenance.errors import first_line
from provenance.imageio import ImageLoadError, LoadLimits

if TYPE_CHECKING:
    import pyarrow

    from provenance.check import CheckConfig, Source

INSTALL_HINT = "pip install 'provenance[ray]'"
# Reads and writes are light. Reserving a CPU for them would make them queue behind a pool that fills
# the cluster: nothing would be written until every check is done, and a killed job would lose it all.
IO_CPUS = 0
OUT_FORMATS = {"parquet": ".parquet", "jsonl": ".json"}  # Ray's JSON writer writes JSON lines to *.json
TABLE_READERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json"}
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class RayEngineError(RuntimeError):
    """One line: what is wrong with the Ray set-up, the input or the output."""


def require_ray():
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import pyarrow  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise RayEngineError(f"the Ray engine needs Ray Data; install it with: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    address: str | None = None  # None: a Ray started on this machine; "auto": the running cluster; "ray://HOST:PORT"
    num_workers: int = 2  # actors, each holding one copy of the models
    batch_size: int = 8  # images per block: the unit of work, of output files and of what a kill can lose
    cpus_per_worker: float = 1.0


@contextmanager
def ray_session(options: RayOptions):
    """The Ray already initialised in this process, else one started (or joined) here and shut down after."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    try:
        if options.address:
            ray.init(address=options.address)
        else:
            ray.init(include_dashboard=False)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = options.address or "a new local instance"
        raise RayEngineError(f"cannot start or reach Ray at {where}: {first_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def actor_pool(ray, options: RayOptions) -> dict:
    """``map_batches`` arguments for a pool of ``num_workers`` actors. The pool reserves at most all CPUs
    but one: Ray Data's file listing always asks for a whole CPU, and would wait forever behind a pool
    that holds them all (a 2-worker pool on a 2-core machine, say)."""
    cpus = ray.cluster_resources().get("CPU", 0)
    per_actor = min(options.cpus_per_worker, max(cpus - 1, 0) / options.num_workers)
    return {"compute": ray.data.ActorPoolStrategy(size=options.num_workers), "num_cpus": per_actor}


def is_uri(path: str) -> bool:
    return bool(_URI.match(path))


# -- check: inputs ------------------------------------------------------------------------------
def list_inputs(source: str) -> list[str]:
    """The images of a local folder (as the local engine walks it) or the lines of a file of paths/URIs.
    Local paths are made absolute: they are the keys that resume matches against OUT."""
    from provenance.check import expand_paths

    if is_uri(source):
        raise RayEngineError(f"{source}: a remote INPUT must be a Parquet or JSONL table (.parquet, .jsonl); "
                             "a folder or a file of paths must be local")
    path = Path(source)
    if path.is_dir():
        return [os.path.abspath(p) for p in expand_paths([path])]
    if not path.is_file():
        raise RayEngineError(f"{source}: no such folder or file")
    lines = (line.strip() for line in path.read_text(errors="replace").splitlines())
    return [line if is_uri(line) else os.path.abspath(line) for line in lines if line and not line.startswith("#")]


def row_key(path: str | None, data: bytes | None, base: str) -> str:
    """The path an output row is known by: an absolute path or URI, else the sha256 of the bytes."""
    if path:
        return path if is_uri(path) else os.path.normpath(os.path.join(base, path))
    return "sha256:" + hashlib.sha256(data or b"").hexdigest()


def keyed_rows(batch: pyarrow.Table, base: str, done: frozenset[str]) -> pyarrow.Table:
    """A table's rows as ``path`` (the key) and ``bytes``, less those already in OUT."""
    import pyarrow as pa

    names = batch.column_names
    paths = batch.column("path").to_pylist() if "path" in names else [None] * batch.num_rows
    blobs = batch.column("bytes").to_pylist() if "bytes" in names else [None] * batch.num_rows
    keys = [row_key(p, b, base) for p, b in zip(paths, blobs)]
    rows = pa.table({"path": pa.array(keys, pa.string()), "bytes": pa.array(blobs, pa.binary())})
    return rows.filter(pa.array([key not in done for key in keys], pa.bool_()))


def table_dataset(source: str, reader: str, done: frozenset[str], batch_size: int):
    """A table's rows (``path``, ``bytes``) still to check."""
    ray = require_ray()
    try:
        if reader == "parquet":
            table = ray.data.read_parquet(source, num_cpus=IO_CPUS)
        else:
            table = ray.data.read_json(source, lines=True, num_cpus=IO_CPUS)
        names = table.schema().names
    except (OSError, ValueError, ray.exceptions.RayError) as exc:
        raise RayEngineError(f"{source}: cannot read the table: {first_line(exc)}") from None
    if "path" not in names and "bytes" not in names:
        raise RayEngineError(f"{source}: the table needs a 'path' or 'bytes' column; it has {', '.join(names)}")
    return table.map_batches(keyed_rows, fn_kwargs={"base": os.getcwd(), "done": done}, batch_size=batch_size,
                             batch_format="pyarrow", num_cpus=IO_CPUS)


def read_uri(uri: str, limits: LoadLimits) -> bytes:
    """A remote file's bytes through Arrow's file systems (S3, GCS, HDFS, ...), size checked first."""
    import pyarrow
    import pyarrow.fs

    try:
        filesystem, where = pyarrow.fs.FileSystem.from_uri(uri)
        info = filesystem.get_file_info(where)
        if info.type == pyarrow.fs.FileType.NotFound:
            raise ImageLoadError("file not found")
        if info.type != pyarrow.fs.FileType.File:
            raise ImageLoadError("not a regular file")
        if info.size is not None and info.size > limits.max_bytes:
            raise ImageLoadError(f"file is {info.size / 2**20:.0f} MiB, "
                                 f"over the {limits.max_bytes / 2**20:.0f} MiB limit")
        with filesystem.open_input_stream(where) as stream:
            return stream.read()
    except (OSError, pyarrow.ArrowException) as exc:
        raise ImageLoadError(f"cannot read: {first_line(exc)}") from None


def row_source(path: str, data: bytes | None, limits: LoadLimits) -> Source:
    """The Checker source of one input row: its bytes named by its path, a URI's bytes, or a local path."""
    if data is not None:
        return NamedBytes(path, data)
    if is_uri(path):
        return NamedBytes(path, read_uri(path, limits))
    return path


# -- check: workers and records -----------------------------------------------------------------
def record_schema() -> pyarrow.Schema:
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("label", pa.string()), ("reasons", pa.list_(pa.string())),
                      ("evidence", pa.string()), ("image", pa.string()), ("error", pa.string()),
                      ("seconds", pa.float64()), ("worker", pa.string())])


def verdict_record(path: str, verdict: Verdict, worker: str) -> dict[str, Any]:
    """One OUT row; evidence and the image summary as JSON text, so every file has one schema."""
    return {"path": path, "label": verdict.label.value, "reasons": list(verdict.reasons),
            "evidence": json.dumps([e.to_dict() for e in verdict.evidence]), "image": json.dumps(verdict.image),
            "error": verdict.error or "", "seconds": float(verdict.seconds), "worker": worker}


class CheckWorker:
    """One actor: one Checker with its models loaded at start; blocks of rows in, verdict records out."""

    def __init__(self, config: CheckConfig | None, threads: int = 1):
        from provenance.allocator import apply_allocator_policy
        from provenance.check import Checker

        apply_allocator_policy()
        # A fractional CPU reservation leaves Ray's thread defaults to the libraries: pin them to our share.
        os.environ["OMP_NUM_THREADS"] = str(threads)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(threads)
        self.checker = Checker(config)
        _ = self.checker.detectors  # build every detector (loading its models) now, once for this actor
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        import pyarrow as pa

        paths = batch.column("path").to_pylist()
        verdicts = self.check_rows(paths, batch.column("bytes").to_pylist())
        records = [verdict_record(p, v, self.worker) for p, v in zip(paths, verdicts)]
        return pa.Table.from_pylist(records, schema=record_schema())

    def check_rows(self, paths: list[str], blobs: list[bytes | None]) -> list[Verdict]:
        limits = self.checker.config.limits
        sources, unreadable = [], {}
        for index, (path, data) in enumerate(zip(paths, blobs)):
            try:
                sources.append(row_source(path, data, limits))
            except ImageLoadError as exc:
                unreadable[index] = Verdict(path, Label.ERROR, [str(exc)], error=str(exc))
        checked = iter(self.checked(sources))
        return [unreadable[i] if i in unreadable else next(checked) for i in range(len(paths))]

    def checked(self, sources: list[Source]) -> list[Verdict]:
        """The batch's verdicts; should a detector raise, the batch is redone one image at a time so
        only the image that raised gets an error verdict (and the job, which could never finish, goes on)."""
        try:
            return self.checker.check(sources)
        except Exception:  # noqa: BLE001 - any failure of one image must not stop the cluster job
            verdicts = []
            for source in sources:
                try:
                    verdicts += self.checker.check([source])
                except Exception as exc:  # noqa: BLE001
                    name = source.name if isinstance(source, NamedBytes) else str(source)
                    problem = f"the check failed: {type(exc).__name__}: {first_line(exc)}"
                    verdicts.append(Verdict(name, Label.ERROR, [problem], error=problem))
            return verdicts


# -- check: OUT ---------------------------------------------------------------------------------
def _out_filesystem(out: str):
    import pyarrow.fs

    if is_uri(out):
        return pyarrow.fs.FileSystem.from_uri(out)
    return pyarrow.fs.LocalFileSystem(), os.path.abspath(out)


def _read_records(filesystem, path: str, out_format: str) -> pyarrow.Table:
    import pyarrow.json
    import pyarrow.parquet

    if out_format == "parquet":
        return pyarrow.parquet.read_table(path, filesystem=filesystem, columns=["path", "label"])
    with filesystem.open_input_file(path) as stream:
        return pyarrow.json.read_json(stream).select(["path", "label"])


def recorded(out: str, out_format: str) -> tuple[dict[str, str], list[str]]:
    """path -> label for every record in OUT, and notes on files set aside: a file a killed job left
    half-written cannot be read, so it is renamed to a hidden ``.NAME.unreadable`` (which readers
    skip) and its images are checked again."""
    import pyarrow
    import pyarrow.fs

    filesystem, root = _out_filesystem(out)
    suffix = OUT_FORMATS[out_format]
    labels: dict[str, str] = {}
    notes: list[str] = []
    for info in filesystem.get_file_info(pyarrow.fs.FileSelector(root, allow_not_found=True)):
        if info.type != pyarrow.fs.FileType.File or not info.base_name.endswith(suffix) \
                or info.base_name.startswith((".", "_")):
            continue
        try:
            table = _read_records(filesystem, info.path, out_format)
        except (OSError, KeyError, pyarrow.ArrowException) as exc:
            filesystem.move(info.path, f"{root}/.{info.base_name}.unreadable")
            notes.append(f"{info.path}: set aside, unreadable ({first_line(exc)}); its images are checked again")
            continue
        labels.update(zip(table.column("path").to_pylist(), table.column("label").to_pylist()))
    return labels, notes


@dataclass
class RayCheckResult:
    out: str
    checked_now: int
    already_done: int
    counts: dict[str, int]  # label -> images, over every record in OUT
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"out": self.out, "checked_now": self.checked_now, "already_done": self.already_done,
                "counts": self.counts, "notes": self.notes}


def check_on_ray(source: str | Path, out: str | Path, config: CheckConfig | None = None,
                 options: RayOptions = RayOptions(), out_format: str = "parquet") -> RayCheckResult:
    """Check every image of ``source`` (a folder, a file of paths/URIs, or a Parquet/JSONL table with a
    ``path`` or ``bytes`` column) on Ray and write one verdict record per image to the dataset ``out``."""
    if out_format not in OUT_FORMATS:
        raise ValueError(f"out_format must be one of {', '.join(OUT_FORMATS)}, not {out_format!r}")
    require_ray()
    source, out = str(source), str(out)
    done, notes = recorded(out, out_format)
    reader = TABLE_READERS.get(Path(source).suffix.lower())
    listed = None if reader else list_inputs(source)
    if listed == []:
        raise RayEngineError(f"{source}: no image files found")
    todo = None if listed is None else [p for p in listed if p not in done]
    if todo is None or todo:
        with ray_session(options) as ray:
            if todo is None:
                rows = table_dataset(source, reader, frozenset(done), options.batch_size)
            else:
                rows = ray.data.from_items([{"path": p, "bytes": None} for p in todo],
                                           override_num_blocks=min(-(-len(todo) // options.batch_size), 10_000))
            threads = max(1, int(options.cpus_per_worker))
            checked = rows.map_batches(CheckWorker, fn_constructor_args=(config, threads), batch_format="pyarrow",
                                       batch_size=options.batch_size, **actor_pool(ray, options))
            write = checked.write_parquet if out_format == "parquet" else checked.write_json
            try:
                write(out, ray_remote_args={"num_cpus": IO_CPUS})
            except ray.exceptions.RayError as exc:
                raise RayEngineError(f"{source}: the Ray job failed: {first_line(exc)}") from None
    labels, _ = recorded(out, out_format)
    return RayCheckResult(out, len(labels) - len(done), len(done), dict(Counter(labels.values())), notes)


# -- dataset build ------------------------------------------------------------------------------
class DatasetWorker:
    """One actor: the local build's worker (``ItemMaker``, models loaded once), one planned item per call."""

    def __init__(self, out: str, config: dict, keys_dir: str | None):
        from provenance.datasets import build

        build._init_worker(out, config, keys_dir)
        self._run_item = build._run_item

    def __call__(self, batch: pyarrow.Table) -> pyarrow.Table:
        import pyarrow as pa

        rows = [self._run_item(json.loads(item)) for item in batch.column("item").to_pylist()]
        return pa.table({"row": pa.array([json.dumps(row) for row in rows], pa.string())})


def dataset_item_runner(options: RayOptions = RayOptions()) -> Callable[[list[dict], tuple], Iterator[dict]]:
    """For ``build_dataset(map_items=...)``: planned items out to a Ray actor pool, rows back as they finish.
    OUT (and the signing keys) must be on storage that every worker node sees."""

    def run(todo: list[dict], worker_args: tuple) -> Iterator[dict]:
        if not todo:
            return
        out, config, keys_dir = worker_args
        worker_args = (os.path.abspath(out), config, keys_dir and os.path.abspath(keys_dir))
        with ray_session(options) as ray:
            items = ray.data.from_items([{"item": json.dumps(item)} for item in todo],
                                        override_num_blocks=min(len(todo), 10_000))
            made = items.map_batches(
                DatasetWorker, fn_constructor_args=worker_args, batch_size=1, batch_format="pyarrow",
                **actor_pool(ray, options))
            try:
                for row in made.iter_rows():
                    yield json.loads(row["row"])
            except ray.exceptions.RayError as exc:
                raise RayEngineError(f"the Ray job failed: {first_line(exc)}") from None

    return run
