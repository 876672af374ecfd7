"""A fully convolutional GAN for photo textures (spatial-GAN style) with a spectral-norm critic.

The latent is a spatial noise map at 1/``size_multiple`` of the image size, so a generator trained
on 64x64 patches samples 256x256 (or 512x384, ...) from a larger map. Upsampling is nearest + 3x3
conv (no transposed convs: they leave the checkerboard a detector would key on), normalisation is
DCGAN's batch norm (sampling uses its running statistics, so a sample never depends on its batch),
and each conv gets StyleGAN-style per-pixel noise for fine stochastic texture. The generator's EMA
is what is exported and sampled.

Measured on our photo patches: ProGAN's pixel norm instead of batch norm collapsed the generator
to one flat colour within 200 steps (with hinge and with logistic loss); batch norm with the
non-saturating logistic loss trains stably.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from . import ImageGenerator, autocast, check_size, register, seeded, to_uint8


@dataclass(frozen=True)
class GANConfig:
    latent_channels: int = 32
    # Channels per generator level, from the latent resolution up; each level after the first
    # doubles the resolution, so the latent is at 1/2**(len-1) of the image size.
    generator_widths: tuple[int, ...] = (256, 128, 64, 32)
    convs_per_level: int = 1
    noise_injection: bool = True
    loss: str = "logistic"  # "logistic" (non-saturating) or "hinge"
    # Channels per critic level; each level halves the resolution with a strided 4x4 conv.
    discriminator_widths: tuple[int, ...] = (64, 128, 256)
    lr_generator: float = 2e-4
    lr_discriminator: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.999


class NoisyConv(nn.Module):
    """3x3 conv, per-pixel noise scaled per channel (starts at zero), batch norm, leaky ReLU."""

    def __init__(self, in_channels: int, out_channels: int, noise: bool):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.noise_scale = nn.Parameter(torch.zeros(1, out_channels, 1, 1)) if noise else None
        self.norm = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        x = self.conv(x)
        if self.noise_scale is not None:
            x = x + self.noise_scale * noise
        return F.leaky_relu(self.norm(x), 0.2)


class Generator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList()
        self.upsample_before: list[bool] = []
        in_channels = config.latent_channels
        for level, width in enumerate(config.generator_widths):
            for i in range(config.convs_per_level):
                self.layers.append(NoisyConv(in_channels, width, config.noise_injection))
                self.upsample_before.append(level > 0 and i == 0)
                in_channels = width
        self.to_rgb = nn.Conv2d(in_channels, 3, 1)

    @property
    def factor(self) -> int:
        return 2 ** (len(self.config.generator_widths) - 1)

    def make_inputs(self, n: int, height: int, width: int, rng: torch.Generator
                    ) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """The latent map and one noise map per conv, all drawn from ``rng``."""
        h, w = height // self.factor, width // self.factor
        latent = torch.randn(n, self.config.latent_channels, h, w, generator=rng)
        noises: list[torch.Tensor | None] = []
        for upsample in self.upsample_before:
            if upsample:
                h, w = h * 2, w * 2
            noises.append(torch.randn(n, 1, h, w, generator=rng) if self.config.noise_injection else None)
        return latent, noises

    def forward(self, latent: torch.Tensor, noises: list[torch.Tensor | None]) -> torch.Tensor:
        x = latent
        for layer, upsample, noise in zip(self.layers, self.upsample_before, noises):
            if upsample:
                x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = layer(x, noise)
        return torch.tanh(self.to_rgb(x))


class Discriminator(nn.Module):
    """Spectral-norm critic; fully convolutional, scores are averaged over the final map."""

    def __init__(self, config: GANConfig):
        super().__init__()
        widths = config.discriminator_widths
        layers: list[nn.Module] = [spectral_norm(nn.Conv2d(3, widths[0], 3, padding=1)), nn.LeakyReLU(0.2)]
        in_channels = widths[0]
        for width in widths:
            layers += [spectral_norm(nn.Conv2d(in_channels, width, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            in_channels = width
        layers.append(spectral_norm(nn.Conv2d(in_channels, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images).float().mean(dim=(1, 2, 3))


class GAN(ImageGenerator):
    family = "gan"
    # this texture hides the mark from the decoder too: of 32 GAN images (256 and 512 px), at 1.0 the
    # shipped weights detect 27 and read the ID of fewer; at 2.0 (PSNR 35.7 dB on this texture) all
    # 32 are detected, after JPEG q75 too, and 23 IDs are read (model card, session-5 report)
    learned_mark_strength = 2.0
    Config = GANConfig
    training_defaults = {"patch": 32, "batch_size": 32, "bf16": False, "sample_every": 500, "grid_options": {}}

    @classmethod
    def width_config(cls, width: int) -> dict:
        """``width`` latent channels x8 at the top of the generator."""
        return {"generator_widths": (8 * width, 4 * width, 2 * width, width),
                "discriminator_widths": (2 * width, 4 * width, 8 * width)}

    def __init__(self, config: GANConfig):
        self.config = config
        self.generator = Generator(config)
        self.generator_ema = copy.deepcopy(self.generator).eval().requires_grad_(False)
        self._discriminator: Discriminator | None = None

    @property
    def discriminator(self) -> Discriminator:
        if self._discriminator is None:  # only training needs it
            self._discriminator = Discriminator(self.config)
        return self._discriminator

    @property
    def size_multiple(self) -> int:
        return self.generator.factor

    @torch.no_grad()
    def sample(self, n: int, size: int | tuple[int, int] = 256, seed: int = 0, bf16: bool = False,
               batch_size: int = 8, first: int = 0) -> np.ndarray:
        height, width = check_size(size, self.size_multiple)
        out = []
        for start in range(first, first + n, batch_size):
            inputs = [self.generator_ema.make_inputs(1, height, width, seeded(seed, i))
                      for i in range(start, min(first + n, start + batch_size))]
            latent = torch.cat([z for z, _ in inputs])
            noises = [None if parts[0] is None else torch.cat(parts) for parts in zip(*(nz for _, nz in inputs))]
            with autocast(bf16):
                out.append(to_uint8(self.generator_ema(latent, noises)))
        return np.concatenate(out) if out else np.zeros((0, height, width, 3), np.uint8)

    def export_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone().contiguous() for k, v in self.generator_ema.state_dict().items()}

    def load_export_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator_ema.load_state_dict(state)
        self.generator.load_state_dict(state)

    def trainable_modules(self) -> dict[str, nn.Module]:
        return {"generator": self.generator, "generator_ema": self.generator_ema,
                "discriminator": self.discriminator}

    def make_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {"generator": torch.optim.Adam(self.generator.parameters(), lr=c.lr_generator, betas=c.betas),
                "discriminator": torch.optim.Adam(self.discriminator.parameters(), lr=c.lr_discriminator,
                                                  betas=c.betas)}

    def train_step(self, real: torch.Tensor, optimizers: dict, noise: torch.Generator, step: int,
                   bf16: bool) -> dict[str, float]:
        generator, critic = self.generator.train(), self.discriminator.train()
        n, _, height, width = real.shape
        latent, noises = generator.make_inputs(n, height, width, noise)

        critic.requires_grad_(True)
        optimizers["discriminator"].zero_grad(set_to_none=True)
        with autocast(bf16):
            fake = generator(latent, noises)
            scores = critic(torch.cat([real, fake.detach()]))
        real_scores, fake_scores = scores[:n], scores[n:]
        if self.config.loss == "hinge":
            loss_d = F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()
        else:
            loss_d = F.softplus(-real_scores).mean() + F.softplus(fake_scores).mean()
        loss_d.backward()
        optimizers["discriminator"].step()

        critic.requires_grad_(False)  # no weight gradients for the critic in the generator step
        optimizers["generator"].zero_grad(set_to_none=True)
        with autocast(bf16):
            fake_scores_for_generator = critic(fake)
        if self.config.loss == "hinge":
            loss_g = -fake_scores_for_generator.mean()
        else:
            loss_g = F.softplus(-fake_scores_for_generator).mean()
        loss_g.backward()
        optimizers["generator"].step()
        critic.requires_grad_(True)

        update_ema(self.generator_ema, generator, self.config.ema_decay, step)
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(),
                "d_real": real_scores.mean().item(), "d_fake": fake_scores.mean().item()}


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    # Ramp the decay up so an EMA of a short run is not dominated by the random initialisation.
    decay = min(decay, (1 + step) / (10 + step))
    for ema_param, param in zip(ema.parameters(), model.parameters()):
        ema_param.lerp_(param, 1 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers()):
        ema_buffer.copy_(buffer)


register("gan")(GAN.from_config)
