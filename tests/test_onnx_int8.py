"""The int8 forms of exported graphs (provenance/onnx_int8.py): close to the float graph, chosen only
where asked, and never a stale one made from an earlier export."""
from __future__ import annotations

import numpy as np
import pytest

from provenance.files import file_sha256
from provenance.onnx_int8 import int8_path, is_int8, open_session, quantize_graph

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")


def _export(path, seed: int):
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 4, 3)).eval()
    torch.onnx.export(net, (torch.rand(1, 3, 16, 16),), str(path), input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, opset_version=17, dynamo=False)
    graph = onnx.load(str(path))
    graph.metadata_props.add(key="stride", value="4")
    onnx.save(graph, str(path))
    return path


def _inputs(seed: int, n: int = 4) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.random((4, 3, 16, 16), dtype=np.float32)} for _ in range(n)]


def test_the_int8_form_runs_close_to_the_float_graph_and_keeps_its_metadata(tmp_path):
    graph = _export(tmp_path / "g.onnx", 0)
    assert quantize_graph(graph, int8_path(graph), _inputs(0)) == tmp_path / "g.int8.onnx"
    quantised, plain = open_session(graph, int8=True), open_session(graph, int8=False)
    assert is_int8(quantised) == file_sha256(graph) and is_int8(plain) is None
    assert quantised.get_modelmeta().custom_metadata_map["stride"] == "4"
    x = _inputs(1, 1)[0]
    a, b = plain.run(None, x)[0].ravel(), quantised.run(None, x)[0].ravel()
    assert 0 < np.abs(a - b).max() < 0.1 * np.abs(a).max()  # quantised, not a copy; and close
    assert np.corrcoef(a, b)[0, 1] > 0.99
    assert not list(tmp_path.glob("*.pre")) + list(tmp_path.glob("*.tmp"))


def test_a_stale_or_missing_int8_form_leaves_the_float_graph(tmp_path):
    graph = _export(tmp_path / "g.onnx", 0)
    assert is_int8(open_session(graph, int8=True)) is None  # none yet
    quantize_graph(graph, int8_path(graph), _inputs(0))
    _export(graph, 1)  # exported again: other weights, the old int8 form stays on disk
    assert int8_path(graph).is_file() and is_int8(open_session(graph, int8=True)) is None
