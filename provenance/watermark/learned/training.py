"""Training the learned mark: seeded, resumable, with sample pairs and residual views as it goes.

Curriculum (``TrainConfig``): at first the residual is loud and there are no attacks, so the pair
learns to carry the message at all. After ``warmup_steps``, and once the running bit accuracy
passes ``advance_accuracy``, the curriculum advances by ``1 / ramp_steps`` on every step whose
running accuracy stays above it: the residual's power falls to the shipping level
(``target_rms``, reached at ``quiet_share`` of the way), the perceptual loss ramps in and the
attacks ramp to full strength (geometry up to ``max_rotation`` / ``max_crop``). (A fixed
ramp outran the networks on a loaded CPU: the message had not been learned when attacks began.)
Everything random in step ``s`` comes from generators seeded by ``(seed, s)``, and checkpoints
hold the full state (curriculum included), so a resumed run continues the same run.

Files in ``out``:

    checkpoint.pt         full state (torch tensors only; read back with ``weights_only=True``)
    weights.safetensors   encoder + decoder weights, the network config in its metadata
    config.json           configs, step, wall time, hardware, photo split
    log.jsonl             losses, bit accuracy under attack, images/s, machine load
    samples/step_N.png    held-out covers | marked | residual (amplified) rows
"""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from provenance.generators.photos import DEFAULT_SOURCE, Photo, default_split, folder_photos
from provenance.files import save_atomically
from provenance.generators.training import image_grid, run_loop

from . import attacks
from .networks import Decoder, Encoder, NetConfig, build
from .weights import save_weights

CHECKPOINT_FILE = "checkpoint.pt"
WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
SAMPLES_DIR = "samples"
_RESUME_MUST_MATCH = ("real", "seed", "batch_size", "holdout_seed", "extra_train", "decoder_only")


@dataclass(frozen=True)
class TrainConfig:
    real: str = DEFAULT_SOURCE
    steps: int = 20_000  # total, counting steps of earlier runs in the same directory
    seed: int = 0
    batch_size: int = 16
    lr: float = 1e-3
    warmup_steps: int = 400
    ramp_steps: int = 3000
    advance_accuracy: float = 0.85  # running bit accuracy (under the current attacks) needed to advance
    warmup_rms: float = 0.04
    target_rms: float = 0.0085  # ~41.4 dB PSNR at the working size
    quiet_share: float = 0.5  # the residual reaches target_rms at this much of the curriculum, so the
    # shipping level is trained even if the hardest attacks are never reached
    perceptual_weight: float = 0.3
    clean_weight: float = 0.5
    min_crop: float = 0.3  # training views: crops of this much of the short side and up, resized
    max_rotation: float = 15.0  # attack geometry at full strength; a positional decoder learns small
    max_crop: float = 0.5  # ranges and leaves larger ones to the scheme's re-aligned views
    holdout_seed: int = 0
    # fine-tuning: start from these weights (a new run only) at this point of the curriculum, and
    # show this share of batches crops as registration reads them (attacks.registered_crop)
    init_weights: str = ""
    start_progress: float = 0.0
    # more training images (all in the training split; the photo split stays as it was), e.g. our
    # generators' output, whose texture the photos lack
    extra_train: str = ""
    registered_crop_p: float = 0.0
    # train the decoder alone: the encoder, and so every mark made so far and the image quality,
    # stay exactly as they were (a fine-tune of the reading side only)
    decoder_only: bool = False
    log_every: int = 25
    sample_every: int = 250
    checkpoint_every: int = 100
    eval_images: int = 16


def schedule(config: TrainConfig, progress: float) -> dict[str, float]:
    """Curriculum at ``progress`` (0: warm-up, 1: full): residual rms, attack strength, perceptual weight."""
    t = min(1.0, max(0.0, progress))
    quiet = min(1.0, t / config.quiet_share) if config.quiet_share > 0 else 1.0
    rms = float(np.exp(np.log(config.warmup_rms) + quiet * (np.log(config.target_rms) - np.log(config.warmup_rms))))
    return {"rms": rms, "strength": t, "perceptual": t * config.perceptual_weight}


