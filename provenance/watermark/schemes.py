"""Watermark schemes wrapping imwatermark: ``dwtDct``, ``dwtDctSvd`` and ``rivaGan``.

Every scheme embeds a bit array into a BGR uint8 image and reads it back; payload layout and
decisions live in :mod:`provenance.watermark.payload` and :mod:`provenance.watermark.decision`.
"""
from __future__ import annotations

import importlib.util
import os
from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from provenance.registry import Registry

from . import fast
from .size import MIN_PIXELS, size_problem

SCHEMES: Registry["WatermarkScheme"] = Registry("watermark scheme")


class WatermarkScheme(ABC):
    name: ClassVar[str]
    capacity: ClassVar[int | None] = None  # None: any payload length
    min_pixels: ClassVar[int] = MIN_PIXELS

    def check_image(self, bgr: np.ndarray) -> None:
        if bgr.ndim != 3 or bgr.shape[2] != 3 or bgr.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 image, got {bgr.dtype} {bgr.shape}")
        rows, cols = bgr.shape[:2]
        if rows * cols < self.min_pixels:
            raise ValueError(size_problem(cols, rows, self.name))

    def check_length(self, length: int) -> None:
        if length <= 0 or (self.capacity is not None and length != self.capacity):
            need = "a positive length" if self.capacity is None else f"exactly {self.capacity} bits"
            raise ValueError(f"{self.name} carries {need}, not {length}")

    @abstractmethod
    def embed(self, bgr: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Return a marked copy of ``bgr`` (uint8) carrying ``bits``."""

    @abstractmethod
    def decode_soft(self, bgr: np.ndarray, length: int) -> np.ndarray:
        """Per-bit confidence in [0, 1] that the bit is 1 (``bgr`` may also be an image's
        :class:`fast.Transforms`, which block schemes share across decoders)."""

    def decode_bits(self, bgr: np.ndarray, length: int) -> np.ndarray:
        return self.decode_soft(bgr, length) > 0.5


class BlockVoteScheme(WatermarkScheme):
    """imwatermark's DWT block schemes: fast decoding via per-block votes (:mod:`.fast`)."""

    method: ClassVar[str]
    scales: ClassVar[list[int]]

    def embed(self, bgr: np.ndarray, bits: np.ndarray) -> np.ndarray:
        self.check_image(bgr)
        bits = np.asarray(bits, dtype=bool)
        self.check_length(bits.size)
        embedder = self._embedder_class()(list(bits.astype(int)), wmLen=bits.size, scales=list(self.scales))
        return embedder.encode(np.ascontiguousarray(bgr))

    def block_votes(self, bgr: "np.ndarray | fast.Transforms", *, float_path: bool = False,
                    swap_rgb: bool = False) -> fast.BlockVotes:
        """Votes on a BGR image, or on an image's shared :class:`fast.Transforms` (computed once)."""
        self.check_image(fast.pixels(bgr))
        return fast.block_votes(bgr, self.method, float_path=float_path, swap_rgb=swap_rgb)

    def decode_soft(self, bgr: np.ndarray, length: int) -> np.ndarray:
        self.check_length(length)
        return self.block_votes(bgr).fractions(length)

    def decode_bits(self, bgr: np.ndarray, length: int) -> np.ndarray:
        self.check_length(length)
        return self.block_votes(bgr).bits(length)  # imwatermark's rule: mean * 255 > 127

    @staticmethod
    @abstractmethod
    def _embedder_class(): ...


@SCHEMES.register("dwtDct")
class DwtDct(BlockVoteScheme):
    name = "dwtDct"
    method = "dwtDct"
    scales = [0, 36, 36]  # imwatermark's default; its loop only reaches U

    @staticmethod
    def _embedder_class():
        from .embedders import FixedEmbedMaxDct

        return FixedEmbedMaxDct


@SCHEMES.register("dwtDctSvd")
class DwtDctSvd(BlockVoteScheme):
    name = "dwtDctSvd"
    method = "dwtDctSvd"
    scales = [0, 36, 0]

    @staticmethod
    def _embedder_class():
        from .embedders import FixedEmbedDwtDctSvd

        return FixedEmbedDwtDctSvd


@SCHEMES.register("rivaGan")
class RivaGan(WatermarkScheme):
    """imwatermark's RivaGAN ONNX nets, run directly with onnxruntime.

    The library keeps its ONNX sessions in class attributes (process-global) and routes through
    torch; here each instance opens its sessions on first use. Slow: seconds per 512x512 image.
    """

    name = "rivaGan"
    capacity = 32
    THRESHOLD = 0.52  # imwatermark's decision level on the decoder output

    def __init__(self):
        self._encoder = None
        self._decoder = None

    @staticmethod
    def _session(filename: str):
        import onnxruntime

        # The ONNX files ship inside the imwatermark wheel; find_spec locates it without importing
        # it (importing imwatermark imports torch).
        spec = importlib.util.find_spec("imwatermark")
        if spec is None or not spec.submodule_search_locations:
            raise RuntimeError("rivaGan needs the invisible-watermark package (imwatermark)")
        folder = list(spec.submodule_search_locations)[0]
        return onnxruntime.InferenceSession(os.path.join(folder, filename), providers=["CPUExecutionProvider"])

    @staticmethod
    def _frame(bgr: np.ndarray) -> np.ndarray:
        # imwatermark: frame / 127.5 - 1, laid out [batch, channel, time, height, width]
        frame = bgr.astype(np.float32) / 127.5 - 1.0
        return np.ascontiguousarray(frame.transpose(2, 0, 1)[None, :, None])

    def embed(self, bgr: np.ndarray, bits: np.ndarray) -> np.ndarray:
        self.check_image(bgr)
        bits = np.asarray(bits, dtype=bool)
        self.check_length(bits.size)
        if self._encoder is None:
            self._encoder = self._session("rivagan_encoder.onnx")
        out = self._encoder.run(None, {"frame": self._frame(bgr), "data": bits[None].astype(np.float32)})[0]
        pixels = (np.clip(out[0, :, 0], -1.0, 1.0).transpose(1, 2, 0) + 1.0) * 127.5
        return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)  # the library truncates

    def decode_soft(self, bgr: np.ndarray, length: int) -> np.ndarray:
        bgr = fast.pixels(bgr)
        self.check_image(bgr)
        self.check_length(length)
        if self._decoder is None:
            self._decoder = self._session("rivagan_decoder.onnx")
        return self._decoder.run(None, {"frame": self._frame(bgr)})[0][0].astype(np.float64)

    def decode_bits(self, bgr: np.ndarray, length: int) -> np.ndarray:
        return self.decode_soft(bgr, length) > self.THRESHOLD
