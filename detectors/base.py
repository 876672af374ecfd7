"""The detector interface: look at one loaded image, return one :class:`Evidence`."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar, Sequence, Union

from provenance.assets import LoadedAsset
from provenance.errors import first_line
from provenance.imageio import LoadedImage

from .results import Evidence, Signal, Strength


class Detector(ABC):
    name: ClassVar[str]
    family: ClassVar[str]
    # False for detectors that read only bytes and metadata (C2PA, metadata): they also examine
    # non-image assets (audio, video, PDF). Pixel detectors report those as skipped.
    reads_pixels: ClassVar[bool] = True
    # Rough cost of one 1080p image in milliseconds on one core (AVX-512 here; only the order
    # matters): a check running detectors side by side starts the costly ones first, so they do not
    # finish last, alone on one core.
    relative_cost: ClassVar[int] = 1

    @abstractmethod
    def detect(self, image: LoadedImage) -> Evidence: ...

    def detect_assets(self, items: Sequence[Union[LoadedImage, LoadedAsset]]) -> list[Evidence]:
        """Evidence for images and other assets alike, in order; what the detector cannot read is skipped."""
        if not self.reads_pixels or all(isinstance(item, LoadedImage) for item in items):
            return self.detect_batch(items)  # type: ignore[arg-type]
        images = [item for item in items if isinstance(item, LoadedImage)]
        found = iter(self.detect_batch(images))
        return [next(found) if isinstance(item, LoadedImage)
                else self.evidence(Signal.SKIPPED, Strength.NONE, item.why_no_pixels)
                for item in items]

    def detect_batch(self, images: Sequence[LoadedImage]) -> list[Evidence]:
        """Batched entry point; detectors with vectorised models override it."""
        return [self.safe_detect(image) for image in images]

    def safe_detect(self, image: LoadedImage) -> Evidence:
        """A detector bug on one hostile file must not stop a batch: it becomes an error record."""
        try:
            return self.detect(image)
        except Exception as exc:  # noqa: BLE001 - converted into evidence, never swallowed silently
            return self.evidence(
                Signal.ERROR,
                Strength.NONE,
                f"{self.name} failed on this file",
                error=first_line(exc, with_type=True),
            )

    def evidence(self, signal: Signal, strength: Strength, summary: str, **fields) -> Evidence:
        return Evidence(detector=self.name, family=self.family, signal=signal, strength=strength,
                        summary=summary, **fields)
