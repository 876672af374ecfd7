"""A small denoising diffusion model: DDPM training (epsilon prediction, cosine schedule), DDIM sampling.

The UNet is fully convolutional with no global attention (optional attention only at the lowest
level), so a model trained on 32x32 patches samples at any multiple of ``size_multiple``. The EMA
of the weights is what is exported and sampled.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import ImageGenerator, autocast, check_size, register, seeded, to_uint8
from .gan import update_ema


@dataclass(frozen=True)
class DiffusionConfig:
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2)  # one UNet level each; all but the last halve the size
    blocks_per_level: int = 1
    attention_at_lowest: bool = False
    timesteps: int = 1000
    lr: float = 2e-4
    ema_decay: float = 0.999
    sample_steps: int = 50


def cosine_alphas_cumprod(timesteps: int, offset: float = 0.008) -> torch.Tensor:
    """Nichol & Dhariwal's cosine schedule, as cumulative signal fractions alpha-bar_t, t = 0..T-1."""
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + offset) / (1 + offset) * math.pi / 2) ** 2
    betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
    return torch.cumprod(1 - betas, dim=0).float()


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, time_dim: int):
        super().__init__()
        self.norm1 = _norm(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.time = nn.Linear(time_dim, out_channels)
        self.norm2 = _norm(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: torch.Tensor, time: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time(time)[:, :, None, None].to(h.dtype)
        h = self.conv2(F.silu(self.norm2(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.heads = heads
        self.norm = _norm(channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.out(out.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    def __init__(self, config: DiffusionConfig):
        super().__init__()
        base, mults = config.base_channels, config.channel_mults
        time_dim = 4 * base
        self.base = base
        self.time_mlp = nn.Sequential(nn.Linear(base, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim))
        self.stem = nn.Conv2d(3, base, 3, padding=1)

        self.down = nn.ModuleList()
        skip_channels = [base]
        channels = base
        for level, mult in enumerate(mults):
            for _ in range(config.blocks_per_level):
                self.down.append(ResBlock(channels, base * mult, time_dim))
                channels = base * mult
                skip_channels.append(channels)
            if level < len(mults) - 1:
                self.down.append(nn.Conv2d(channels, channels, 3, stride=2, padding=1))
                skip_channels.append(channels)

        self.mid1 = ResBlock(channels, channels, time_dim)
        self.mid_attention = SelfAttention(channels) if config.attention_at_lowest else nn.Identity()
        self.mid2 = ResBlock(channels, channels, time_dim)

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(mults))):
            for _ in range(config.blocks_per_level + 1):
                self.up.append(ResBlock(channels + skip_channels.pop(), base * mult, time_dim))
                channels = base * mult
            if level > 0:
                self.up.append(nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                                             nn.Conv2d(channels, channels, 3, padding=1)))
        self.head = nn.Sequential(_norm(channels), nn.SiLU(), nn.Conv2d(channels, 3, 3, padding=1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        time = self.time_mlp(timestep_embedding(t, self.base))
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            h = layer(h, time) if isinstance(layer, ResBlock) else layer(h)
            skips.append(h)
        h = self.mid2(self.mid_attention(self.mid1(h, time)), time)
        for layer in self.up:
            if isinstance(layer, ResBlock):
                h = layer(torch.cat([h, skips.pop()], dim=1), time)
            else:
                h = layer(h)
        return self.head(h)


class Diffusion(ImageGenerator):
    family = "diffusion"
    Config = DiffusionConfig
    training_defaults = {"patch": 32, "batch_size": 32, "bf16": True, "sample_every": 1000,
                         "grid_options": {"steps": 25}}

    @classmethod
    def width_config(cls, width: int) -> dict:
        """``width`` UNet base channels."""
        return {"base_channels": width}

    def __init__(self, config: DiffusionConfig):
        self.config = config
        self.unet = UNet(config)
        self.unet_ema = copy.deepcopy(self.unet).eval().requires_grad_(False)
        self.alphas_cumprod = cosine_alphas_cumprod(config.timesteps)

    @property
    def size_multiple(self) -> int:
        return 2 ** (len(self.config.channel_mults) - 1)

    def ddim_timesteps(self, steps: int) -> list[int]:
        steps = max(1, min(steps, self.config.timesteps))
        return sorted({int(t) for t in np.linspace(0, self.config.timesteps - 1, steps).round()}, reverse=True)

    @torch.no_grad()
    def sample(self, n: int, size: int | tuple[int, int] = 256, seed: int = 0, steps: int | None = None,
               bf16: bool = False, batch_size: int = 8, first: int = 0) -> np.ndarray:
        """DDIM (eta = 0) with ``steps`` denoising steps (default ``config.sample_steps``)."""
        height, width = check_size(size, self.size_multiple)
        timesteps = self.ddim_timesteps(steps or self.config.sample_steps)
        out = []
        for start in range(first, first + n, batch_size):
            x = torch.cat([torch.randn(1, 3, height, width, generator=seeded(seed, i))
                           for i in range(start, min(first + n, start + batch_size))])
            out.append(to_uint8(self._ddim(x, timesteps, bf16)))
        return np.concatenate(out) if out else np.zeros((0, height, width, 3), np.uint8)

    def _ddim(self, x: torch.Tensor, timesteps: list[int], bf16: bool) -> torch.Tensor:
        for i, t in enumerate(timesteps):
            a_t = self.alphas_cumprod[t]
            a_prev = self.alphas_cumprod[timesteps[i + 1]] if i + 1 < len(timesteps) else torch.tensor(1.0)
            with autocast(bf16):
                eps = self.unet_ema(x, torch.full((x.shape[0],), t)).float()
            x0 = ((x - (1 - a_t).sqrt() * eps) / a_t.sqrt()).clamp(-1, 1)
            eps = (x - a_t.sqrt() * x0) / (1 - a_t).sqrt()  # consistent with the clipped x0
            x = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * eps
        return x

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in self.unet_ema.state_dict().items()}

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.unet_ema.load_state_dict(state)
        self.unet.load_state_dict(state)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"unet": self.unet, "unet_ema": self.unet_ema}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"unet": torch.optim.AdamW(self.unet.parameters(), lr=self.config.lr, weight_decay=0.0)}

    def train_step(self, real: torch.Tensor, optimizers: dict, noise: torch.Generator, step: int,
                   bf16: bool) -> dict[str, float]:
        unet = self.unet.train()
        n = real.shape[0]
        t = torch.randint(0, self.config.timesteps, (n,), generator=noise)
        eps = torch.randn(real.shape, generator=noise)
        a = self.alphas_cumprod[t][:, None, None, None]
        noisy = a.sqrt() * real + (1 - a).sqrt() * eps
        optimizers["unet"].zero_grad(set_to_none=True)
        with autocast(bf16):
            predicted = unet(noisy, t)
        loss = F.mse_loss(predicted.float(), eps)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(unet.parameters(), 1.0)
        optimizers["unet"].step()
        update_ema(self.unet_ema, unet, self.config.ema_decay, step)
        return {"loss": loss.item(), "grad_norm": float(grad_norm)}


register("diffusion")(Diffusion.from_config)
