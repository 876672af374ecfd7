"""Property tests over structured mutations of valid files: nothing we read may raise past the loader,
and ``check()`` returns one verdict per input, whatever the bytes.

The mutations and seed files are those of the campaign (``python -m benchmarks fuzz``), drawn here by
hypothesis with a fixed seed and a bounded number of examples so CI stays well under two minutes.
Inputs the campaign found crashing are regenerated from their ``(seed, mutations)`` description
in :data:`REGRESSIONS` (no binary blobs).
"""
from __future__ import annotations

import json

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis", reason="hypothesis is in the [test] extra")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from benchmarks.fuzz import DECLARED_SIGNAL_DETECTORS, MUTATIONS, mutate, seed_files  # noqa: E402
from detectors.results import Label  # noqa: E402
from provenance.check import CheckConfig, Checker, NamedBytes  # noqa: E402
from provenance.imageio import ImageLoadError, LoadedImage, LoadLimits, load_image  # noqa: E402

# Cheap mutations for the many-example loader property; the multi-megabyte ones are drawn less often.
operations = st.lists(
    st.tuples(st.sampled_from(sorted(MUTATIONS)), st.integers(0, 2**32 - 1)), min_size=1, max_size=3
)
FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def seeds(keys) -> dict[str, bytes]:
    return seed_files(str(keys.directory))


@pytest.fixture(scope="module")
def checker() -> Checker:
    # A 2 MP limit keeps CI fast: the huge-dimension mutations then meet the limit (tested as such)
    # instead of making the watermark decoders work through 20-MP images.
    return Checker(CheckConfig(detectors=DECLARED_SIGNAL_DETECTORS, limits=LoadLimits(max_pixels=2_000_000)))


def _assert_loaded_or_refused(data: bytes) -> LoadedImage | None:
    try:
        image = load_image(data, name="fuzzed")
    except ImageLoadError as exc:
        assert str(exc) and "\n" not in str(exc)
        return None
    assert image.rgb.dtype == np.uint8 and image.rgb.shape == (image.height, image.width, 3)
    assert image.frames >= 1 and all("\n" not in note for note in image.notes)
    return image


def test_every_seed_is_valid(seeds):
    for name, data in seeds.items():
        image = load_image(data, name=name)
        assert image.width >= 256 and image.height >= 256, name
    assert {"c2pa_jpeg", "c2pa_png", "tiff_multipage", "gif_animated", "webp_animated"} <= set(seeds)
    assert load_image(seeds["tiff_multipage"]).frames == 3


@settings(FUZZ, max_examples=300)
@given(data=st.data())
def test_loader_never_raises_anything_but_a_one_line_error(seeds, data):
    seed = data.draw(st.sampled_from(sorted(seeds)))
    ops = data.draw(operations)
    _assert_loaded_or_refused(mutate(seeds[seed], ops))


@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_check_returns_one_verdict_per_input_whatever_the_bytes(seeds, checker, data):
    names = data.draw(st.lists(st.sampled_from(sorted(seeds)), min_size=1, max_size=2))
    batch = [NamedBytes(f"{i}-{name}", mutate(seeds[name], data.draw(operations))) for i, name in enumerate(names)]
    verdicts = checker.check(batch)
    assert [v.source for v in verdicts] == [source.name for source in batch]
    for verdict in verdicts:
        json.loads(verdict.to_json())
        if verdict.label == Label.ERROR:
            assert verdict.error and "\n" not in verdict.error
        else:
            assert len(verdict.evidence) == len(DECLARED_SIGNAL_DETECTORS)


# Inputs that raised out of the old loader (and so crashed the whole batch), as the campaign describes
# them: "<seed> <mutation>:<seed> ...". Found by ``python -m benchmarks fuzz``'s generator (campaign
# seed 17) run against the loader before issue 17; the exception each raised is in the comment.
REGRESSIONS = [
    "tiff_lzw_multipage delete_span:1163127598",  # TypeError: Missing dimensions (page 2, from n_frames)
    "tiff_lzw_multipage tiff_tags:2221260568",  # TypeError: Missing dimensions
    "tiff_multipage flip_bits:1706495740 duplicate_span:624389414 jpeg_segments:1224401288",  # TypeError
    "tiff_lzw_multipage jpeg_segments:3529375404",  # SyntaxError: unknown pixel mode
    "tiff_multipage duplicate_span:3850030206",  # SyntaxError: unknown pixel mode
    "tiff_multipage huge_dimensions:2486977673 tiff_tags:1234542549 jpeg_segments:2110070654",  # SyntaxError:
    # unknown data organization
]


@pytest.mark.parametrize("description", REGRESSIONS)
def test_regressions(seeds, checker, description):
    seed, *ops = description.split()
    data = mutate(seeds[seed], [(name, int(value)) for name, value in (op.split(":") for op in ops)])
    _assert_loaded_or_refused(data)
    (verdict,) = checker.check([NamedBytes(description, data)])
    assert verdict.source == description
