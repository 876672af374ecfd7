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


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_haar_ll_is_pywt_bit_for_bit(dtype):
    import pywt

    rng = np.random.default_rng(3)
    planes = [rng.integers(0, 256, (264, 300)), np.full((64, 96), 117), IMAGES["flat"][:, :, 0]]
    for plane in planes:
        plane = plane.astype(dtype) if dtype is np.uint8 else (plane.astype(np.float32) - 127.75)
        ours, reference = fast.haar_ll(plane), pywt.dwt2(plane, "haar")[0]
        assert ours.dtype == reference.dtype
        np.testing.assert_array_equal(ours, reference)  # 132 LL rows: whole strips and a partial one


@pytest.mark.parametrize("name", list(IMAGES))
def test_one_shared_transform_object_gives_the_library_bits_on_every_path(name):
    """All decoders reading one Transforms (as the two watermark detectors do) get imwatermark's bits."""
    bgr = IMAGES[name]
    shared = fast.Transforms(bgr)
    for float_path, swap_rgb in ((False, False), (True, False), (True, True), (False, True)):
        library_input = bgr[:, :, ::-1] if swap_rgb else bgr
        library_input = np.ascontiguousarray(library_input, dtype=np.float32 if float_path else np.uint8)
        for method in fast.METHODS:
            expected = np.asarray(WatermarkDecoder("bits", 48).decode(library_input, method), dtype=bool)
            votes = shared.votes(method, float_path=float_path, swap_rgb=swap_rgb)
            np.testing.assert_array_equal(votes.bits(48), expected, err_msg=f"{name} {method} {float_path} {swap_rgb}")
            assert shared.votes(method, float_path=float_path, swap_rgb=swap_rgb) is votes  # computed once


def test_both_watermark_detectors_share_one_transform_pass_per_image():
    import detectors
    from tests.watermark_helpers import as_file

    image = as_file(IMAGES["astronaut-marked"])
    ours, sd = detectors.create("watermark"), detectors.create("sd-watermark")
    evidence = [ours.detect(image), sd.detect(image)]
    shared = fast.of_image(image)
    assert fast.of_image(image) is shared
    assert set(shared._ll) == {(False, False), (True, False), (True, True)}  # one LL band per colour path
    assert set(shared._blocks) == {(False, False)}  # block copies only where dwtDctSvd reads them
    # the same evidence as detectors given plain pixels (nothing shared)
    fresh = as_file(IMAGES["astronaut-marked"])
    assert [e.p_value for e in evidence] == [ours.detect(fresh).p_value, sd.detect(fresh).p_value]
    assert sd.scores(fresh.bgr) == evidence[1].details["results"]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_svd_votes_match_the_library_rule_on_blocks_near_decision_edges(dtype):
    """Rank-1 blocks scaled so s0 lands on or within rounding of a multiple of 18, plus random
    and flat ones: the bracketed votes equal imwatermark's svd(cv2.dct(block)) rule block by block."""
    import cv2

    rng = np.random.default_rng(7)
    u, v = rng.normal(size=(2000, 4, 1)), rng.normal(size=(2000, 1, 4))
    rank1 = u @ v
    rank1 /= np.linalg.norm(rank1, axis=(1, 2), keepdims=True)  # s0 = 1
    targets = 18.0 * rng.integers(1, 40, 2000) + rng.choice([0.0, 1e-13, -1e-13, 1e-9, -1e-9, 1e-6, 0.3], 2000)
    near_edges = rank1 * targets[:, None, None] + rng.normal(scale=1e-3, size=(2000, 4, 4)) * (rng.random((2000, 1, 1)) < 0.5)
    blocks = np.concatenate([near_edges, rng.normal(scale=80, size=(2000, 4, 4)),
                             np.repeat(np.arange(0, 600, 1.125)[:, None, None], 16, axis=1).reshape(-1, 4, 4)])
    blocks = blocks.astype(dtype)
    expected = np.array([np.linalg.svd(cv2.dct(np.ascontiguousarray(b)))[1][0] % 36 > 18 for b in blocks])
    np.testing.assert_array_equal(fast._votes_top_singular_value(blocks.reshape(-1, 16)).astype(bool), expected)


def test_transforms_of_a_loaded_image_use_its_exact_bgr_pixels():
    from tests.watermark_helpers import as_file

    image = as_file(IMAGES["coffee-odd"])
    np.testing.assert_array_equal(fast.of_image(image).bgr, image.rgb[:, :, ::-1])


@pytest.mark.parametrize("shape", [(1080, 1920), (333, 257), (130, 1001), (64, 64)])
@pytest.mark.parametrize("swap_rgb", [False, True])
def test_float_u_plane_in_strips_is_the_whole_image_conversion(shape, swap_rgb):
    import cv2

    bgr = np.random.default_rng(shape[0]).integers(0, 256, (*shape, 3), dtype=np.uint8)
    whole = cv2.cvtColor(np.ascontiguousarray(bgr[:, :, ::-1] if swap_rgb else bgr, dtype=np.float32), cv2.COLOR_BGR2YUV)
    rows, cols = shape[0] // 4 * 4, shape[1] // 4 * 4
    np.testing.assert_array_equal(fast._u_channel(bgr, True, swap_rgb), whole[:rows, :cols, 1])


def test_detectors_on_two_threads_compute_each_colour_path_once(monkeypatch):
    """A one-image check runs both watermark detectors side by side: each colour path's transform is
    computed once, different paths at the same time, and the evidence equals the one-thread run's."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import detectors
    from tests.watermark_helpers import as_file

    ours, sd = detectors.create("watermark"), detectors.create("sd-watermark")
    sequential = as_file(IMAGES["astronaut-marked"])
    expected = [ours.detect(sequential).p_value, sd.detect(sequential).p_value]

    computed, inside, overlapped = [], [0], [False]
    lock, original = threading.Lock(), fast.haar_ll

    def counting_haar_ll(plane):
        with lock:
            computed.append(plane.dtype)
            inside[0] += 1
            overlapped[0] |= inside[0] > 1
        try:
            threading.Event().wait(0.05)  # long enough for the other thread to start its own path
            return original(plane)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(fast, "haar_ll", counting_haar_ll)
    image = as_file(IMAGES["astronaut-marked"])
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(ours.detect, image), pool.submit(sd.detect, image)]
        evidence = [future.result() for future in futures]
    assert [e.p_value for e in evidence] == expected
    assert sorted(map(str, computed)) == ["float32", "float32", "uint8"]  # three paths, each once
    assert overlapped[0]  # the float paths did not wait for the uint8 one
