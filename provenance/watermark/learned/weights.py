"""Weights of the learned mark: safetensors only (loading never runs code), config in the metadata."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from .config import NetConfig

if TYPE_CHECKING:  # torch loads only to embed or train: reading a mark runs on onnxruntime
    from .networks import Decoder, Encoder

FORMAT = "provenance-learned-watermark-v1"


class WeightsError(ValueError):
    pass


def save_weights(path: str | Path, encoder: Encoder, decoder: Decoder, net: NetConfig, extra: dict | None = None) -> None:
    from safetensors.torch import save_file

    tensors = {f"encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}
    tensors.update({f"decoder.{k}": v.contiguous() for k, v in decoder.state_dict().items()})
    metadata = {"format": FORMAT, "net": json.dumps(net.to_dict()), "extra": json.dumps(extra or {})}
    save_file(tensors, str(path), metadata=metadata)


def read_metadata(path: str | Path) -> tuple[NetConfig, dict]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as handle:
            metadata = handle.metadata() or {}
    except FileNotFoundError:
        raise WeightsError(f"{path}: no such weights file") from None
    except Exception as exc:  # safetensors raises its own error types for bad headers
        raise WeightsError(f"{path}: not a safetensors file ({str(exc).splitlines()[0]})") from None
    if metadata.get("format") != FORMAT:
        raise WeightsError(f"{path}: not learned-watermark weights (format {metadata.get('format')!r})")
    return NetConfig.from_dict(json.loads(metadata["net"])), json.loads(metadata.get("extra", "{}"))


def load_networks(path: str | Path) -> tuple[Encoder, Decoder, NetConfig]:
    """Encoder and decoder in eval mode, from a safetensors file."""
    from safetensors.torch import load_file

    from .networks import build

    net, _ = read_metadata(path)
    tensors = load_file(str(path))
    encoder, decoder = build(net)
    for prefix, module in (("encoder.", encoder), ("decoder.", decoder)):
        state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
        try:
            module.load_state_dict(state)
        except RuntimeError as exc:
            raise WeightsError(f"{path}: weights do not fit the network in its metadata ({str(exc).splitlines()[0]})") from None
    return encoder.eval(), decoder.eval(), net
