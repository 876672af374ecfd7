"""Image generators we train ourselves (a GAN and a denoising diffusion model), timm-style.

    >>> from provenance import generators
    >>> generators.available()
    ['diffusion', 'gan']
    >>> model = generators.create("gan", latent_channels=32)      # untrained, for training
    >>> model = generators.load_generator("runs/gan")             # a trained export (or a shipped name)
    >>> images = model.sample(4, size=256, seed=0)                 # (4, 256, 256, 3) uint8

Both families are fully convolutional: trained on small patches, they sample any size that is a
multiple of ``model.size_multiple``. An export is a directory with ``weights.safetensors`` (sampling
weights only) and ``config.json``; shipped exports live in ``provenance/generators/weights/<name>/``.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance.registry import Registry
from provenance.shipped import GENERATOR_CONFIG_FILE as CONFIG_FILE
from provenance.shipped import GENERATOR_WEIGHTS_FILE as WEIGHTS_FILE
from provenance.shipped import GENERATORS_DIR as SHIPPED_WEIGHTS_DIR
from provenance.shipped import generator_dir as resolve_export_dir

if TYPE_CHECKING:
    import numpy as np
    import torch

GENERATORS: Registry["ImageGenerator"] = Registry("generator")
register = GENERATORS.register

_FAMILY_MODULES = ("gan", "diffusion")


class ImageGenerator:
    """One model family: sampling for users, plus the hooks the shared training loop drives."""

    family: str = ""
    Config: type  # the family's config dataclass
    config: Any  # an instance of it
    # TrainConfig fields this family trains with unless told otherwise (measured CPU step times,
    # see benchmarks/generation.py)
    training_defaults: dict = {}
    # Strength of the learned mark in this family's output (None: the scheme's default, 1.2, PSNR
    # ~40.1 dB). Busy, noisy textures hide the mark from the decoder as well as from the eye.
    learned_mark_strength: float | None = None

    @classmethod
    def from_config(cls, **fields) -> "ImageGenerator":
        """A new, randomly initialised model; ``fields`` override the config's defaults. Registered
        as the family's factory, so the registry also knows the family's class."""
        return cls(cls.Config(**fields))

    @classmethod
    def width_config(cls, width: int) -> dict:
        """Model-config fields for a model of ``width`` (the CLI's one size knob)."""
        raise NotImplementedError

    @property
    def size_multiple(self) -> int:
        """Sample sizes must be multiples of this (the network's total down/upsampling factor)."""
        raise NotImplementedError

    def sample(self, n: int, size: int | tuple[int, int] = 256, seed: int = 0, first: int = 0,
               **options) -> "np.ndarray":
        """(n, H, W, 3) uint8: images ``first .. first + n - 1``; image i depends only on
        (weights, seed, i, size, options), so a long run can be sampled in chunks."""
        raise NotImplementedError

    # -- export: what users need to sample (generator or EMA weights only) --
    def export_state_dict(self) -> dict[str, "torch.Tensor"]:
        raise NotImplementedError

    def load_export_state_dict(self, state: dict[str, "torch.Tensor"]) -> None:
        raise NotImplementedError

    # -- training hooks, used by provenance.generators.training --
    def trainable_modules(self) -> dict[str, "torch.nn.Module"]:
        """Everything whose state a checkpoint must hold (including EMA copies)."""
        raise NotImplementedError

    def make_optimizers(self) -> dict[str, "torch.optim.Optimizer"]:
        raise NotImplementedError

    def train_step(self, real: "torch.Tensor", optimizers: dict, noise: "torch.Generator", step: int,
                   bf16: bool) -> dict[str, float]:
        """One update on ``real`` (N, 3, P, P) in [-1, 1]; returns the losses to log."""
        raise NotImplementedError

    def config_dict(self) -> dict:
        return {"family": self.family, "model": asdict(self.config)}


def to_uint8(images: "torch.Tensor") -> "np.ndarray":
    """(N, 3, H, W) in [-1, 1] -> (N, H, W, 3) uint8."""
    import torch

    pixels = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return pixels.permute(0, 2, 3, 1).contiguous().numpy()


def seeded(seed: int, *stream: int) -> "torch.Generator":
    """A torch RNG for one (seed, stream...) tuple, so image i or step s never depends on the others."""
    import numpy as np
    import torch

    mixed = np.random.SeedSequence([seed, *stream]).generate_state(2, np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & (2**63 - 1))


def autocast(bf16: bool):
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)


def check_size(size: int | tuple[int, int], multiple: int) -> tuple[int, int]:
    height, width = (size, size) if isinstance(size, int) else size
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise ValueError(f"size {height}x{width} must be positive multiples of {multiple}")
    return height, width


def _ensure_registered() -> None:
    for module in _FAMILY_MODULES:
        importlib.import_module(f"{__name__}.{module}")


def available() -> list[str]:
    _ensure_registered()
    return GENERATORS.available()


def create(name: str, **config) -> ImageGenerator:
    """A new, randomly initialised generator of family ``name``; ``config`` overrides its dataclass fields."""
    _ensure_registered()
    return GENERATORS.create(name, **config)


def family_class(name: str) -> type[ImageGenerator]:
    _ensure_registered()
    return GENERATORS.factory(name).__self__  # the bound ``from_config`` each family registers


def load_generator(path_or_name: str | Path) -> ImageGenerator:
    """A trained generator from an export directory, or a shipped one by name."""
    from safetensors.torch import load_file

    directory = resolve_export_dir(path_or_name)
    config_path, weights_path = directory / CONFIG_FILE, directory / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise FileNotFoundError(f"{directory}: missing {required.name} (has training finished a checkpoint?)")
    config = json.loads(config_path.read_text())
    generator = create(config["family"], **_tuples(config["model"]))
    generator.load_export_state_dict(load_file(str(weights_path)))
    return generator


def _tuples(fields: dict) -> dict:
    """JSON turns the dataclasses' tuples into lists; frozen configs want them back as tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}


__all__ = ["GENERATORS", "SHIPPED_WEIGHTS_DIR", "ImageGenerator", "available", "create", "load_generator", "register"]
