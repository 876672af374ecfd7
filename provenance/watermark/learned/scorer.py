"""A distilled placement scorer: crop registration's search at a fraction of the decoder trunk's cost.

Registration (:mod:`.registration`) ranks a crop's placements by the decoder's confidence, mean
|logit| of the read-out at every window of a canvas, which costs one pass of the decoder's dense
trunk (:class:`.networks.PlacementScores`) per crop scale: most of reading an unmarked image or a
crop. :class:`DistilledScores` keeps the teacher's read-out (its 16 x 16-cell linear layer as one
dilated convolution) and replaces the trunk by a narrow one (16-24 channels instead of 32-64) trained
here to reproduce the teacher's reduced feature map and window scores on canvases as registration
builds them, from marked and unmarked photos after crops, JPEG and resizing.

The scorer only ranks placements: the shortlist is re-scored on its real views by the real decoder
and the decision reads only those views. It sees no key, so the views it picks on an unmarked image
are as good as any fixed views for a random key and the false-positive bound (each view one test
in the Bonferroni correction) holds whatever it learned. What it can cost is detections, measured
by ``python -m benchmarks watermark_scorer``.

Training: :mod:`.scorer_training` (``provenance train watermark-scorer``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from provenance.files import file_sha256

from .networks import PlacementScores, detail

FORMAT = "provenance-placement-scorer-v1"


@dataclass(frozen=True)
class ScorerConfig:
    first: int = 16  # channels of the first (stride 2) convolution
    width: int = 24  # channels of the others
    dilations: tuple[int, ...] = (1, 2, 2)  # the convolutions after the second stride 2, at stride 4

    @classmethod
    def from_dict(cls, values: dict) -> "ScorerConfig":
        return cls(**{**values, "dilations": tuple(values.get("dilations", cls.dilations))})


class DistilledScores(nn.Module):
    """The contract of :class:`.networks.PlacementScores` (dense): canvases (N, 3, H, W) in [0, 1] ->
    mean |logit| at every window, 4 px apart; a narrow trunk, the teacher's read-out (``teacher``:
    a dense :class:`.networks.PlacementScores`)."""

    def __init__(self, teacher: PlacementScores, config: ScorerConfig = ScorerConfig()):
        super().__init__()
        if teacher.stride != 4 or teacher.dilation != 2:
            raise ValueError("the distilled scorer mirrors a dense (stride 4) teacher")
        layers = [_block(3, config.first, 2), _block(config.first, config.width, 2)]
        layers += [_block(config.width, config.width, 1, d) for d in config.dilations]
        self.features = nn.Sequential(*layers)
        self.reduce = nn.Conv2d(config.width, teacher.reduce.out_channels, 1)
        self.register_buffer("weight", teacher.weight.detach().clone())
        self.register_buffer("bias", teacher.bias.detach().clone())
        self.stride, self.dilation, self.config = teacher.stride, teacher.dilation, config

    def reduced(self, canvas: torch.Tensor) -> torch.Tensor:
        """The 8-channel map the read-out reads, as the teacher's :meth:`~.networks.PlacementScores.reduced`."""
        return self.reduce(self.features(detail(canvas)))

    def read_out(self, reduced: torch.Tensor) -> torch.Tensor:
        return F.conv2d(reduced, self.weight, self.bias, dilation=self.dilation).abs().mean(dim=1)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        return self.read_out(self.reduced(canvas))


def _block(cin: int, cout: int, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    # ReLU, not the teacher's GELU: onnxruntime fuses it into the convolution
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation), nn.BatchNorm2d(cout), nn.ReLU())


def teacher_of(weights: str | Path) -> PlacementScores:
    """The dense placement scores of learned weights ``weights`` (the teacher), in eval mode."""
    from .weights import load_networks

    _, decoder, _ = load_networks(weights)
    return PlacementScores(decoder, dense=True).eval()


def save_scorer(path: str | Path, scorer: DistilledScores, teacher_weights: str | Path, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in scorer.state_dict().items() if k not in ("weight", "bias")}
    metadata = {"format": FORMAT, "config": json.dumps(asdict(scorer.config)),
                "teacher_sha256": file_sha256(teacher_weights), "extra": json.dumps(extra or {})}
    save_file(tensors, str(path), metadata=metadata)


def scorer_metadata(path: str | Path) -> dict:
    """The ``extra`` a scorer file records (step, validation agreement, the photos of its samples)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return json.loads((handle.metadata() or {}).get("extra", "{}"))


def load_scorer(path: str | Path, teacher_weights: str | Path) -> DistilledScores:
    """The distilled scorer at ``path`` for learned weights ``teacher_weights`` (whose read-out it
    uses), in eval mode; refuses a scorer distilled from other weights."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    from .weights import WeightsError

    with safe_open(str(path), framework="numpy") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not a placement scorer (format {metadata.get('format')!r})")
    if metadata.get("teacher_sha256") != file_sha256(teacher_weights):
        raise WeightsError(f"{path}: distilled from other learned weights than {teacher_weights}")
    scorer = DistilledScores(teacher_of(teacher_weights), ScorerConfig.from_dict(json.loads(metadata["config"])))
    state = {**load_file(str(path)), "weight": scorer.weight, "bias": scorer.bias}
    scorer.load_state_dict(state)
    return scorer.eval()


def export_scorer(scorer: DistilledScores, out: str | Path) -> Path:
    """The scorer as ONNX with registration's contract (input ``canvases``, output ``scores``, the window
    spacing in its ``stride`` metadata), as the decoder's ``.placements.onnx`` has it."""
    import onnx

    canvas = torch.rand(1, 3, 144, 152)
    torch.onnx.export(scorer.eval(), (canvas,), str(out), input_names=["canvases"], output_names=["scores"],
                      opset_version=17, dynamo=False,
                      dynamic_axes={"canvases": {0: "n", 2: "h", 3: "w"}, "scores": {0: "n", 1: "rows", 2: "cols"}})
    graph = onnx.load(str(out))
    graph.metadata_props.add(key="stride", value=str(scorer.stride))
    graph.metadata_props.add(key="scorer", value="distilled")
    onnx.save(graph, str(out))
    return Path(out)
