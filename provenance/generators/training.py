"""The training loop shared by every generator family: seeding, resumable checkpoints, logs, sample grids.

Everything random in step ``s`` is drawn from RNGs seeded by ``(seed, s)``, and the checkpoint holds
the full module and optimiser state, so a run that is interrupted and resumed reproduces the
uninterrupted run exactly (same machine, same thread count). Files written to ``out``:

    checkpoint.pt          latest full training state (written atomically: temp file, then os.replace)
    weights.safetensors    sampling weights only (generator EMA / UNet EMA), refreshed with each checkpoint
    config.json            family, model config, training config, step, photo split
    log.jsonl              one line per log interval: step, losses, seconds, images/s, load
    samples/step_NNNNNNN.png   a fixed-seed grid of samples at ``grid_size``
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, TextIO

import numpy as np
import torch
from PIL import Image

from provenance.files import save_atomically

from . import CONFIG_FILE, WEIGHTS_FILE, ImageGenerator, _tuples, create, family_class, seeded
from .photos import DEFAULT_SOURCE, PatchSampler, default_split

CHECKPOINT_FILE = "checkpoint.pt"
LOG_FILE = "log.jsonl"
SAMPLES_DIR = "samples"
GRID_SEED = 2024
_TRAINING_STREAM = 1  # keeps step RNGs (seed, 1, step) apart from sampling RNGs (seed, i)
# Changing these between runs in one --out would break resume; the others (steps, intervals) may change.
_RESUME_MUST_MATCH = ("real", "seed", "batch_size", "patch", "scales", "bf16", "holdout_seed")


@dataclass(frozen=True)
class TrainConfig:
    real: str = DEFAULT_SOURCE  # "default" (photos shipped in installed wheels) or a folder
    steps: int = 10_000  # total, including steps done by earlier runs in the same directory
    seed: int = 0
    batch_size: int = 32
    patch: int = 32
    scales: tuple[float, ...] = (0.5,)
    bf16: bool = False
    holdout_seed: int = 0
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 500
    grid_images: int = 16
    grid_size: int = 128
    grid_options: dict = field(default_factory=dict)  # extra sample() options, e.g. {"steps": 25}


def real_batch(sampler: PatchSampler, n: int, rng: np.random.Generator) -> torch.Tensor:
    """(n, 3, P, P) float in [-1, 1]."""
    pixels = torch.from_numpy(sampler.batch(n, rng)).permute(0, 3, 1, 2).float()
    return pixels / 127.5 - 1


class IntervalLog:
    """The losses of a training loop, summed step by step and written as one log.jsonl line per
    interval: their means, the training time so far, speed and machine load."""

    def __init__(self, log: TextIO, batch_size: int, on_log: Callable[[dict], None] | None = None):
        self.log, self.batch_size, self.on_log = log, batch_size, on_log
        self._reset()

    def _reset(self) -> None:
        self.totals: dict[str, float] = {}
        self.steps, self.started = 0, time.perf_counter()

    def add(self, values: dict[str, float]) -> None:
        self.steps += 1
        for k, v in values.items():
            self.totals[k] = self.totals.get(k, 0.0) + v

    def record(self, step: int, elapsed: float) -> dict:
        """The interval's line (not yet written); the next interval starts now."""
        speed = self.steps * self.batch_size / (time.perf_counter() - self.started)
        entry = {"step": step, **{k: round(v / self.steps, 5) for k, v in self.totals.items()},
                 "seconds": round(elapsed, 1), "images_per_s": round(speed, 2), "load_1m": round(os.getloadavg()[0], 2)}
        self._reset()
        return entry

    def write(self, entry: dict) -> None:
        self.log.write(json.dumps(entry) + "\n")
        self.log.flush()
        if self.on_log:
            self.on_log(entry)


def run_loop(trainer, config, train_step: Callable[[], dict[str, float]], on_sample: Callable[[dict | None], None],
             on_log: Callable[[dict], None] | None = None) -> None:
    """The resumable loop every trainer here shares: step until ``config.steps`` (counting
    ``trainer.step`` and its training time ``trainer.elapsed``), a log.jsonl line every ``log_every``
    steps, ``on_sample`` every ``sample_every`` (given the interval's log line when one is due, to add
    to), and ``trainer.save()`` every ``checkpoint_every``; the last step does all three."""
    trainer.out.mkdir(parents=True, exist_ok=True)
    with open(trainer.out / LOG_FILE, "a") as log_file:
        log = IntervalLog(log_file, config.batch_size, on_log)
        while trainer.step < config.steps:
            started = time.perf_counter()
            values = train_step()
            trainer.step += 1
            trainer.elapsed += time.perf_counter() - started
            log.add(values)
            last = trainer.step == config.steps
            entry = log.record(trainer.step, trainer.elapsed) if trainer.step % config.log_every == 0 or last else None
            if trainer.step % config.sample_every == 0 or last:
                on_sample(entry)
            if entry is not None:
                log.write(entry)
            if trainer.step % config.checkpoint_every == 0 or last:
                trainer.save()


