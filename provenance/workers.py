"""Run a :class:`~provenance.check.Checker` over many sources in worker processes, each file under a
time and memory budget, so no hostile file can stall or kill a batch.

Each worker is a forked process that builds its own Checker (models load once per worker, on its
first image) and checks one task (``batch_size`` sources) at a time. The parent hands out tasks,
keeps the output in input order, and watches every busy worker: past its time budget, or over the
memory cap, or dead (a crash in native code), the worker is killed and replaced; its file gets an
``error`` verdict saying why, and the batch goes on. A task of several files that fails is retried
one file at a time, so only the file at fault gets the error.

    with CheckPool(CheckConfig(), workers=4) as pool:
        for verdict in pool.imap(paths):
            ...

By default workers are forked from a fork server: a fresh process that has imported the checking
code but never run it. A child forked from a process whose native libraries already hold threads or
locks can hang: c2pa's reader deadlocks in a child of a process that has read a PDF manifest
(measured). A caller that has itself checked nothing may ask for ``start_method="fork"``, which
spares a second interpreter importing everything again (the CLI does: a one-image check starts
about 0.3 s sooner). Where the start method is not available, :func:`check_in_workers` falls back
to checking in-process without a budget.
"""
from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Iterable, Iterator

from detectors.results import Label, Verdict

if TYPE_CHECKING:  # imported where used: the CLI reads this module's defaults without loading detectors
    from .check import CheckConfig, Source

DEFAULT_SECONDS_PER_FILE = 30.0
# Checking costs time in proportion to pixels (measured 0.6-2 s per megapixel with every default
# detector on a shared 2-core CPU; README, "Limits"), so a file that decodes to a large image earns
# this much more time once decoded. Parsing and decoding themselves get only the flat budget: that
# is where a hostile file stalls.
DEFAULT_SECONDS_PER_MEGAPIXEL = 2.0
# Resident memory of a worker that has loaded every default detector's models, measured on this
# project's CPU build (README, "Limits"); the memory budget of a file is on top of it.
WORKER_FOOTPRINT_BYTES = 1 * 2**30
_POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Budget:
    """What one file may cost. ``None`` means unbounded."""

    seconds: float | None = DEFAULT_SECONDS_PER_FILE
    seconds_per_megapixel: float = DEFAULT_SECONDS_PER_MEGAPIXEL  # added once the image is decoded
    memory_bytes: int | None = None  # resident memory of the worker checking the file

    def describe(self, megapixels: float) -> str:
        extra = self.seconds_per_megapixel * megapixels
        return f"{self.seconds:g} s per file" + (f" + {extra:.0f} s for its {megapixels:.0f} MP" if extra >= 1 else "")


class CheckPoolError(RuntimeError):
    """The workers cannot run at all (e.g. a detector cannot be built from the configuration)."""


@dataclass
class PoolStats:
    """What a run cost; :meth:`CheckPool.imap` fills it in as it goes."""

    files: int = 0
    timed_out: int = 0
    over_memory: int = 0
    worker_deaths: int = 0
    exceptions: list[str] = field(default_factory=list)  # check() raising: a bug, reported, never hidden
    peak_worker_rss: int = 0
    slowest: list[tuple[float, str]] = field(default_factory=list)  # (seconds, source), top 10


START_METHOD = "forkserver"
_PRELOAD = ["provenance.check"]  # imported once by the fork server, so each worker starts warm


def fork_available() -> bool:
    return START_METHOD in multiprocessing.get_all_start_methods()


def fork_is_safe() -> bool:
    """Whether workers may be plain forks of this process: not once it has used c2pa's reader."""
    reading = sys.modules.get("provenance.c2pa.reading")
    return reading is None or not reading.native_reader_used()


@dataclass
class _Task:
    items: list[tuple[int, Source]]


