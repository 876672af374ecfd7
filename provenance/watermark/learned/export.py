"""Export the learned decoder to ONNX, so reading the mark runs on onnxruntime without torch."""
from __future__ import annotations

from pathlib import Path

from .scheme import onnx_path
from .weights import load_networks


def export_decoder(weights: str | Path, out: str | Path | None = None) -> Path:
    """Write ``<weights>.decoder.onnx`` (or ``out``): input ``views`` (N, 3, size, size) RGB in [0, 1],
    output ``logits`` (N, bits)."""
    import torch

    _, decoder, net = load_networks(weights)
    out = Path(out) if out else onnx_path(weights)
    example = torch.rand(1, 3, net.size, net.size)
    torch.onnx.export(decoder, (example,), str(out), input_names=["views"], output_names=["logits"],
                      dynamic_axes={"views": {0: "n"}, "logits": {0: "n"}}, opset_version=17, dynamo=False)
    return out
