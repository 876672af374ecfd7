"""Values computed once per key and shared by threads."""
from __future__ import annotations

import threading
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")


class ComputedOnce:
    """``get(key, compute)`` runs ``compute()`` once per key: threads asking for the same key wait for
    the one computing it; different keys are computed at the same time."""

    def __init__(self) -> None:
        self._values: dict = {}
        self._locks: dict = {}

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        if key in self._values:
            return self._values[key]
        with self._locks.setdefault(key, threading.Lock()):  # setdefault is atomic
            if key not in self._values:
                self._values[key] = compute()
            return self._values[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self._values

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self):
        return iter(list(self._values))
