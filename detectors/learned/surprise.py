"""``surprise``: how much an image's pixels surprise a model of real-image statistics.

The zero-shot entropy idea of Cozzolino et al. (ZED, ECCV 2024) at CPU scale. A small pixel
predictor, trained on real photos only, gives for every pixel a distribution over its grey value
given the pixels around it (a blind-spot context: the ``context`` x ``context`` window without the
pixel itself), at ``levels`` resolutions (2x2 average pooling between them). On an image it knows,
the coding cost it pays (NLL, -log p of the actual value) is close to the cost it expects (the
entropy H of its own prediction); an image made another way surprises it: NLL - H moves away from
zero. Per tile and level, the features are the mean NLL, the mean H, their gap, the gap over
smooth and over textured pixels, and how much the gap differs between the four 2x2 pixel phases
(what 2x upsampling layers leave). A ``head`` over them gives the tile logit (:class:`SurpriseHead`):

- ``logistic``: logistic regression on real and synthetic tiles (the predictor still never sees
  a fake; the head does);
- ``zed``: one-class, ZED's own statistic: the full-resolution gap, standardised on real tiles;
- ``gaussian``: one-class, the Mahalanobis distance from the real tiles' features.

With a one-class head no fake is seen at all. Measured on the public corpus
(``python -m benchmarks corpus_surprise``, README): it ranks fakes above reals on unseen families
but flags almost none at <= 1% false positives per real source, so no weights ship.

The predictor's distribution is over the residual to its own point prediction, in ``2 * radius + 1``
unit bins plus two tail bins (values beyond, taken as uniform). Training (torch) happens once;
scoring is plain numpy (a masked convolution and two 1x1 layers), so ``check`` never imports torch.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from provenance.files import save_atomically
from provenance.shipped import CLASSIFIER_WEIGHTS_FILES

from .base import CLASSIFIERS, ImageClassifier

WEIGHTS_FILE = CLASSIFIER_WEIGHTS_FILES["surprise"]
CHECKPOINT = "predictor.pt"
SMOOTH_ENTROPY = 3.0  # nats: pixels whose predicted entropy is below this count as smooth
FEATURES_PER_LEVEL = ("nll", "entropy", "gap", "gap_smooth", "gap_textured", "gap_phase_spread")
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass(frozen=True)
class SurpriseConfig:
    tile: int = 128
    max_tiles: int = 8  # ~20-40 ms a tile in numpy: a check's cost stays bounded
    levels: int = 3
    context: int = 7
    width: int = 32
    radius: int = 20
    batch_size: int = 8
    lr: float = 2e-3
    head: str = "logistic"  # logistic | gaussian | zed
    C: float = 0.1


def grey_levels(tiles: np.ndarray, levels: int) -> list[np.ndarray]:
    """(n, T, T, 3) uint8 -> per level an (n, T / 2**l, T / 2**l) float32 image of integer grey values."""
    grey = tiles.astype(np.float32) @ _LUMA
    out = []
    for level in range(levels):
        if level:
            n, h, w = grey.shape
            grey = grey[:, :h // 2 * 2, :w // 2 * 2].reshape(n, h // 2, 2, w // 2, 2).mean((2, 4))
        out.append(np.round(grey))
    return out


def _tail_counts(centre: np.ndarray, radius: int) -> tuple[np.ndarray, np.ndarray]:
    """How many grey values lie below / above the residual window around each point prediction."""
    return np.maximum(centre - radius, 1.0), np.maximum(255.0 - centre - radius, 1.0)


def _bins(values: np.ndarray, centre: np.ndarray, radius: int) -> np.ndarray:
    """Bin of each actual value: 0 = below the window, 1 .. 2R+1 = residual -R .. R, 2R+2 = above."""
    return (np.clip(values - centre, -radius - 1, radius + 1) + radius + 1).astype(np.int64)


def level_statistics(log_p: np.ndarray, values: np.ndarray, centre: np.ndarray, radius: int) -> np.ndarray:
    """Per image: the ``FEATURES_PER_LEVEL`` from (n, h, w, K) log-probabilities over the K bins, the
    (n, h, w) actual values and the predictor's rounded centres."""
    low, high = np.log(_tail_counts(centre, radius))
    p = np.exp(log_p)
    entropy = -np.einsum("...k,...k->...", p, log_p) + p[..., 0] * low + p[..., -1] * high
    index = _bins(values, centre, radius)
    nll = -np.take_along_axis(log_p, index[..., None], -1)[..., 0]
    nll = nll + np.where(index == 0, low, 0) + np.where(index == log_p.shape[-1] - 1, high, 0)
    gap = nll - entropy
    smooth = entropy < SMOOTH_ENTROPY
    n = len(values)
    flat = lambda a: a.reshape(n, -1)  # noqa: E731
    count_smooth = flat(smooth).sum(1)
    count_textured = flat(~smooth).sum(1)
    gap_smooth = flat(gap * smooth).sum(1) / np.maximum(count_smooth, 1)
    gap_textured = flat(gap * ~smooth).sum(1) / np.maximum(count_textured, 1)
    # 2x upsampling makes every other row / column more predictable than its neighbours: the spread
    # of the gap over the four 2x2 phases (real photos: ~0 whatever their content)
    spread = np.zeros(n)
    if min(gap.shape[1:]) >= 2:
        spread = np.stack([flat(gap[:, y::2, x::2]).mean(1) for y in (0, 1) for x in (0, 1)], 1).std(1)
    return np.stack([flat(nll).mean(1), flat(entropy).mean(1), flat(gap).mean(1), gap_smooth, gap_textured,
                     spread], 1)


