"""A small name -> factory registry, shared by detectors, watermark schemes and generators.

Modelled on timm's ``register_model`` / ``create_model``: entries register themselves with a
decorator when their module is imported, and callers build them by name.
"""
from __future__ import annotations

from typing import Callable, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want a plain sentence
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}

    def register(self, name: str) -> Callable[[Callable[..., T]], Callable[..., T]]:
        def decorator(factory: Callable[..., T]) -> Callable[..., T]:
            if name in self._factories:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def create(self, name: str, **kwargs) -> T:
        try:
            factory = self._factories[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}"
            ) from None
        return factory(**kwargs)

    def factory(self, name: str) -> Callable[..., T]:
        """What ``create(name)`` would call (for registered classes: the class itself)."""
        if name not in self._factories:
            self.create(name)  # raises the UnknownNameError
        return self._factories[name]

    def available(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
