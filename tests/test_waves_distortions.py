"""The WAVES distortion list used by benchmarks/watermark_learned.py: WAVES's ranges, names and
combinations, deterministic given the generator, shape-preserving."""
import numpy as np
import pytest

from benchmarks import waves


def test_relative_strength_maps_onto_the_waves_ranges():
    assert waves.absolute("rotation", 0.0) == 0 and waves.absolute("rotation", 1.0) == 45
    assert waves.absolute("compression", 0.2) == pytest.approx(74) and waves.absolute("resizedcrop", 0.6) == pytest.approx(0.7)
    assert waves.absolute("noise", 0.5) == pytest.approx(0.05) and waves.absolute("blurring", 0.4) == pytest.approx(8)
    with pytest.raises(ValueError):
        waves.absolute("contrast", 1.5)


def test_every_waves_distortion_and_combination_is_listed_once_per_strength():
    names = list(waves.attacks([0.2, 0.6]))
    assert len(names) == 2 * 12 and len(set(names)) == 24
    for name in ("Dist-Rotation", "Dist-RCrop", "Dist-Erase", "Dist-Bright", "Dist-Contrast", "Dist-Blur",
                 "Dist-Noise", "Dist-JPEG", "Dist-Com-Geo", "Dist-Com-Photo", "Dist-Com-Deg", "Dist-Com-All"):
        assert sum(n.startswith(name + " ") for n in names) == 2
    assert set(waves.COMBOS["Dist-Com-All"]) == set(waves.RANGES)


@pytest.mark.parametrize("shape", [(96, 96, 3), (90, 160, 3)])
def test_attacks_keep_the_shape_change_the_pixels_and_repeat_with_the_seed(shape):
    rgb = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for name, attack in waves.attacks([0.4]).items():
        out = attack(rgb, np.random.default_rng(5))
        assert out.shape == rgb.shape and out.dtype == np.uint8, name
        assert not np.array_equal(out, rgb), name
        assert np.array_equal(out, attack(rgb, np.random.default_rng(5))), name


def test_erasing_blacks_out_the_requested_share():
    rgb = np.full((200, 300, 3), 200, np.uint8)
    out = waves.distort(rgb, "erasing", 0.1, np.random.default_rng(1))
    assert np.mean(np.all(out == 0, axis=2)) == pytest.approx(0.1, abs=0.005)


def test_distinct_photos_take_one_image_per_photo_from_every_source_and_never_upscale(tmp_path):
    from PIL import Image

    from benchmarks.watermark_learned import distinct_photos

    rng = np.random.default_rng(1)
    sizes = {"a/big1.png": (700, 600), "a/big2.png": (640, 900), "a/small.png": (400, 300),
             "b/one.jpg": (1000, 560), "c/nested/deep.png": (520, 520), "c/portrait.png": (600, 1000)}
    for name, (w, h) in sizes.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    (tmp_path / "a" / "broken.png").write_bytes(b"not an image")
    images, names = distinct_photos(str(tmp_path), 10, (512, 512), seed=3)
    assert sorted(names) == sorted(n for n in sizes if n != "a/small.png")  # too small to cover 512 px
    assert len({n.split("/")[0] for n in names[:3]}) == 3  # one from each source before a second from any
    assert all(im.shape == (512, 512, 3) and im.dtype == np.uint8 for im in images)
    wide, _ = distinct_photos(str(tmp_path), 10, (960, 540))
    assert [im.shape for im in wide] == [(540, 960, 3)]  # only b/one.jpg covers 960x540 without upscaling:
    # c/portrait.png is large enough but upright too narrow
    assert distinct_photos(str(tmp_path), 2, (512, 512), seed=3)[1] == names[:2]