def _log_softmax(z: np.ndarray, axis: int) -> np.ndarray:
    z = z - z.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


@dataclass
class PredictorWeights:
    """The trained predictor as plain arrays (what ``surprise.safetensors`` holds)."""
    context_w: np.ndarray  # (width, k*k), centre column zero
    context_b: np.ndarray  # (width,)
    level_b: np.ndarray  # (levels, width)
    linear_w: np.ndarray  # (k*k,) linear point prediction, centre zero
    linear_b: np.ndarray  # (1,)
    hidden_w: np.ndarray  # (width, width)
    hidden_b: np.ndarray  # (width,)
    head_w: np.ndarray  # (1 + 2R+3, width): point-prediction correction, then bin logits
    head_b: np.ndarray

    def predict(self, grey: np.ndarray, level: int, context: int) -> tuple[np.ndarray, np.ndarray]:
        """(n, H, W) integer grey values -> the point prediction (n, h, w) in grey units and the
        (n, h, w, K) log-probabilities over the residual bins, for the pixels with a full context
        (h = H - context + 1)."""
        from numpy.lib.stride_tricks import sliding_window_view

        n, h, w = grey.shape
        x = (grey.astype(np.float32) - 128) / 64
        inner = (h - context + 1, w - context + 1)
        windows = sliding_window_view(x, (context, context), axis=(1, 2)).reshape(n, *inner, -1)
        hidden = np.maximum(windows @ self.context_w.T + self.context_b + self.level_b[level], 0)
        hidden = np.maximum(hidden @ self.hidden_w.T + self.hidden_b, 0)
        head = hidden @ self.head_w.T + self.head_b
        point = (windows @ self.linear_w + self.linear_b[0] + head[..., 0]) * 64 + 128
        return point, _log_softmax(head[..., 1:], -1)

    def features(self, levels: list[np.ndarray], radius: int, context: int) -> np.ndarray:
        """(n, levels * len(FEATURES_PER_LEVEL)) per-tile features, numpy only."""
        out = []
        pad = context // 2
        for level, grey in enumerate(levels):
            point, log_p = self.predict(grey, level, context)
            values = grey[:, pad:grey.shape[1] - pad, pad:grey.shape[2] - pad]
            out.append(level_statistics(log_p, values, np.clip(np.round(point), 0, 255), radius))
        return np.concatenate(out, 1).astype(np.float32)


