"""imwatermark's embedders with their embedding fixed; imported lazily (``imwatermark`` imports torch).

The library's ``encode`` (1) rebuilds the U channel with ``idwt2((ca, (v, h, d)))``, swapping the
horizontal and vertical detail subbands, which alone costs 35-47 dB of PSNR on an empty mark, and
(2) writes the float result into the uint8 YUV array, truncating instead of rounding and wrapping
out-of-range values. ``encode`` is overridden for both; for dwtDct the per-block quantiser is
also replaced (see :class:`FixedEmbedMaxDct`). Decoding is untouched: marks stay readable by
``imwatermark``'s own decoders.
"""
from __future__ import annotations

import cv2
import numpy as np
import pywt
from imwatermark.dwtDctSvd import EmbedDwtDctSvd
from imwatermark.maxDct import EmbedMaxDct

# OpenCV's float YUV->BGR subtracts 0.5 from U and V, its uint8 one subtracts 128.
_FLOAT_CHROMA_SHIFT = 128.0 - 0.5


class _FixedEncode:
    _scales: list

    def encode(self, bgr: np.ndarray) -> np.ndarray:
        rows, cols = bgr.shape[:2]
        r4, c4 = rows // 4 * 4, cols // 4 * 4
        # The decoders read U from the uint8 image, so embed on exactly those values.
        yuv = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV)
        out = yuv.astype(np.float32)
        for channel in range(2):  # the library's loop bound (it never touches V)
            if self._scales[channel] <= 0:
                continue
            ca, (h, v, d) = pywt.dwt2(yuv[:r4, :c4, channel].astype(np.float64), "haar")
            self.encode_frame(ca, self._scales[channel])
            out[:r4, :c4, channel] = pywt.idwt2((ca, (h, v, d)), "haar")
        out[:, :, 1:] -= _FLOAT_CHROMA_SHIFT
        bgr_float = cv2.cvtColor(out, cv2.COLOR_YUV2BGR)
        return np.clip(np.rint(bgr_float), 0, 255).astype(np.uint8)


class FixedEmbedMaxDct(_FixedEncode, EmbedMaxDct):
    """dwtDct with a quantiser that keeps the marked coefficient the block's largest.

    The library always rounds |v| down to its cell's lattice point for a 0-bit, often below
    another coefficient, which the decoder then reads instead: 0-bits are read right in only
    52-72% of blocks. Here |v| moves to the nearest lattice point of the bit's class that stays
    above every other coefficient by a margin (pixel rounding moves LL values by about 1).
    """

    MARGIN = 2.0

    def diffuse_dct_matrix(self, block, wmBit, scale):  # noqa: N803 - the library's signature
        flat = block.flatten()
        pos = int(np.argmax(np.abs(flat[1:]))) + 1
        value = flat[pos]
        others = np.abs(np.delete(flat[1:], pos - 1))
        floor = others.max(initial=0.0) + self.MARGIN
        offset = (0.25 + 0.5 * int(wmBit)) * scale
        cell = abs(value) // scale
        candidates = (cell + np.arange(-1, 3)) * scale + offset
        candidates = candidates[candidates > floor]
        target = candidates[np.argmin(np.abs(candidates - abs(value)))]
        i, j = divmod(pos, self._block)
        block[i][j] = target if value >= 0 else -target
        return block


class FixedEmbedDwtDctSvd(_FixedEncode, EmbedDwtDctSvd):
    pass