class ViewSampler:
    """Random views of photos as the encoder sees them: a crop of ``min_crop``..1 of the short side
    (any aspect up to 4:3), flipped at random, area-resized to the working size."""

    def __init__(self, photos: list[Photo], size: int, min_crop: float):
        self.photos = [p.rgb for p in photos if min(p.rgb.shape[:2]) >= size // 2]
        if not self.photos:
            raise ValueError(f"no photo is at least {size // 2}px on its short side")
        self.size, self.min_crop = size, min_crop

    def view(self, rng: np.random.Generator) -> np.ndarray:
        img = self.photos[rng.integers(len(self.photos))]
        h, w = img.shape[:2]
        side = rng.uniform(self.min_crop, 1.0) * min(h, w)
        ch = int(min(h, side * rng.uniform(0.75, 1.0)))
        cw = int(min(w, side * rng.uniform(0.75, 1.0)))
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = img[y:y + ch, x:x + cw]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        interp = cv2.INTER_AREA if min(ch, cw) > self.size else cv2.INTER_CUBIC
        return cv2.resize(np.ascontiguousarray(crop), (self.size, self.size), interpolation=interp)

    def batch(self, n: int, rng: np.random.Generator) -> torch.Tensor:
        """(n, 3, size, size) float in [0, 1]."""
        return torch.from_numpy(np.stack([self.view(rng) for _ in range(n)])).permute(0, 3, 1, 2).float() / 255


def ssim_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 - mean SSIM (7x7 box windows, on luma): the perceptual term."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    a, b = (a * weights).sum(1, keepdim=True), (b * weights).sum(1, keepdim=True)
    pool = lambda t: F.avg_pool2d(t, 7, 1, 3, count_include_pad=False)  # noqa: E731
    ma, mb = pool(a), pool(b)
    va, vb, cov = pool(a * a) - ma**2, pool(b * b) - mb**2, pool(a * b) - ma * mb
    c1, c2 = 0.01**2, 0.03**2
    ssim = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))
    return 1 - ssim.mean()


# Fixed attacks for the progress log (and the same ones the benchmark names), at the working size.
def eval_attacks() -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    n = lambda x: x.shape[0]  # noqa: E731
    return {
        "clean": lambda x: x,
        "jpeg50": lambda x: attacks.jpeg(x, torch.full((n(x),), 50.0)),
        "crop50": lambda x: attacks.affine(x, torch.zeros(n(x)), torch.full((n(x), 2), 0.5 ** 0.5),
                                           torch.zeros(n(x), 2), torch.zeros(n(x), dtype=torch.bool)),
        "rot10": lambda x: attacks.affine(x, torch.full((n(x),), 10.0), torch.ones(n(x), 2),
                                          torch.zeros(n(x), 2), torch.zeros(n(x), dtype=torch.bool)),
        "blur1": lambda x: attacks.gaussian_blur(x, 1.0),
        "crop50_placed": lambda x: x * _centre_window(x, 0.5),  # a crop as registration puts it back
    }