def image_grid(images: np.ndarray, columns: int | None = None, gap: int = 2) -> np.ndarray:
    n, h, w, _ = images.shape
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = image
    return grid


class Trainer:
    def __init__(self, family: str, out: str | Path, config: TrainConfig, model_config: dict | None = None):
        self.family = family
        self.out = Path(out)
        self.config = config
        self.model_config = dict(model_config or {})
        self.step = 0
        self.elapsed = 0.0
        checkpoint = self._load_checkpoint()
        if checkpoint is not None:
            self.model_config = _tuples(checkpoint["model_config"])
        with torch.random.fork_rng():  # seeded initialisation without touching the caller's RNG
            torch.manual_seed(config.seed)
            self.model: ImageGenerator = create(family, **self.model_config)
            self.modules = self.model.trainable_modules()
        self.optimizers = self.model.make_optimizers()
        if checkpoint is not None:
            for name, module in self.modules.items():
                module.load_state_dict(checkpoint["modules"][name])
            for name, optimizer in self.optimizers.items():
                optimizer.load_state_dict(checkpoint["optimizers"][name])
            self.step, self.elapsed = checkpoint["step"], checkpoint["elapsed"]
        self.train_photos, self.held_out_photos = default_split(config.real, seed=config.holdout_seed)
        self.sampler = PatchSampler(self.train_photos, config.patch, config.scales)

    def _load_checkpoint(self) -> dict | None:
        path = self.out / CHECKPOINT_FILE
        if not path.is_file():
            return None
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        if checkpoint["family"] != self.family:
            raise ValueError(f"{self.out} holds a {checkpoint['family']} run, not {self.family}; use another --out")
        stored, mine = _tuples(checkpoint["train_config"]), _tuples(asdict(self.config))
        differ = [k for k in _RESUME_MUST_MATCH if stored[k] != mine[k]]
        stored_model = _tuples(checkpoint["model_config"])
        differ += [f"model {k}" for k, v in _tuples(self.model_config).items() if stored_model.get(k) != v]
        if differ:
            raise ValueError(f"{self.out} holds a run with different {', '.join(differ)}; "
                             "resume with the same settings or use another --out")
        return checkpoint

    def run(self, on_log: Callable[[dict], None] | None = None) -> ImageGenerator:
        """Train until ``config.steps``; ``on_log`` gets every log record (for a progress display)."""
        c = self.config

        def step() -> dict[str, float]:
            real = real_batch(self.sampler, c.batch_size, np.random.default_rng([c.seed, self.step]))
            return self.model.train_step(real, self.optimizers, seeded(c.seed, _TRAINING_STREAM, self.step),
                                         self.step, c.bf16)

        run_loop(self, c, step, lambda entry: self.write_grid(), on_log)
        return self.model

    def write_grid(self) -> Path:
        size = max(self.model.size_multiple, self.config.grid_size // self.model.size_multiple * self.model.size_multiple)
        images = self.model.sample(self.config.grid_images, size=size, seed=GRID_SEED, **self.config.grid_options)
        path = self.out / SAMPLES_DIR / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(path, lambda p: Image.fromarray(image_grid(images)).save(p, format="PNG"))
        return path

    def save(self) -> None:
        from safetensors.torch import save_file

        checkpoint = {
            "family": self.family, "model_config": asdict(self.model.config), "train_config": asdict(self.config),
            "step": self.step, "elapsed": self.elapsed,
            "modules": {name: module.state_dict() for name, module in self.modules.items()},
            "optimizers": {name: optimizer.state_dict() for name, optimizer in self.optimizers.items()},
        }
        save_atomically(self.out / CHECKPOINT_FILE, lambda p: torch.save(checkpoint, p))
        save_atomically(self.out / WEIGHTS_FILE, lambda p: save_file(self.model.export_state_dict(), str(p)))
        config = {**self.model.config_dict(), "training": asdict(self.config), "step": self.step,
                  "photos": {"train": [p.name for p in self.train_photos],
                             "held_out": [p.name for p in self.held_out_photos]}}
        save_atomically(self.out / CONFIG_FILE, lambda p: p.write_text(json.dumps(config, indent=2) + "\n"))


def family_train_config(family: str, **fields) -> TrainConfig:
    """A TrainConfig for ``family``: the given fields, the family's defaults for those given as None."""
    from provenance.precision import use_bf16

    defaults = dict(family_class(family).training_defaults)
    defaults["bf16"] = use_bf16(defaults.get("bf16", False))  # bf16 only where the CPU runs it natively
    chosen = {k: v for k, v in fields.items() if v is not None}
    return TrainConfig(**{**defaults, **chosen})


def family_model_config(family: str, width: int | None = None) -> dict:
    return {} if width is None else family_class(family).width_config(width)


def train(family: str, out: str | Path, config: TrainConfig = TrainConfig(), model_config: dict | None = None,
          on_log: Callable[[dict], None] | None = None) -> ImageGenerator:
    """Train (or resume training) a ``family`` generator in ``out``; returns the model."""
    return Trainer(family, out, config, model_config).run(on_log)