def build_predictor(config: SurpriseConfig):
    """The torch twin of :class:`PredictorWeights` (training only)."""
    import torch
    from torch import nn

    k, width, bins = config.context, config.width, 2 * config.radius + 3

    class Predictor(nn.Module):
        def __init__(self):
            super().__init__()
            self.context = nn.Conv2d(1, width, k)
            self.linear = nn.Conv2d(1, 1, k)
            self.level_b = nn.Parameter(torch.zeros(config.levels, width))
            self.hidden = nn.Conv2d(width, width, 1)
            self.head = nn.Conv2d(width, 1 + bins, 1)
            mask = torch.ones(1, 1, k, k)
            mask[..., k // 2, k // 2] = 0  # blind spot: a pixel never sees itself
            self.register_buffer("mask", mask)

        def forward(self, x, level: int):
            """x (n, 1, H, W) normalised grey -> point prediction (n, h, w) in grey units and bin logits."""
            import torch.nn.functional as F

            h = F.conv2d(x, self.context.weight * self.mask, self.context.bias) + self.level_b[level][:, None, None]
            h = F.relu(self.hidden(F.relu(h)))
            head = self.head(h)
            linear = F.conv2d(x, self.linear.weight * self.mask, self.linear.bias)
            return (linear[:, 0] + head[:, 0]) * 64 + 128, head[:, 1:]

        def to_weights(self) -> PredictorWeights:
            def a(t):
                return t.detach().float().numpy().copy()

            return PredictorWeights(a((self.context.weight * self.mask).reshape(width, -1)), a(self.context.bias),
                                    a(self.level_b), a((self.linear.weight * self.mask).reshape(-1)),
                                    a(self.linear.bias), a(self.hidden.weight.reshape(width, width)),
                                    a(self.hidden.bias), a(self.head.weight.reshape(1 + bins, width)),
                                    a(self.head.bias))

    return Predictor()


def _predictor_settings(config: SurpriseConfig) -> dict:
    """The settings a trained predictor depends on (the head and the tile budget do not)."""
    return {k: v for k, v in asdict(config).items() if k not in ("max_tiles", "head", "C")}


def train_predictor(reals: list[np.ndarray], config: SurpriseConfig, steps: int, seed: int = 0,
                    out: str | Path | None = None, checkpoint_every: int = 100,
                    on_log: Callable[[dict], None] | None = None, log_every: int = 50) -> PredictorWeights:
    """Fit the predictor on random tiles of real photos only (resumable from ``out``)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(seed)
    reals = [r for r in reals if min(r.shape[:2]) >= config.tile]
    if not reals:
        raise ValueError(f"no real training image is at least {config.tile}px on both sides")
    model = build_predictor(config).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=1e-4)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(  # linear warm-up, cosine decay
        optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + np.cos(np.pi * min(s, steps) / steps)))
    step, elapsed = 0, 0.0
    checkpoint = Path(out) / CHECKPOINT if out else None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        if checkpoint.is_file():
            state = torch.load(checkpoint, map_location="cpu", weights_only=False)
            same = all(state["config"].get(k) == v for k, v in _predictor_settings(config).items())
            if not same or state["seed"] != seed or state["steps"] != steps:
                raise ValueError(f"{out} holds a run with other settings; use the same ones or another --out")
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            schedule.load_state_dict(state["schedule"])
            step, elapsed = state["step"], state["elapsed"]
    pad, t = config.context // 2, config.tile
    running: list[float] = []
    while step < steps:
        started = time.perf_counter()
        rng = np.random.default_rng([seed, step])
        tiles = []
        for _ in range(config.batch_size):
            rgb = reals[rng.integers(len(reals))]
            y, x = rng.integers(rgb.shape[0] - t + 1), rng.integers(rgb.shape[1] - t + 1)
            tile = rgb[y:y + t, x:x + t]
            tiles.append(tile[:, ::-1] if rng.random() < 0.5 else tile)
        loss = 0.0
        for level, grey in enumerate(grey_levels(np.stack(tiles), config.levels)):
            values = torch.from_numpy(np.ascontiguousarray(grey))
            x = ((values - 128) / 64)[:, None].contiguous(memory_format=torch.channels_last)
            point, logits = model(x, level)
            target = values[:, pad:values.shape[1] - pad, pad:values.shape[2] - pad]
            centre = point.detach().round().clamp(0, 255)
            bins = (target - centre).clamp(-config.radius - 1, config.radius + 1).long() + config.radius + 1
            loss = loss + F.cross_entropy(logits, bins) + F.smooth_l1_loss(point / 8, target / 8)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        step += 1
        elapsed += time.perf_counter() - started
        running.append(float(loss.detach()) / config.levels)
        if on_log and (step % log_every == 0 or step == steps):
            on_log({"step": step, "loss": round(float(np.mean(running)), 4), "seconds": round(elapsed, 1)})
            running = []
        if checkpoint is not None and (step % checkpoint_every == 0 or step == steps):
            state = {"config": asdict(config), "seed": seed, "steps": steps, "step": step, "elapsed": elapsed,
                     "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "schedule": schedule.state_dict()}
            save_atomically(checkpoint, lambda path: torch.save(state, path))
    weights = model.eval().to_weights()
    weights.training_seconds = elapsed  # type: ignore[attr-defined]
    return weights


@dataclass
class SurpriseHead:
    """Tile logit over standardised features ``z = (f - mean) / scale``.

    ``logistic``: ``z @ coef + intercept``, a logistic regression on real and synthetic tiles.
    ``gaussian`` (one-class, real tiles only): the squared Mahalanobis distance ``z P z / d - 1``
    under a Ledoit-Wolf Gaussian of the real tiles' features (precision ``P``; ``d`` features), so
    a surprise in either direction counts: nothing about fakes is assumed or seen.
    ``zed`` (one-class, real tiles only): ZED's single statistic, the full-resolution coding-cost
    gap, standardised on real tiles, sign turned so that an image cheaper to code than the model
    expects (smoother than a photo) scores high: ``coef = -1`` on ``gap`` of level 0."""
    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: np.ndarray
    precision: np.ndarray  # (d, d) for gaussian, (0, 0) for logistic

    def __call__(self, features: np.ndarray) -> np.ndarray:
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        if self.precision.size:
            return np.einsum("ni,ij,nj->n", z, self.precision, z) / z.shape[1] - 1
        return z @ self.coef + self.intercept[0]

    @classmethod
    def fit(cls, kind: str, features: np.ndarray, labels: np.ndarray, C: float = 0.1) -> "SurpriseHead":
        from sklearn.preprocessing import StandardScaler

        features, labels = np.asarray(features, np.float64), np.asarray(labels, int)
        if kind == "gaussian":
            from sklearn.covariance import LedoitWolf

            reals = features[labels == 0]
            scaler = StandardScaler().fit(reals)
            precision = LedoitWolf().fit(scaler.transform(reals)).precision_
            return cls(scaler.mean_, scaler.scale_, np.zeros(0), np.zeros(1), precision)
        if kind == "zed":
            reals = features[labels == 0]
            scaler = StandardScaler().fit(reals)
            coef = np.zeros(features.shape[1])
            coef[FEATURES_PER_LEVEL.index("gap")] = -1.0
            return cls(scaler.mean_, scaler.scale_, coef, np.zeros(1), np.zeros((0, 0)))
        if kind != "logistic":
            raise ValueError(f"unknown surprise head {kind!r}; use logistic, gaussian or zed")
        from sklearn.linear_model import LogisticRegression

        scaler = StandardScaler().fit(features)
        regression = LogisticRegression(C=C, max_iter=5000, class_weight="balanced")
        regression.fit(scaler.transform(features), labels)
        return cls(scaler.mean_, scaler.scale_, regression.coef_[0].astype(np.float64),
                   regression.intercept_.astype(np.float64), np.zeros((0, 0)))


@CLASSIFIERS.register("surprise")
class SurpriseClassifier(ImageClassifier):
    family = "surprise"
    Config = SurpriseConfig

    def __init__(self, **config):
        super().__init__(**config)
        self.predictor: PredictorWeights | None = None
        self.head: SurpriseHead | None = None

    def fit(self, images, labels, steps: int = 2000, seed: int = 0, out=None, on_log=None,
            checkpoint_every: int = 100) -> "SurpriseClassifier":
        """The predictor learns from the real images alone; the head from the tiles' features."""
        labels = np.asarray(labels, int)
        if self.config.head == "logistic" and len(set(labels.tolist())) != 2:
            raise ValueError("a logistic head needs both real and synthetic images")
        reals = [im for im, label in zip(images, labels) if label == 0]
        self.predictor = train_predictor(reals, self.config, steps, seed=seed, out=out, on_log=on_log,
                                         checkpoint_every=checkpoint_every)
        self.fit_head(images, labels)
        self.training = {"steps": steps, "seed": seed, "images": len(labels), "synthetic": int(labels.sum()),
                         "predictor_images": len(reals),
                         "seconds": round(getattr(self.predictor, "training_seconds", 0.0), 1)}
        return self

    def fit_head(self, images, labels) -> "SurpriseClassifier":
        features, targets = [], []
        for rgb, label in zip(images, np.asarray(labels, int)):
            tiles = self._tiles(rgb)
            if len(tiles):
                features.append(self.tile_features(tiles))
                targets += [int(label)] * len(tiles)
        if not features:
            raise ValueError(f"no image is at least {self.tile}px on both sides")
        self.head = SurpriseHead.fit(self.config.head, np.concatenate(features), np.array(targets), self.config.C)
        self._fitted = True
        return self

    def _tiles(self, rgb):
        from .tiles import cut_tiles

        return cut_tiles(rgb, self.tile, self.max_tiles)[0]

    def tile_features(self, tiles: np.ndarray) -> np.ndarray:
        if self.predictor is None:
            from sklearn.exceptions import NotFittedError

            raise NotFittedError("this surprise classifier's predictor is not trained")
        # 8 tiles a chunk: the per-pixel bin probabilities (43 a pixel by default) stay at ~25 MB
        return np.concatenate([self.predictor.features(grey_levels(tiles[i:i + 8], self.config.levels),
                                                       self.config.radius, self.config.context)
                               for i in range(0, len(tiles), 8)])

    def tile_logits(self, tiles):
        if not len(tiles):
            return np.zeros(0)
        return self.logits_from_features(self.tile_features(tiles))

    def logits_from_features(self, features):
        self._check_fitted()
        return self.head(features)

    def _save_weights(self, directory: Path) -> None:
        """Plain arrays in safetensors, not a pickle: loading a shipped model must not run code."""
        from safetensors.numpy import save_file

        arrays = {f"predictor.{k}": np.ascontiguousarray(v, np.float32) for k, v in asdict(self.predictor).items()}
        arrays.update({f"head.{k}": np.ascontiguousarray(v, np.float64) for k, v in asdict(self.head).items()})
        save_file(arrays, str(directory / WEIGHTS_FILE))

    def _load_weights(self, directory: Path) -> None:
        from safetensors.numpy import load_file

        arrays = load_file(str(directory / WEIGHTS_FILE))
        self.predictor = PredictorWeights(**{k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("predictor.")})
        self.head = SurpriseHead(**{k.split(".", 1)[1]: v for k, v in arrays.items() if k.startswith("head.")})
