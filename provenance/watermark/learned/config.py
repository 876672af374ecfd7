"""The learned mark's network geometry, without torch: reading a mark on onnxruntime needs only this."""
from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class NetConfig:
    bits: int = 128
    size: int = 128  # working resolution of both networks
    width: int = 32  # channels of the convolutional stacks
    message_grid: int = 16  # the message is spread over a message_grid^2 map before upsampling
    message_tile: int = 0  # > 0: instead, a message_tile^2 tile repeated over the image (a stationary
    # texture for the shift-invariant heads; these learned far too slowly on CPU, see the module doc)
    decoder_blocks: int = 6
    highpass: bool = True  # remove the residual's local (7 px) mean: the decoder cannot see it anyway
    luma_share: float = 0.8  # of the residual's energy in Y; chroma is what JPEG subsamples first
    decoder_head: str = "flatten"  # "flatten": a linear read-out of the whole feature map (positional);
    # "mean": every location votes and the votes are averaged (shift-invariant, with message_tile);
    # "bilinear": the mean of products of two feature maps (a quadratic shift-invariant read-out)
    encoder_image: bool = False  # False: the pattern depends on the message only (the image sets only
    # the JND mask), made at message_grid^2 (or on one tile with circular padding): cheap to embed
    peak_ratio: float = 3.0  # > 0: soft-clip every pixel at this many times the rms before setting the
    # power, so it cannot pile up in a few visible spots (without it the net drew +-46/255 corner marks)

    @classmethod
    def from_dict(cls, values: dict) -> "NetConfig":
        """Config from a checkpoint or weights file; files older than a field get its old behaviour."""
        return cls(**{**_LEGACY, **values})

    def to_dict(self) -> dict:
        return asdict(self)


# what files written before a field existed meant (the first design: tiled, image-aware, mean head)
_LEGACY = {"message_tile": 16, "decoder_head": "mean", "encoder_image": True, "peak_ratio": 0.0}
