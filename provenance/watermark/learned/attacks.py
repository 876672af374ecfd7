"""A differentiable attack layer: what platforms do to an image, simulated at the working resolution.

Every attack maps a batch (B, 3, S, S) in [0, 1] to the S x S view the decoder would read after
the attack, and lets gradients through: geometry by ``grid_sample``, JPEG by a YCbCr / 4:2:0 /
8x8-DCT quantiser whose rounding is straight-through, uint8 storage likewise. ``strength`` in
[0, 1] scales every attack's severity (the curriculum ramps it); at 1 the ranges are the issue's:
JPEG 40-95, resize 0.3-1x, crop to 50%, rotation +-15 degrees, flips, brightness/contrast/saturation,
blur, noise, and a screenshot-like downscale + JPEG chain. Geometry and at least one other attack
are combined on each sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

_LUMA_TABLE = torch.tensor([
    [16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55], [14, 13, 16, 24, 40, 57, 69, 56],
    [14, 17, 22, 29, 51, 87, 80, 62], [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
    [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], dtype=torch.float32)
_CHROMA_TABLE = torch.full((8, 8), 99.0)
_CHROMA_TABLE[:4, :4] = torch.tensor([[17, 18, 24, 47], [18, 21, 26, 66], [24, 26, 56, 99], [47, 66, 99, 99]],
                                     dtype=torch.float32)


def _dct_matrix(n: int = 8) -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float32)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m


_DCT = _dct_matrix()


def straight_through_round(x: torch.Tensor) -> torch.Tensor:
    return x + (torch.round(x) - x).detach()


def quantise_uint8(x: torch.Tensor) -> torch.Tensor:
    """Storage as 8-bit pixels, identity gradient."""
    return straight_through_round(x.clamp(0, 1) * 255) / 255


def jpeg(x: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """Simulated baseline JPEG (4:2:0, standard tables scaled by IJG quality), per-sample ``quality``."""
    b, _, h, w = x.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    r, g, bl = x[:, 0] * 255, x[:, 1] * 255, x[:, 2] * 255
    y = 0.299 * r + 0.587 * g + 0.114 * bl - 128
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl
    q = quality.float().clamp(1, 100).view(b, 1, 1)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)

    def table(base: torch.Tensor) -> torch.Tensor:
        return ((base[None] * scale + 50) / 100).floor().clamp(min=1)  # (B, 8, 8)

    def code(channel: torch.Tensor, quant: torch.Tensor) -> torch.Tensor:
        hh, ww = channel.shape[-2:]
        blocks = channel.reshape(b, hh // 8, 8, ww // 8, 8).permute(0, 1, 3, 2, 4)
        coeff = _DCT @ blocks @ _DCT.T
        quant = quant[:, None, None]
        coeff = straight_through_round(coeff / quant) * quant
        return (_DCT.T @ coeff @ _DCT).permute(0, 1, 3, 2, 4).reshape(b, hh, ww)

    def chroma(channel: torch.Tensor) -> torch.Tensor:
        small = F.avg_pool2d(channel[:, None], 2)[:, 0]
        return F.interpolate(code(small, table(_CHROMA_TABLE))[:, None], scale_factor=2, mode="nearest")[:, 0]

    y = code(y, table(_LUMA_TABLE)) + 128
    cb, cr = chroma(cb), chroma(cr)
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], dim=1) / 255
    return rgb[..., :h, :w].clamp(0, 1)


def affine(x: torch.Tensor, angle_deg: torch.Tensor, crop: torch.Tensor, shift: torch.Tensor,
           flip: torch.Tensor) -> torch.Tensor:
    """Rotate by ``angle_deg``, keep a ``crop`` (B, 2: width, height fractions) window at ``shift``
    (B, 2, in [-1, 1] of the free room), mirror where ``flip``; resample to the input size."""
    a = angle_deg * math.pi / 180
    cos, sin = torch.cos(a), torch.sin(a)
    sx = crop[:, 0] * torch.where(flip, -1.0, 1.0)
    sy = crop[:, 1]
    theta = torch.stack([
        torch.stack([cos * sx, -sin * sy, shift[:, 0] * (1 - crop[:, 0])], dim=1),
        torch.stack([sin * sx, cos * sy, shift[:, 1] * (1 - crop[:, 1])], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resize_round_trip(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Downscale by ``factor`` (antialiased) and read back at the original size."""
    size = x.shape[-1]
    small = max(8, round(size * factor))
    down = F.interpolate(x, size=(small, small), mode="bilinear", antialias=True, align_corners=False)
    return F.interpolate(down, size=(size, size), mode="bilinear", align_corners=False)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(2.5 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-t**2 / (2 * sigma**2))
    k = (k / k.sum()).view(1, 1, 1, -1).repeat(3, 1, 1, 1)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k, groups=3)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.transpose(2, 3), groups=3)


def colour(x: torch.Tensor, brightness: torch.Tensor, contrast: torch.Tensor, saturation: torch.Tensor) -> torch.Tensor:
    v = lambda t: t.view(-1, 1, 1, 1)  # noqa: E731
    grey = (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3])
    x = grey + (x - grey) * v(saturation)
    mean = grey.mean(dim=(2, 3), keepdim=True)
    x = mean + (x - mean) * v(contrast)
    return (x * v(brightness)).clamp(0, 1)


