"""The bad-input matrix: every odd or hostile file gets a one-line error or a normalised image."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from provenance.imageio import ImageLoadError, LoadLimits, load_image


def _photo(size=(300, 280)) -> Image.Image:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    return Image.fromarray((base + rng.normal(0, 8, base.shape)).clip(0, 255).astype(np.uint8))


def _save(img: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def png_with_claimed_size(width: int, height: int) -> bytes:
    """A tiny valid PNG whose header claims huge dimensions: the classic decompression bomb shape."""
    data = bytearray(_save(Image.new("L", (8, 8)), "PNG"))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def make_bad_inputs() -> dict[str, bytes]:
    """name -> bytes for inputs that must be refused with a one-line error."""
    jpeg = _save(_photo(), "JPEG", quality=90)
    return {
        "empty.jpg": b"",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "not_an_image.jpg": b"this is plain text, not a picture\n" * 20,
        "bomb.png": png_with_claimed_size(100_000, 100_000),
    }


def make_odd_inputs() -> dict[str, bytes]:
    """name -> bytes for valid but unusual images that must load, normalised to RGB uint8."""
    photo = _photo()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 CW on display
    frames = [photo, photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=100)
    sixteen = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    return {
        "cmyk.jpg": _save(photo.convert("CMYK"), "JPEG"),
        "sixteen_bit.png": _save(sixteen, "PNG"),
        "palette.png": _save(photo.convert("P"), "PNG"),
        "alpha.png": _save(photo.convert("RGBA"), "PNG"),
        "animated.gif": buf.getvalue(),
        "rotated.jpg": _save(photo, "JPEG", exif=exif.tobytes()),
        "grey.png": _save(photo.convert("L"), "PNG"),
    }


@pytest.mark.parametrize("name", sorted(make_bad_inputs()))
def test_bad_inputs_raise_one_line_errors(name):
    data = make_bad_inputs()[name]
    with pytest.raises(ImageLoadError) as info:
        load_image(data, name=name)
    message = str(info.value)
    assert message and "\n" not in message
    expected = {"empty.jpg": "empty", "truncated.jpg": "truncated", "not_an_image.jpg": "not a recognised",
                "bomb.png": "decompression bomb"}[name]
    assert expected in message


@pytest.mark.parametrize("name", sorted(make_odd_inputs()))
def test_odd_inputs_are_normalised(name):
    image = load_image(make_odd_inputs()[name], name=name)
    assert image.rgb.dtype == np.uint8 and image.rgb.shape == (280, 300, 3)
    note = {"cmyk.jpg": "CMYK", "sixteen_bit.png": "8 bits", "palette.png": "palette", "alpha.png": "alpha",
            "animated.gif": "animated", "rotated.jpg": "orientation 6", "grey.png": None}[name]
    if note:
        assert any(note in n for n in image.notes), image.notes


def test_sixteen_bit_keeps_the_picture():
    image = load_image(make_odd_inputs()["sixteen_bit.png"])
    grey = np.asarray(_photo().convert("L"))
    assert np.abs(image.rgb[:, :, 0].astype(int) - grey).max() <= 1


def test_limits_are_enforced(tmp_path):
    data = _save(_photo(), "PNG")
    with pytest.raises(ImageLoadError, match="MP limit"):
        load_image(data, LoadLimits(max_pixels=10_000))
    big = tmp_path / "big.png"
    big.write_bytes(data)
    with pytest.raises(ImageLoadError, match="MiB limit"):
        load_image(big, LoadLimits(max_bytes=1000))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ImageLoadError, match="not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)
