"""What keeps ``check`` fast: no torch/timm on its path, the shipped CNN as ONNX giving the torch
model's scores, precision chosen by CPU capability, batched classifier scoring, ``--fast``."""
from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

from provenance.shipped import CLASSIFIERS_DIR as SHIPPED_WEIGHTS
from detectors.learned import load_classifier
from detectors.learned.cnn import ONNX_FILE, WEIGHTS_FILE
from detectors.learned.tiles import cut_tiles
from provenance import precision
from provenance.check import DECLARED_SIGNAL_DETECTORS, CheckConfig, Checker
from provenance.cli import main
from provenance.imageio import load_image

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("timm", "torch", "torch._dynamo", "torchvision", "scipy.special", "sklearn")


@pytest.fixture(scope="module")
def photo_jpeg(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("photo") / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path, quality=90)
    return path


def _modules_after_cli(args: list[str]) -> tuple[int, list[str]]:
    """Run the CLI in a fresh interpreter; the heavy modules it imported and its exit code."""
    script = (
        "import sys, json\n"
        "from provenance.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as exit:\n"
        "    code = exit.code\n"
        f"print(json.dumps([code, sorted(m for m in {list(HEAVY)!r} if m in sys.modules)]))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    code, imported = json.loads(result.stdout.strip().splitlines()[-1])
    return code, imported


def test_check_on_a_jpeg_imports_no_torch_timm_or_scipy(photo_jpeg, tmp_path):
    code, imported = _modules_after_cli(["check", str(photo_jpeg)])
    assert code == 0 and imported == []
    code, imported = _modules_after_cli(["check", "--heatmap", str(tmp_path / "map.png"), str(photo_jpeg)])
    assert code == 0 and imported == [] and (tmp_path / "map.png").stat().st_size > 0


def test_shipped_cnn_runs_its_onnx_graph_and_gives_the_torch_scores():
    model = load_classifier(SHIPPED_WEIGHTS / "cnn")
    assert model.backend == "onnxruntime-fp32"
    tiles = np.concatenate([cut_tiles(photo, 64, 64)[0] for photo in (data.astronaut(), data.rocket())])
    onnx_logits = model.tile_logits(tiles)
    torch_logits = model.torch_tile_logits(tiles, bf16=False)
    np.testing.assert_allclose(onnx_logits, torch_logits, atol=1e-3)
    assert abs(model.probability(np.array([onnx_logits.mean()]))[0]
               - model.probability(np.array([torch_logits.mean()]))[0]) < 1e-4


def test_a_graph_exported_from_other_weights_is_not_used(tmp_path):
    from safetensors.numpy import load_file, save_file

    folder = tmp_path / "cnn"
    shutil.copytree(SHIPPED_WEIGHTS / "cnn", folder)
    state = load_file(str(folder / WEIGHTS_FILE))
    first = sorted(state)[0]
    state[first] = state[first] + np.float32(0.5)  # "retrained" since the graph was exported
    save_file(state, str(folder / WEIGHTS_FILE))
    assert load_classifier(folder).backend.startswith("torch")


@pytest.mark.skipif(importlib.util.find_spec("onnxscript") is None or importlib.util.find_spec("onnx") is None,
                    reason="ONNX export needs the export extra (onnx, onnxscript)")
def test_export_writes_a_graph_that_loads_and_matches_the_torch_model(tmp_path):
    from detectors.learned import create
    from detectors.learned.calibration import OperatingPoint, PlattCalibration
    from provenance.classifier_card import export_inference

    model = create("cnn", channels=[4, 4, 8, 8], stem_width=4, tile=32)
    model.calibration = PlattCalibration(1.0, 0.0)
    model.operating_point = OperatingPoint(0.9, 0.8, 0.01, 0.0, 200)
    model.save(tmp_path)
    lines = export_inference(tmp_path)
    assert (tmp_path / ONNX_FILE).is_file() and any("Max |tile logit difference|" in line for line in lines)
    loaded = load_classifier(tmp_path)
    assert loaded.backend == "onnxruntime-fp32"
    tiles = np.random.default_rng(1).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
    np.testing.assert_allclose(loaded.tile_logits(tiles), loaded.torch_tile_logits(tiles, bf16=False), atol=1e-4)


@pytest.mark.parametrize("flags, native", [
    ({"avx2", "fma"}, False),  # the AVX2 EPYC the issue measured: bf16 is emulated there
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"}, False),
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_bf16"}, True),
    ({"avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq", "amx_bf16", "amx_tile"}, True),
])
def test_bf16_only_where_the_cpu_runs_it_natively(flags, native, monkeypatch):
    monkeypatch.delenv(precision.PRECISION_ENV, raising=False)
    capability = precision.capability_from_flags(flags)
    assert capability.native_bf16 is native
    assert precision.use_bf16(True, capability) is native
    assert precision.use_bf16(False, capability) is False  # a model that is faster in fp32 stays fp32
    monkeypatch.setenv(precision.PRECISION_ENV, "bf16")
    assert precision.use_bf16(True, capability) is True
    monkeypatch.setenv(precision.PRECISION_ENV, "fp32")
    assert precision.use_bf16(True, capability) is False


def test_capability_from_cpuinfo_agrees_with_torch():
    import torch

    flags = precision._cpu_flags()
    if not flags:
        pytest.skip("no /proc/cpuinfo flags on this platform")
    from_flags = precision.capability_from_flags(flags)
    assert from_flags.avx512_bf16 == bool(torch.cpu._is_avx512_bf16_supported())
    assert from_flags.isa in (torch.backends.cpu.get_cpu_capability(), "DEFAULT")


def test_batched_classifier_scores_equal_one_image_at_a_time():
    images = [load_image(_png(rgb)) for rgb in (data.astronaut(), data.chelsea(), data.coffee()[:40])]
    checker = Checker(CheckConfig(detectors=("cnn", "spectral")))
    for detector in checker.detectors:
        batched = detector.detect_batch(images)
        alone = [detector.detect(image) for image in images]
        assert [e.signal for e in batched] == [e.signal for e in alone]
        assert batched[2].signal.value == "skipped"  # 40 px high: under one tile
        for b, a in zip(batched[:2], alone[:2]):
            assert b.probability == pytest.approx(a.probability, abs=1e-6)


def _png(rgb: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "PNG")
    return buffer.getvalue()


def test_fast_profile_runs_only_the_declared_signals(photo_jpeg):
    result = CliRunner().invoke(main, ["check", "--fast", "--json", str(photo_jpeg)])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output.strip().splitlines()[-1])
    assert tuple(e["detector"] for e in verdict["evidence"]) == DECLARED_SIGNAL_DETECTORS
    usage = CliRunner().invoke(main, ["check", "--fast", "--detector", "cnn", str(photo_jpeg)])
    assert usage.exit_code == 2 and "--fast" in usage.output


def test_the_spectral_classifiers_share_one_image_features():
    import detectors

    image = load_image(_png(data.astronaut()))
    toy, corpus = detectors.create("spectral"), detectors.create("spectral-corpus")
    assert toy.model.shared_features_key() == corpus.model.shared_features_key()
    shared = [toy.detect(image), corpus.detect(image)]
    assert len(image._derived) == 1  # computed once, for both
    alone = [toy.detect(load_image(_png(data.astronaut()))), corpus.detect(load_image(_png(data.astronaut())))]
    assert [e.probability for e in shared] == [e.probability for e in alone]
    assert [e.probability for e in shared] == [toy.score(image.rgb).probability, corpus.score(image.rgb).probability]


def test_a_derived_value_is_computed_once_for_threads_and_not_pickled():
    import pickle
    import threading
    import time

    image = load_image(_png(data.astronaut()[:64, :64]))
    calls = []

    def slow():
        calls.append(1)
        time.sleep(0.2)
        return object()

    results = []
    threads = [threading.Thread(target=lambda: results.append(image.derived("k", slow))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and all(r is results[0] for r in results)
    copy = pickle.loads(pickle.dumps(image))
    assert copy._derived == {} and np.array_equal(copy.rgb, image.rgb)
