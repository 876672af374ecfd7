"""The runtime null model of the watermark decisions: the shipped calibration file, read once,
and each test's P(matches >= m) under "no mark". Detectors and the CLI read p-values here; the
file is made offline by :mod:`provenance.watermark.calibration` (``provenance watermark calibrate``)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

CALIBRATION_FILE = Path(__file__).with_name("calibration.json")
TARGET_FPR = 1e-6


@dataclass(frozen=True)
class NullFit:
    """One test's calibrated null: P(matches >= m) for m = 0..bits."""

    name: str
    bits: int
    survival: Sequence[float]

    def p_value(self, matches: int) -> float:
        return float(self.survival[min(max(int(matches), 0), self.bits)])

    def threshold(self, level: float = TARGET_FPR) -> int:
        """Smallest match count with p-value <= level (bits + 1: none)."""
        return next((m for m, p in enumerate(self.survival) if p <= level), self.bits + 1)


@dataclass(frozen=True)
class SoftNullFit:
    """One soft test's calibrated null: P(T >= k * step) for k = 0.. (t below 0 reads k = 0, t past
    the table its last entry; t is rounded down to the grid, so p-values are never understated)."""

    name: str
    step: float
    survival: Sequence[float]

    def p_value(self, t: float) -> float:
        if not t > 0:  # also NaN
            return float(self.survival[0])
        index = int(t / self.step + 1e-9)  # a tabulated t (k * step) reads its own entry despite rounding
        return float(self.survival[min(index, len(self.survival) - 1)])

    def threshold(self, level: float = TARGET_FPR) -> float:
        """Smallest tabulated t with p-value <= level (inf: none)."""
        return next((k * self.step for k, p in enumerate(self.survival) if p <= level), float("inf"))


class MissingCalibration(LookupError):
    pass


class Calibration:
    """The shipped (or a given) calibration file, read once per instance."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else CALIBRATION_FILE

    @cached_property
    def data(self) -> dict:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            raise MissingCalibration(f"no calibration file at {self.path}; run 'provenance watermark calibrate'") from None

    def null(self, test: str) -> "NullFit | SoftNullFit":
        try:
            entry = self.data["tests"][test]
        except KeyError:
            raise MissingCalibration(f"{self.path.name} has no calibration for {test!r}") from None
        if entry.get("kind") == "soft":
            return SoftNullFit(test, entry["grid_step"], tuple(entry["p_value_by_t"]))
        return NullFit(test, entry["bits"], tuple(entry["p_value_by_matches"]))

    def __contains__(self, test: str) -> bool:
        return test in self.data.get("tests", {})
