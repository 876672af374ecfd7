"""Export the learned decoder to ONNX, so reading the mark runs on onnxruntime without torch."""
from __future__ import annotations

from pathlib import Path

from .networks import PlacementScores
from .scheme import onnx_path, placements_onnx_path
from .weights import load_networks


def export_decoder(weights: str | Path, out: str | Path | None = None) -> Path:
    """Write ``<weights>.decoder.onnx`` (or ``out``): input ``views`` (N, 3, size, size) RGB in [0, 1],
    output ``logits`` (N, bits); and beside it ``.placements.onnx``, the registration's scores
    (:class:`.networks.PlacementScores`, dense: windows every half cell, spacing in its ``stride``
    metadata)."""
    import torch

    _, decoder, net = load_networks(weights)
    out = Path(out) if out else onnx_path(weights)
    example = torch.rand(1, 3, net.size, net.size)
    torch.onnx.export(decoder, (example,), str(out), input_names=["views"], output_names=["logits"],
                      dynamic_axes={"views": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    if net.decoder_head == "flatten":  # crop registration's placement scores (any canvas size)
        canvas = torch.rand(1, 3, net.size + 16, net.size + 24)
        scores_out = Path(out).with_suffix("").with_suffix(".placements.onnx") if out else placements_onnx_path(weights)
        scores = PlacementScores(decoder, dense=True).eval()
        torch.onnx.export(scores, (canvas,), str(scores_out),
                          input_names=["canvases"], output_names=["scores"], opset_version=17, dynamo=False,
                          dynamic_axes={"canvases": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 1: "rows", 2: "cols"}})
        import onnx

        graph = onnx.load(str(scores_out))  # the registration reads its window spacing from here
        graph.metadata_props.add(key="stride", value=str(scores.stride))
        onnx.save(graph, str(scores_out))
    return out
