"""The vectorised decoders must give exactly imwatermark's bits."""
import numpy as np
import pytest
from imwatermark import WatermarkDecoder, WatermarkEncoder

from provenance.watermark import fast
from tests.watermark_helpers import photo_bgr


def _flat_patches() -> np.ndarray:
    # Flat colour areas put dwtDctSvd's top singular value exactly on a decision edge (s0 = 8U for
    # flat U, a multiple of 18 here), where the last bit of rounding decides the vote.
    img = np.zeros((264, 264, 3), np.uint8)
    img[:, :132] = (145, 128, 128)  # U = 135: s0 = 1080 = 30 x 36
    img[:, 132:] = (20, 128, 128)  # U = 81: s0 = 648 = 18 x 36
    img[100:180] = np.linspace(0, 255, 264, dtype=np.uint8)[None, :, None]
    return img


def _images():
    astronaut = photo_bgr("astronaut", (264, 300))
    coffee_odd = photo_bgr("coffee", (333, 257))  # sizes not multiples of 8
    marked = WatermarkEncoder()
    marked.set_watermark("bytes", b"SDV2")
    return {
        "astronaut": astronaut,
        "coffee-odd": coffee_odd,
        "astronaut-marked": marked.encode(astronaut.copy(), "dwtDct"),
        "coffee-marked-svd": marked.encode(coffee_odd.copy(), "dwtDctSvd"),
        "flat": _flat_patches(),
    }


IMAGES = _images()


@pytest.mark.parametrize("name", list(IMAGES))
@pytest.mark.parametrize("method", fast.METHODS)
@pytest.mark.parametrize("float_path", [False, True])
def test_bits_identical_to_imwatermark(name, method, float_path):
    bgr = IMAGES[name]
    library_input = bgr.astype(np.float32) if float_path else bgr
    votes = fast.block_votes(bgr, method, float_path=float_path)
    for length in (32, 48, 137):
        expected = np.asarray(WatermarkDecoder("bits", length).decode(library_input, method), dtype=bool)
        np.testing.assert_array_equal(votes.bits(length), expected, err_msg=f"{name} {method} L={length}")


def test_swapped_path_is_the_library_on_swapped_channels():
    bgr = IMAGES["coffee-odd"]
    expected = np.asarray(WatermarkDecoder("bits", 48).decode(bgr[:, :, ::-1].astype(np.float32), "dwtDct"), bool)
    np.testing.assert_array_equal(fast.decode(bgr, 48, "dwtDct", float_path=True, swap_rgb=True), expected)


def test_soft_values_are_vote_fractions_consistent_with_bits():
    votes = fast.block_votes(IMAGES["astronaut-marked"], "dwtDct")
    fractions = votes.fractions(32)
    assert fractions.shape == (32,) and np.all((fractions >= 0) & (fractions <= 1))
    np.testing.assert_array_equal(votes.bits(32), fractions * 255 > 127)
    ones, blocks = votes.counts(32)
    assert blocks.sum() == votes.n_blocks


def test_small_image_rejected():
    with pytest.raises(ValueError, match="256x256"):
        fast.block_votes(np.zeros((200, 300, 3), np.uint8), "dwtDct")
