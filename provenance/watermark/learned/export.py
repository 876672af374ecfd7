"""Export the learned decoder to ONNX, so reading the mark runs on onnxruntime without torch."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

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


def export_int8(weights: str | Path, photos: Sequence[Path], samples: int = 144, seed: int = 0,
                on_progress: Callable[[int], None] | None = None) -> dict:
    """Write the int8 forms (``learned.*.int8.onnx``, :mod:`provenance.onnx_int8`) of the decoder,
    placement-score and distilled-scorer exports beside ``weights``. Their activation ranges are set
    on what each float graph is given while the shipped decision reads ``samples`` photos drawn from
    ``photos`` and edited as registration meets them (:func:`.scorer_training.edited_sample`: three
    in four marked, most cropped, half re-encoded), so a marked image's large activations lie inside
    the ranges. Alternate inputs calibrate; the others measure each int8 graph against its float
    graph. The recorded inputs stay in memory (about 2 GB at the default 144 samples, measured).
    Deterministic for a given seed and photo list. Returns {graph file: {"calibration_inputs",
    "check_inputs", "max_abs_difference", "correlation"}} plus "samples" and "photos"."""
    from provenance.generators.photos import cover
    from provenance.onnx_int8 import int8_path, open_session, quantize_graph

    from .calibrate import decode_learned
    from .scheme import LearnedScheme, scorer_onnx_path
    from .scorer_training import SIZES, draw_photo, edited_sample

    weights = Path(weights)
    scheme = LearnedScheme(weights, backend="onnx", int8=False)
    graphs = {"decoder": onnx_path(weights), "placements": placements_onnx_path(weights), "scorer": scorer_onnx_path(weights)}
    recorded: dict[str, list[np.ndarray]] = {name: [] for name in graphs}
    registration = scheme._registration = scheme.new_registration()
    run, exact, fast = scheme._run, registration.score_canvases, registration.fast

    def recording(name: str, call):
        def record(inputs: np.ndarray) -> np.ndarray:
            recorded[name].append(inputs.copy())
            return call(inputs)
        return record

    scheme._run = recording("decoder", run)
    registration.score_canvases = recording("placements", exact)
    registration.fast = recording("scorer", fast) if fast is not None else None
    photos = list(photos)
    rng = np.random.default_rng([seed, 8])
    used: set[int] = set()
    unreadable: set[int] = set()
    for _ in range(samples):
        index, rgb = draw_photo(photos, rng, unreadable)
        rgb = cover(rgb, SIZES[int(rng.integers(len(SIZES)))])
        decode_learned(edited_sample(scheme, rgb, rng, bool(rng.random() < 0.75)), scheme, ["int8-calibration"])
        used.add(index)
        if on_progress:
            on_progress(1)
    report: dict = {"samples": samples, "photos": len(used)}
    for name, graph in graphs.items():
        inputs = recorded[name]
        if not graph.is_file() or len(inputs) < 2:
            continue
        reference = open_session(graph, int8=False)
        feed = reference.get_inputs()[0].name
        quantize_graph(graph, int8_path(graph), ({feed: x} for x in inputs[::2]))
        quantised, check = open_session(graph, int8=True), inputs[1::2]
        a = np.concatenate([reference.run(None, {feed: x})[0].ravel() for x in check])
        b = np.concatenate([quantised.run(None, {feed: x})[0].ravel() for x in check])
        report[int8_path(graph).name] = {"calibration_inputs": len(inputs[::2]), "check_inputs": len(check),
                                         "max_abs_difference": float(np.abs(a - b).max()),
                                         "correlation": float(np.corrcoef(a, b)[0, 1])}
    return report