class _Worker:
    def __init__(self, context, config: CheckConfig, warm_up: bool):
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(config, child, warm_up), daemon=True)
        self.process.start()
        child.close()
        self.task: _Task | None = None
        self.started = 0.0
        self.megapixels = 0.0  # of the task's decoded images, once the worker reports them
        self.ready = False  # until the worker has built its detectors and loaded their models

    def give(self, task: _Task) -> None:
        self.conn.send([source for _, source in task.items])  # raises OSError if the worker has died
        self.task, self.started, self.megapixels = task, time.monotonic(), 0.0

    def deadline(self, budget: Budget) -> float | None:
        if budget.seconds is None or self.task is None:
            return None
        return self.started + budget.seconds * len(self.task.items) + budget.seconds_per_megapixel * self.megapixels

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.process.pid}/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return 0

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _serve(config: CheckConfig, conn: Connection, warm_up: bool) -> None:
    """A worker's loop: sources in, verdicts out, until told to stop."""
    from .allocator import apply_allocator_policy
    from .check import Checker

    apply_allocator_policy()  # a fork-server worker does not inherit the parent's
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        checker = Checker(config)
        checker.detectors  # noqa: B018 - built here, so a bad configuration fails once, up front
        if warm_up:  # models loaded before the first file, so no file's budget pays for them
            checker.warm_up()
    except Exception as exc:  # noqa: BLE001 - sent to the parent, which raises it there
        conn.send(("fatal", f"{type(exc).__name__}: {_one_line(exc)}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            sources = conn.recv()
        except EOFError:
            return
        if sources is None:
            return
        try:
            # Decode first and report the pixels, which earn the check its per-megapixel time.
            items = [checker._load(source) for source in sources]  # a loaded item, or an error Verdict
            loaded = [item for item in items if not isinstance(item, Verdict)]
            pixels = sum(getattr(item, "width", 0) * getattr(item, "height", 0) for item in loaded)
            conn.send(("decoded", pixels / 1e6))
            checked = iter(checker.check(loaded))
            conn.send(("ok", [item if isinstance(item, Verdict) else next(checked) for item in items]))
        except Exception as exc:  # noqa: BLE001 - check() must not raise; if it does, the parent records it
            conn.send(("raised", f"{type(exc).__name__}: {_one_line(exc)}\n{traceback.format_exc()}"))


class CheckPool:
    """``workers`` processes checking sources under ``budget``; see the module docstring."""

    def __init__(self, config: CheckConfig | None = None, workers: int = 1, budget: Budget = Budget(),
                 batch_size: int = 1, start_method: str = START_METHOD, warm_up: bool = True):
        """``start_method="fork"`` starts workers as copies of this process: much faster (no fresh
        interpreter importing the checking code again), but safe only while this process has not
        itself checked a file (see the module docstring); the CLI, which never does, asks for it,
        and a process that has used c2pa's reader gets the fork server anyway.
        ``warm_up=False`` loads each worker's models on its first file, inside that file's budget:
        cheaper for a single file, where there is no later file to spare the cost."""
        if start_method not in multiprocessing.get_all_start_methods():
            raise CheckPoolError(f"worker processes need the {start_method} start method (Linux, macOS)")
        if start_method == "fork" and not fork_is_safe():
            start_method = START_METHOD
        from .check import CheckConfig, Checker

        self.config = config or CheckConfig()
        Checker(self.config)  # validates detector names here, in the caller's process
        self.budget = budget
        self.batch_size = max(1, batch_size)
        self.warm_up = warm_up
        self.stats = PoolStats()
        self._context = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            self._context.set_forkserver_preload(_PRELOAD)
        self._workers = [self._start_worker() for _ in range(max(1, workers))]

    def __enter__(self) -> "CheckPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        for worker in self._workers:
            try:
                if worker.task is None:
                    worker.conn.send(None)
            except OSError:
                pass
        deadline = time.monotonic() + 2
        for worker in self._workers:
            if worker.task is None:
                worker.process.join(max(0.0, deadline - time.monotonic()))
            worker.kill()
        self._workers = []

    def worker_rss(self) -> list[int]:
        """Each worker's resident memory now, in bytes."""
        return [worker.rss() for worker in self._workers]

    def imap(self, sources: Iterable[Source]) -> Iterator[Verdict]:
        """One verdict per source, in input order, each file within the budget."""
        queue: deque[_Task] = deque()
        incoming = _numbered_tasks(sources, self.batch_size)
        done: dict[int, Verdict] = {}
        next_out = 0
        exhausted = False
        read_ahead = 4 * len(self._workers)
        while True:
            while not exhausted and len(queue) < read_ahead:
                task = next(incoming, None)
                if task is None:
                    exhausted = True
                else:
                    queue.append(task)
            for worker in list(self._workers):
                if queue and worker.ready and worker.task is None:
                    try:
                        worker.give(queue[0])
                        queue.popleft()
                    except OSError:  # died while idle: replace it; the task waits for the next worker
                        self._replace(worker, queue, done, "died", _died_message(worker))
            if not queue and exhausted and all(w.task is None for w in self._workers):
                break
            busy = [w for w in self._workers if w.task is not None or not w.ready]
            for conn in wait([w.conn for w in busy], timeout=_POLL_SECONDS):
                worker = next(w for w in busy if w.conn is conn)
                self._receive(worker, queue, done)
            self._enforce_budget(queue, done)
            while next_out in done:
                yield done.pop(next_out)
                next_out += 1
        while next_out in done:
            yield done.pop(next_out)
            next_out += 1

    # -- internals ---------------------------------------------------------------------------

    def _start_worker(self) -> _Worker:
        return _Worker(self._context, self.config, self.warm_up)

    def _receive(self, worker: _Worker, queue: deque[_Task], done: dict[int, Verdict]) -> None:
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            if not worker.ready:
                self.close()
                raise CheckPoolError(f"a worker process could not start ({_died_message(worker)})") from None
            self._replace(worker, queue, done, "died", _died_message(worker))
            return
        if kind == "fatal":
            self.close()
            raise CheckPoolError(payload)
        if kind == "ready":
            worker.ready = True
            return
        if kind == "decoded":
            worker.megapixels = payload
            return
        task, elapsed = worker.task, time.monotonic() - worker.started
        worker.task = None
        self._note_rss(worker)
        if kind == "raised":
            self.stats.exceptions.append(payload)
            self._fail(task, queue, done, "raised", "the check failed: " + payload.splitlines()[0], elapsed)
            return
        for (index, source), verdict in zip(task.items, payload):
            done[index] = verdict
            self._note_time(elapsed / len(task.items), verdict.source)
        self.stats.files += len(task.items)

    def _enforce_budget(self, queue: deque[_Task], done: dict[int, Verdict]) -> None:
        now = time.monotonic()
        for worker in list(self._workers):
            if worker.task is None:
                continue
            rss = self._note_rss(worker)
            deadline = worker.deadline(self.budget)
            if deadline is not None and now > deadline:
                self._replace(worker, queue, done, "timeout",
                              f"took longer than its time budget ({self.budget.describe(worker.megapixels)}); stopped")
            elif self.budget.memory_bytes is not None and rss > self.budget.memory_bytes:
                self._replace(worker, queue, done, "memory",
                              f"needed more than the {self.budget.memory_bytes / 2**30:.1f} GiB memory budget; stopped")
            elif not worker.process.is_alive():
                self._replace(worker, queue, done, "died", _died_message(worker))

    def _replace(self, worker: _Worker, queue: deque[_Task], done: dict[int, Verdict], kind: str, why: str) -> None:
        task, elapsed = worker.task, time.monotonic() - worker.started
        worker.kill()
        self._workers[self._workers.index(worker)] = self._start_worker()
        if task is not None:
            self._fail(task, queue, done, kind, why, elapsed)

    def _fail(self, task: _Task, queue: deque[_Task], done: dict[int, Verdict], kind: str, why: str,
              elapsed: float) -> None:
        if len(task.items) > 1:  # find the file at fault: retry each alone, ahead of new work
            queue.extendleft(_Task([item]) for item in reversed(task.items))
            return
        (index, source), = task.items
        counter = {"timeout": "timed_out", "memory": "over_memory", "died": "worker_deaths"}.get(kind)
        if counter:
            setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        done[index] = Verdict(_label(source), Label.ERROR, [why], error=why, seconds=elapsed)
        self.stats.files += 1
        self._note_time(elapsed, _label(source))

    def _note_rss(self, worker: _Worker) -> int:
        rss = worker.rss()
        self.stats.peak_worker_rss = max(self.stats.peak_worker_rss, rss)
        return rss

    def _note_time(self, seconds: float, source: str) -> None:
        slowest = self.stats.slowest
        slowest.append((seconds, source))
        slowest.sort(reverse=True)
        del slowest[10:]


def check_in_workers(sources: Iterable[Source], config: CheckConfig | None = None, workers: int = 1,
                     budget: Budget = Budget(), batch_size: int = 1, start_method: str = START_METHOD,
                     warm_up: bool = True) -> Iterator[Verdict]:
    """Verdicts in input order from worker processes under ``budget``; in-process (no budget) where
    fork is unavailable or the budget is unbounded and one worker is asked for. ``start_method`` and
    ``warm_up``: see :class:`CheckPool`."""
    from .check import Checker

    unbounded = budget.seconds is None and budget.memory_bytes is None
    if start_method not in multiprocessing.get_all_start_methods() or (unbounded and workers <= 1):
        yield from Checker(config).iter_check(sources, batch_size=batch_size)
        return
    with CheckPool(config, workers, budget, batch_size, start_method, warm_up) as pool:
        yield from pool.imap(sources)


def _numbered_tasks(sources: Iterable[Source], batch_size: int) -> Iterator[_Task]:
    batch: list[tuple[int, Source]] = []
    for index, source in enumerate(sources):
        batch.append((index, source))
        if len(batch) >= batch_size:
            yield _Task(batch)
            batch = []
    if batch:
        yield _Task(batch)


def _label(source: Source) -> str:
    from .check import NamedBytes

    if isinstance(source, NamedBytes):
        return source.name
    if isinstance(source, (bytes, bytearray)):
        return "<bytes>"
    return str(getattr(source, "source", source))


def _died_message(worker: _Worker) -> str:
    worker.process.join(1)
    code = worker.process.exitcode
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
        return f"the checking process died ({name}); stopped"
    return f"the checking process died (exit code {code}); stopped"


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""