def _centre_window(x: torch.Tensor, area: float) -> torch.Tensor:
    h, w = x.shape[-2:]
    kh, kw = round(h * area ** 0.5), round(w * area ** 0.5)
    mask = torch.zeros(1, 1, h, w, dtype=x.dtype)
    mask[..., (h - kh) // 2:(h - kh) // 2 + kh, (w - kw) // 2:(w - kw) // 2 + kw] = 1
    return mask


def hardware() -> dict:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


class WatermarkTrainer:
    def __init__(self, out: str | Path, config: TrainConfig = TrainConfig(), net: NetConfig = NetConfig()):
        self.out = Path(out)
        self.config = config
        self.step, self.elapsed = 0, 0.0
        self.progress, self.running_accuracy = 0.0, 0.5
        checkpoint = self._load_checkpoint()
        if checkpoint is not None:
            net = NetConfig.from_dict(checkpoint["net"])
        self.net = net
        with torch.random.fork_rng():
            torch.manual_seed(config.seed)
            self.encoder, self.decoder = build(net)
        trained = [*self.decoder.parameters()] if config.decoder_only else [*self.encoder.parameters(), *self.decoder.parameters()]
        self.optimizer = torch.optim.Adam(trained, lr=config.lr)
        if checkpoint is not None:
            self.encoder.load_state_dict(checkpoint["encoder"])
            self.decoder.load_state_dict(checkpoint["decoder"])
            self.optimizer.load_state_dict(checkpoint["optimizer"])
            for group in self.optimizer.param_groups:  # the learning rate may change between sessions
                group["lr"] = config.lr
            self.step, self.elapsed = int(checkpoint["step"]), float(checkpoint["elapsed"])
            self.progress = float(checkpoint.get("progress", 0.0))
            self.running_accuracy = float(checkpoint.get("running_accuracy", 0.5))
        elif config.init_weights:
            self._start_from(config.init_weights)
        self.train_photos, self.held_out_photos = default_split(config.real, seed=config.holdout_seed)
        extra = folder_photos(config.extra_train) if config.extra_train else []
        self.sampler = ViewSampler(self.train_photos + extra, net.size, config.min_crop)
        held = ViewSampler(self.held_out_photos, net.size, 0.6)
        rng = np.random.default_rng([config.seed, 2**31])
        self.eval_images = held.batch(config.eval_images, rng)
        self.eval_bits = torch.from_numpy(rng.integers(0, 2, (config.eval_images, net.bits)))
        self.attack = attacks.AttackLayer(flips=net.decoder_head != "flatten", max_rotation=config.max_rotation,
                                          max_crop=config.max_crop, registered_crop_p=config.registered_crop_p)

    def _start_from(self, weights: str) -> None:
        """A fine-tune: the networks from ``weights`` (same geometry), a fresh optimiser, the
        curriculum at ``start_progress`` and the running accuracy at its gate."""
        from .weights import load_networks

        encoder, decoder, net = load_networks(weights)
        if net != self.net:
            raise ValueError(f"{weights}: its network ({net}) differs from this run's ({self.net})")
        self.encoder.load_state_dict(encoder.state_dict())
        self.decoder.load_state_dict(decoder.state_dict())
        self.progress, self.running_accuracy = self.config.start_progress, self.config.advance_accuracy

    def _load_checkpoint(self) -> dict | None:
        path = self.out / CHECKPOINT_FILE
        if not path.is_file():
            return None
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        stored = json.loads(checkpoint["train_config"])
        mine = json.loads(json.dumps(asdict(self.config)))
        differ = [k for k in _RESUME_MUST_MATCH if stored.get(k, getattr(TrainConfig(), k)) != mine[k]]
        if differ:
            raise ValueError(f"{self.out} holds a run with different {', '.join(differ)}; "
                             "resume with the same settings or use another --out")
        return checkpoint

    def train_step(self) -> dict[str, float]:
        c = self.config
        rng = np.random.default_rng([c.seed, self.step])
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        cover = self.sampler.batch(c.batch_size, rng)
        bits = torch.from_numpy(rng.integers(0, 2, (c.batch_size, self.net.bits))).float()
        plan = schedule(c, self.progress)
        self.decoder.train()
        if c.decoder_only:
            self.encoder.eval()
            with torch.no_grad():
                residual = self.encoder(cover, bits, plan["rms"])
        else:
            self.encoder.train()
            residual = self.encoder(cover, bits, plan["rms"])
        marked = (cover + residual).clamp(0, 1)
        attacked = self.attack(marked, plan["strength"], generator)
        logits = self.decoder(attacked)
        message = F.binary_cross_entropy_with_logits(logits, bits)
        loss = message
        if plan["strength"] > 0:
            clean = F.binary_cross_entropy_with_logits(self.decoder(attacks.quantise_uint8(marked)), bits)
            loss = loss + c.clean_weight * clean
        perceptual = ssim_loss(cover, marked)
        if not c.decoder_only:  # a constant when the encoder is frozen
            loss = loss + plan["perceptual"] * 100 * perceptual
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        accuracy = ((logits > 0) == (bits > 0.5)).float().mean()
        self.running_accuracy = 0.95 * self.running_accuracy + 0.05 * accuracy.item()
        if self.step >= c.warmup_steps and self.running_accuracy >= c.advance_accuracy:
            self.progress = min(1.0, self.progress + 1.0 / max(1, c.ramp_steps))
        return {"progress": self.progress, "loss": loss.item(), "message": message.item(), "ssim_loss": perceptual.item(),
                "bit_acc": accuracy.item(), **plan}

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self.encoder.eval()
        self.decoder.eval()
        residual = self.encoder(self.eval_images, self.eval_bits, self.config.target_rms)
        marked = attacks.quantise_uint8(self.eval_images + residual)
        mse = (marked - self.eval_images).pow(2).mean(dim=(1, 2, 3))
        out = {"psnr": float((10 * torch.log10(1 / mse.clamp(min=1e-12))).mean())}
        for name, attack in eval_attacks().items():
            logits = self.decoder(attacks.quantise_uint8(attack(marked)))
            out[f"acc_{name}"] = float(((logits > 0) == (self.eval_bits > 0)).float().mean())
        return out

    def run(self, on_log: Callable[[dict], None] | None = None) -> None:
        def sample(entry: dict | None) -> None:
            if entry is not None:  # evaluated and drawn when a log line is due, to record the scores in it
                entry.update({f"eval_{k}": round(v, 4) for k, v in self.evaluate().items()})
                self.write_samples()

        run_loop(self, self.config, self.train_step, sample, on_log)

    @torch.no_grad()
    def write_samples(self, n: int = 6) -> Path:
        """Rows: held-out covers, marked images, residuals amplified 10x around grey."""
        self.encoder.eval()
        cover = self.eval_images[:n]
        residual = self.encoder(cover, self.eval_bits[:n], self.config.target_rms)
        rows = [cover, (cover + residual).clamp(0, 1), (0.5 + 10 * residual).clamp(0, 1)]
        pixels = (torch.cat(rows).permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
        path = self.out / SAMPLES_DIR / f"step_{self.step:07d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_atomically(path, lambda p: Image.fromarray(image_grid(pixels, columns=n)).save(p, format="PNG"))
        return path

    def save(self) -> None:
        checkpoint = {
            "net": self.net.to_dict(), "train_config": json.dumps(asdict(self.config)),
            "step": self.step, "elapsed": self.elapsed, "progress": self.progress,
            "running_accuracy": self.running_accuracy, "encoder": self.encoder.state_dict(), "decoder": self.decoder.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }
        save_atomically(self.out / CHECKPOINT_FILE, lambda p: torch.save(checkpoint, p))
        save_atomically(self.out / WEIGHTS_FILE, lambda p: save_weights(p, self.encoder, self.decoder, self.net,
                                                                        {"step": self.step, "target_rms": self.config.target_rms}))
        info = {"net": self.net.to_dict(), "training": asdict(self.config), "step": self.step,
                "wall_seconds": round(self.elapsed, 1), "hardware": hardware(),
                "photos": {"train": [p.name for p in self.train_photos],
                           "held_out": [p.name for p in self.held_out_photos]}}
        save_atomically(self.out / CONFIG_FILE, lambda p: p.write_text(json.dumps(info, indent=2) + "\n"))


def train(out: str | Path, config: TrainConfig = TrainConfig(), net: NetConfig = NetConfig(),
          on_log: Callable[[dict], None] | None = None) -> WatermarkTrainer:
    trainer = WatermarkTrainer(out, config, net)
    trainer.run(on_log)
    return trainer
