"""Bounded concurrency for CPU-heavy checks: a fixed pool of worker threads, a bounded number of
requests admitted to wait for one, and a deadline per request.

The event loop never runs a check; it awaits a worker. A request that finds the queue full is
refused at once (503 + Retry-After) before its body is read, so load beyond capacity costs almost
nothing. A worker slot is released only when its thread has really finished, so a request that
gave up waiting can never let more checks run at once than there are workers.
"""
from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import AsyncIterator, Callable, TypeVar

T = TypeVar("T")


class QueueFull(RuntimeError):
    pass


class BudgetExceeded(TimeoutError):
    def __init__(self, message: str, started: bool):
        super().__init__(message)
        self.started = started  # False: it never reached a worker (the service is overloaded)


class CheckQueue:
    def __init__(self, workers: int, waiting: int):
        self.workers = workers
        self.capacity = workers + waiting
        self.admitted = 0
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="provenance-check")
        self._slots: asyncio.Semaphore | None = None  # made on the serving loop
        self._seconds_per_check = 1.0  # running mean, for Retry-After

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Hold a place in the queue for one request, or raise :class:`QueueFull`."""
        if self.admitted >= self.capacity:
            raise QueueFull(f"the check queue is full ({self.capacity} requests)")
        self.admitted += 1
        try:
            yield
        finally:
            self.admitted -= 1

    async def run(self, work: Callable[[], T], deadline: float) -> T:
        """Run ``work`` on a worker thread; :class:`BudgetExceeded` if ``deadline`` (a
        ``time.monotonic()`` value) passes while it waits or runs."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.workers)
        try:
            await asyncio.wait_for(self._slots.acquire(), timeout=max(deadline - time.monotonic(), 0))
        except TimeoutError:
            raise BudgetExceeded("the time budget ran out while waiting for a worker", started=False) from None
        started = time.monotonic()
        future = asyncio.get_running_loop().run_in_executor(self._executor, work)
        future.add_done_callback(lambda _: self._finished(started))
        try:
            return await asyncio.wait_for(asyncio.shield(future), timeout=max(deadline - time.monotonic(), 0))
        except TimeoutError:
            raise BudgetExceeded("the check ran past the time budget", started=True) from None

    def _finished(self, started: float) -> None:
        self._seconds_per_check = 0.8 * self._seconds_per_check + 0.2 * (time.monotonic() - started)
        assert self._slots is not None
        self._slots.release()

    def retry_after(self) -> int:
        """Seconds until the queue has likely drained enough to admit another request."""
        return max(1, round(self.admitted * self._seconds_per_check / self.workers))

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
