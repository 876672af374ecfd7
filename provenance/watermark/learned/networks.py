"""The learned mark's networks: a message-to-residual encoder and a decoder, sized for CPU.

Both work at a fixed working resolution (``size``, default 128): the encoder returns a residual at
``size`` x ``size``, which the scheme upsamples to the image; the decoder reads a ``size`` x ``size``
resized view.

The default design is positional and learns in a few hundred steps on one CPU core: the pattern
depends on the message only (a ``message_grid``^2 code map refined by a few convolutions; the image
enters only through the just-noticeable-difference mask), and the decoder reads its feature map
through a linear layer (``decoder_head="flatten"``). Geometry is then handled by training with
crops and rotations and by the scheme reading a few re-aligned views. The first design, a tiled
texture read by a shift-invariant pooled head (``message_tile``, ``decoder_head="mean"``), needs
no re-alignment but plateaued near 0.78 training bit accuracy after 7,000 steps; measurements in
the issue-14 report. Its checkpoints still load (:meth:`NetConfig.from_dict`).

The residual's power is fixed by construction (``target_rms`` times the mask), so the networks only
learn *where* and *how* to spend a given distortion budget; the training curriculum lowers
``target_rms`` from a loud warm-up to the shipping level.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import NetConfig  # noqa: F401  (re-exported: the networks' geometry)


def _conv(cin: int, cout: int, stride: int = 1, padding_mode: str = "zeros") -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, padding_mode=padding_mode), nn.BatchNorm2d(cout), nn.GELU())


def jnd_mask(image: torch.Tensor, floor: float = 0.25) -> torch.Tensor:
    """(B, 1, H, W) in [floor, 1]: how much change each region hides, from local luminance activity.

    Texture masking in the spirit of JND models: busy regions hide more than flat sky. The mask is
    normalised per image so that its mean square is 1 (the residual's budget is then set by rms).
    """
    y = 0.299 * image[:, 0:1] + 0.587 * image[:, 1:2] + 0.114 * image[:, 2:3]
    gx = y[..., :, 1:] - y[..., :, :-1]
    gy = y[..., 1:, :] - y[..., :-1, :]
    activity = F.pad(gx.abs(), (0, 1)) + F.pad(gy.abs(), (0, 0, 0, 1))
    activity = F.avg_pool2d(activity, 5, 1, 2, count_include_pad=False)
    scaled = activity / (activity.mean(dim=(2, 3), keepdim=True) + 1e-4)
    mask = floor + (1 - floor) * torch.tanh(scaled)
    return mask / mask.pow(2).mean(dim=(2, 3), keepdim=True).sqrt()


# RGB -> (Y, Cb, Cr)-like directions, rows orthonormal; the residual is made in this basis
_YUV = torch.tensor([[0.299, 0.587, 0.114], [-0.169, -0.331, 0.5], [0.5, -0.419, -0.081]])
_YUV = _YUV / _YUV.norm(dim=1, keepdim=True)


class Encoder(nn.Module):
    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        w, g = config.width, config.message_grid
        cells = config.message_tile if config.message_tile else g
        self.message = nn.Linear(config.bits, 8 * cells * cells)
        if config.encoder_image:
            self.image = nn.Sequential(_conv(3, w, 2), _conv(w, w))  # at size/2
            self.mix = nn.Sequential(_conv(w + 8, w), _conv(w, w), nn.Conv2d(w, 3, 3, 1, 1))
        else:
            c = "circular" if config.message_tile else "zeros"
            self.mix = nn.Sequential(_conv(8, w, padding_mode=c), _conv(w, w, padding_mode=c),
                                     nn.Conv2d(w, 3, 3, 1, 1, padding_mode=c))
        weights = torch.tensor([config.luma_share, (1 - config.luma_share) / 2, (1 - config.luma_share) / 2])
        self.register_buffer("channel_scale", weights.sqrt(), persistent=False)
        self.register_buffer("yuv_to_rgb", torch.linalg.inv(_YUV), persistent=False)

    def forward(self, image: torch.Tensor, bits: torch.Tensor, target_rms: float | torch.Tensor) -> torch.Tensor:
        """Residual (B, 3, size, size) for images in [0, 1] at the working size and bits in {0, 1}."""
        b, _, h, w = image.shape
        t = self.config.message_tile
        if not self.config.encoder_image:  # one tile repeated over the half-size grid, or one grid
            fh, fw = -(-h // 2), -(-w // 2)
            cells = t or self.config.message_grid
            raw = self.mix(self.message(bits.float() * 2 - 1).view(b, 8, cells, cells))
            raw = raw.repeat(1, 1, -(-fh // t), -(-fw // t))[..., :fh, :fw] if t else raw
            return self._finish(raw, image, target_rms)
        features = self.image(image * 2 - 1)
        fh, fw = features.shape[-2:]
        if t:
            m = self.message(bits.float() * 2 - 1).view(b, 8, t, t)
            m = m.repeat(1, 1, -(-fh // t), -(-fw // t))[..., :fh, :fw]
        else:
            g = self.config.message_grid
            m = self.message(bits.float() * 2 - 1).view(b, 8, g, g)
            m = F.interpolate(m, size=(fh, fw), mode="bilinear", align_corners=False)
        return self._finish(self.mix(torch.cat([features, m], dim=1)), image, target_rms)

    def _finish(self, raw: torch.Tensor, image: torch.Tensor, target_rms: float | torch.Tensor) -> torch.Tensor:
        """Half-size raw pattern -> the residual: upsampled, high-passed, luma/chroma shares, JND mask, rms."""
        h, w = image.shape[-2:]
        raw = F.interpolate(raw, size=(h, w), mode="bilinear", align_corners=False)
        if self.config.highpass:  # spend the budget only where the decoder looks (it removes local means)
            raw = raw - F.avg_pool2d(raw, 7, 1, 3, count_include_pad=False)
        # per-channel unit power in a luma/chroma basis, then the luma share, then back to RGB
        raw = raw / (raw.pow(2).mean(dim=(2, 3), keepdim=True).sqrt() + 1e-6) * self.channel_scale.view(1, 3, 1, 1)
        raw = torch.einsum("ij,bjhw->bihw", self.yuv_to_rgb, raw)
        raw = raw * jnd_mask(image)
        if self.config.peak_ratio > 0:  # clip at peak_ratio x rms, then restore the power: peaks stay low
            rms = raw.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-6
            cap = self.config.peak_ratio * rms
            raw = cap * torch.tanh(raw / cap)
        rms = raw.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt() + 1e-6
        return raw / rms * target_rms


def detail(image: torch.Tensor) -> torch.Tensor:
    """What the decoder reads: the image minus its local (7 px) mean, times 8 (the residual lives in detail)."""
    return (image - F.avg_pool2d(image, 7, 1, 3, count_include_pad=False)) * 8


class Decoder(nn.Module):
    def __init__(self, config: NetConfig):
        super().__init__()
        self.config = config
        w = config.width
        layers = [_conv(3, w, 2)]
        for i in range(config.decoder_blocks - 1):
            layers.append(_conv(w if i == 0 else 2 * w, 2 * w, 2 if i in (0, 2) else 1))
        self.features = nn.Sequential(*layers)
        self.votes = nn.Conv2d(2 * w, config.bits, 1)  # every location votes on every bit
        if config.decoder_head not in ("mean", "bilinear", "flatten"):
            raise ValueError(f"decoder_head must be mean, bilinear or flatten, not {config.decoder_head!r}")
        self.partner = nn.Conv2d(2 * w, config.bits, 1) if config.decoder_head == "bilinear" else None
        if config.decoder_head == "flatten":
            side = -(-config.size // 2)
            for i in range(config.decoder_blocks - 1):
                side = -(-side // 2) if i in (0, 2) else side
            cells = side * side
            self.votes = nn.Sequential(nn.Conv2d(2 * w, 8, 1), nn.Flatten(), nn.Linear(8 * cells, config.bits))

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """Bit logits (B, bits) for images in [0, 1] at the working size."""
        features = self.features(detail(image))
        votes = self.votes(features)
        if self.partner is not None:
            votes = votes * self.partner(features)
        return votes if votes.dim() == 2 else votes.mean(dim=(2, 3))


class PlacementScores(nn.Module):
    """A flatten-head decoder's confidence at every whole-cell placement on a canvas (crop registration,
    :mod:`.registration`): the trunk is translation-equivariant, so the linear read-out applied to
    every window of the canvas's feature map is one convolution; returns mean |logit| per window,
    (N, H/stride - cells + 1, W/stride - cells + 1) for canvases (N, 3, H, W) in [0, 1].

    ``dense``: the same weights at half the stride (4 px instead of 8), by the a-trous rewrite: the
    trunk's last stride-2 convolution runs at stride 1 and every layer after it, the read-out too, is
    dilated by 2. Its windows at even positions are the plain ones; those at odd positions are the
    plain trunk's on the canvas shifted by half a cell, so one pass gives the four half-cell phases
    that would otherwise take four canvases (the layers before that convolution, most of the work,
    run once instead of four times)."""

    def __init__(self, decoder: Decoder, dense: bool = False):
        super().__init__()
        if decoder.config.decoder_head != "flatten":
            raise ValueError("placement scores need the positional (flatten) decoder head")
        self.features, self.reduce = decoder.features, decoder.votes[0]
        self.dilation = 1
        if dense:
            self.features, self.dilation = _a_trous(decoder.features)
        strides = [block[0].stride[0] for block in decoder.features]
        self.stride = math.prod(strides) // self.dilation
        linear = decoder.votes[2]
        cells = round((linear.in_features / self.reduce.out_channels) ** 0.5)
        self.register_buffer("weight", linear.weight.detach().reshape(linear.out_features, -1, cells, cells).clone())
        self.register_buffer("bias", linear.bias.detach().clone())

    def reduced(self, canvas: torch.Tensor) -> torch.Tensor:
        """(N, 8, H/stride, W/stride): the trunk's reduced feature map, which the read-out reads."""
        return self.reduce(self.features(detail(canvas)))

    def logits(self, canvas: torch.Tensor) -> torch.Tensor:
        """(N, bits, rows, cols): the read-out of every window (``stride`` px apart)."""
        return F.conv2d(self.reduced(canvas), self.weight, self.bias, dilation=self.dilation)

    def forward(self, canvas: torch.Tensor) -> torch.Tensor:
        return self.logits(canvas).abs().mean(dim=1)


def _a_trous(features: nn.Sequential) -> tuple[nn.Sequential, int]:
    """A copy of ``features`` (blocks of conv 3x3, norm, activation) whose last stride-2 convolution
    runs at stride 1, with the convolutions after it dilated by 2; returns it and the dilation (2)."""
    import copy

    blocks = copy.deepcopy(features)
    last = max(i for i, block in enumerate(blocks) if block[0].stride[0] == 2)
    blocks[last][0].stride = (1, 1)
    for block in list(blocks)[last + 1:]:
        block[0].dilation, block[0].padding = (2, 2), (2, 2)
    return blocks, 2


def build(config: NetConfig) -> tuple[Encoder, Decoder]:
    return Encoder(config), Decoder(config)
