"""The one minimum-size rule for our watermarks and the public ones we read: at least 256x256
pixels in area (the DWT block schemes need that many 8x8 blocks per payload repetition)."""
from __future__ import annotations

MIN_PIXELS = 256 * 256
MIN_SIDE = 256  # a square image this wide is exactly large enough


def large_enough(width: int, height: int) -> bool:
    return width * height >= MIN_PIXELS


def size_problem(width: int, height: int, what: str = "watermarks") -> str | None:
    """None if a ``width`` x ``height`` image can carry a mark, else one line saying why not."""
    if large_enough(width, height):
        return None
    return f"image is {width}x{height}, under the 256x256-pixel area {what} need"