@dataclass
class AttackLayer:
    """Random combined attacks; ``names`` restricts the non-geometric pool (for tests and ablations)."""

    geometry_p: float = 0.8
    flips: bool = True  # off for a positional decoder: the scheme reads a mirrored view instead
    max_rotation: float = 15.0  # degrees, at full strength
    max_crop: float = 0.5  # fraction of each side cut away at full strength
    names: tuple[str, ...] = ("jpeg", "resize", "colour", "blur", "noise", "screenshot", "identity")
    # share of batches that see a crop as the scheme reads it after registration: the crop put back
    # in place with black around it, a little off (see ``registered_crop``); 0 in the first runs
    registered_crop_p: float = 0.0
    min_crop_area: float = 0.45

    def __call__(self, x: torch.Tensor, strength: float, generator: torch.Generator) -> torch.Tensor:
        b = x.shape[0]
        u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
        if strength <= 0:
            return quantise_uint8(x)
        registered = u(1).item() < self.registered_crop_p
        if not registered and u(1).item() < self.geometry_p:
            angle = (u(b) * 2 - 1) * self.max_rotation * strength
            crop = 1 - u(b, 2) * self.max_crop * strength
            flip = (u(b) < 0.1 * strength) & self.flips
            x = affine(x, angle, crop, u(b, 2) * 2 - 1, flip)
        x = quantise_uint8(x)
        name = self.names[int(u(1).item() * len(self.names))]
        x = quantise_uint8(ATTACKS[name](x, strength, u))
        return registered_crop(x, self.min_crop_area, u) if registered else x


def registered_crop(x: torch.Tensor, min_area: float, u) -> torch.Tensor:
    """A crop keeping ``min_area``..1 of the frame (aspect within 3:4..4:3) at a random place, as
    registration puts it back: in place, black around it, misplaced by up to 2 working px, 2% in
    scale and 1 degree, the residual errors of the search."""
    b, _, h, w = x.shape
    area = min_area + u(b) * (1 - min_area)
    aspect = torch.exp((u(b) * 2 - 1) * math.log(4 / 3))
    kw, kh = (area * aspect).sqrt().clamp(max=1), (area / aspect).sqrt().clamp(max=1)
    left, top = u(b) * (1 - kw), u(b) * (1 - kh)
    cols = torch.arange(w, dtype=x.dtype).view(1, 1, w) / w
    rows = torch.arange(h, dtype=x.dtype).view(1, h, 1) / h
    inside = ((cols >= left.view(b, 1, 1)) & (cols < (left + kw).view(b, 1, 1)) &
              (rows >= top.view(b, 1, 1)) & (rows < (top + kh).view(b, 1, 1)))
    x = x * inside[:, None].to(x.dtype)
    scale = 1 + (u(b, 2) * 2 - 1) * 0.02
    shift = (u(b, 2) * 2 - 1) * (4.0 / w)  # grid units: 2 px of the working frame
    a = (u(b) * 2 - 1) * math.pi / 180
    cos, sin = torch.cos(a), torch.sin(a)
    theta = torch.stack([torch.stack([cos * scale[:, 0], -sin * scale[:, 1], shift[:, 0]], dim=1),
                         torch.stack([sin * scale[:, 0], cos * scale[:, 1], shift[:, 1]], dim=1)], dim=1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return quantise_uint8(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False))


def _jpeg_attack(x, strength, u):
    return jpeg(x, 95 - u(x.shape[0]) * 55 * strength)


def _resize_attack(x, strength, u):
    return resize_round_trip(x, 1 - float(u(1)) * 0.7 * strength)


def _colour_attack(x, strength, u):
    b = x.shape[0]
    spread = lambda s: 1 + (u(b) * 2 - 1) * s * strength  # noqa: E731
    return colour(x, spread(0.3), spread(0.3), spread(0.5))


def _blur_attack(x, strength, u):
    return gaussian_blur(x, 0.3 + float(u(1)) * 1.2 * strength)


def _noise_attack(x, strength, u):
    noise = torch.randn(x.shape, generator=_child(u)) * float(u(1)) * 0.03 * strength
    return (x + noise).clamp(0, 1)


def _child(u) -> torch.Generator:
    return torch.Generator().manual_seed(int(u(1).item() * 2**62))


def _screenshot_attack(x, strength, u):
    b = x.shape[0]
    x = resize_round_trip(x, 1 - float(u(1)) * 0.5 * strength)
    gamma = (1 + (u(b) * 2 - 1) * 0.2 * strength).view(-1, 1, 1, 1)
    x = x.clamp(1e-4, 1) ** gamma
    return jpeg(quantise_uint8(x), 85 - u(b) * 25 * strength)


ATTACKS: dict[str, Callable] = {
    "jpeg": _jpeg_attack, "resize": _resize_attack, "colour": _colour_attack, "blur": _blur_attack,
    "noise": _noise_attack, "screenshot": _screenshot_attack, "identity": lambda x, strength, u: x,
}
