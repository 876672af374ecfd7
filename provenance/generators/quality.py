"""A generator quality figure that needs no downloaded network: ProGAN's sliced Wasserstein distance.

Karras et al. (2018), "Progressive Growing of GANs", appendix D: build a Laplacian pyramid of each
image (down to 16x16), draw 7x7 neighbourhoods at random from every level, and compare the two
descriptor sets per level with the sliced Wasserstein distance (random unit projections, sorted,
mean absolute difference). Lower is better; values are x1000 as in the paper.

One deviation: ProGAN normalises each descriptor set by its own per-channel mean and std, which
hides colour casts and contrast errors; we normalise both sets with the *reference* set's
statistics so those count too.

A number alone means little, so :func:`quality_report` puts the model next to baselines on the
same reference: other crops of the same held-out photos (the noise floor), crops of the training
photos, blurred held-out crops, and Gaussian and uniform noise.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .photos import DEFAULT_SOURCE, Photo, default_split

DESCRIPTOR_PATCH = 7
MIN_RESOLUTION = 16


@dataclass
class SWDResult:
    resolutions: list[int]  # finest level first
    per_level: list[float]  # x1000

    @property
    def mean(self) -> float:
        return float(np.mean(self.per_level))


def laplacian_pyramid(images: np.ndarray, min_resolution: int = MIN_RESOLUTION) -> list[np.ndarray]:
    """(N, H, W, 3) uint8 -> float32 (N, 3, h, w) levels, finest band-pass first, the low-pass last."""
    import torch
    import torch.nn.functional as F

    taps = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0])
    kernel = (torch.outer(taps, taps) / 256).expand(3, 1, 5, 5).contiguous()

    def blur(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=3)

    def down(x: torch.Tensor) -> torch.Tensor:
        return blur(x)[:, :, ::2, ::2]

    def up(x: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        upsampled = torch.zeros(shape)
        upsampled[:, :, ::2, ::2] = x
        return blur(upsampled) * 4

    current = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1
    levels = []
    while min(current.shape[2:]) // 2 >= min_resolution:
        smaller = down(current)
        levels.append((current - up(smaller, current.shape)).numpy())
        current = smaller
    levels.append(current.numpy())
    return levels


def pyramid_descriptors(images: np.ndarray, rng: np.random.Generator, per_image: int = 128,
                        min_resolution: int = MIN_RESOLUTION) -> list[np.ndarray]:
    """Per pyramid level, (N * per_image, 3 * 7 * 7) random neighbourhoods."""
    out = []
    for level in laplacian_pyramid(images, min_resolution):
        n, c, h, w = level.shape
        ys = rng.integers(0, h - DESCRIPTOR_PATCH + 1, size=(n, per_image))
        xs = rng.integers(0, w - DESCRIPTOR_PATCH + 1, size=(n, per_image))
        offsets = np.arange(DESCRIPTOR_PATCH)
        rows = (ys[..., None] + offsets)[..., :, None]  # (n, k, 7, 1)
        cols = (xs[..., None] + offsets)[..., None, :]  # (n, k, 1, 7)
        patches = level[np.arange(n)[:, None, None, None], :, rows, cols]  # (n, k, 7, 7, c)
        out.append(patches.transpose(0, 1, 4, 2, 3).reshape(n * per_image, c * DESCRIPTOR_PATCH ** 2))
    return out


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, projections: int = 512,
                       chunk: int = 128) -> float:
    """Mean over random unit directions of the 1-D Wasserstein-1 distance between the projections."""
    count = min(len(a), len(b))
    a, b = a[rng.permutation(len(a))[:count]], b[rng.permutation(len(b))[:count]]
    total = 0.0
    for start in range(0, projections, chunk):
        directions = rng.standard_normal((a.shape[1], min(chunk, projections - start))).astype(np.float32)
        directions /= np.linalg.norm(directions, axis=0, keepdims=True)
        projected_a = np.sort(a @ directions, axis=0)
        projected_b = np.sort(b @ directions, axis=0)
        total += float(np.abs(projected_a - projected_b).mean(axis=0).sum())
    return total / projections


def swd(images: np.ndarray, reference: np.ndarray, seed: int = 0, per_image: int = 128,
        projections: int = 512) -> SWDResult:
    """SWD (x1000) per pyramid level between two uint8 (N, H, W, 3) sets of one image size."""
    if images.shape[1:] != reference.shape[1:]:
        raise ValueError(f"image sizes differ: {images.shape[1:3]} vs {reference.shape[1:3]}")
    rng = np.random.default_rng(seed)
    ours = pyramid_descriptors(images, rng, per_image)
    theirs = pyramid_descriptors(reference, rng, per_image)
    per_level = []
    for mine, ref in zip(ours, theirs):
        mean, std = ref.reshape(len(ref), 3, -1).mean(axis=(0, 2)), ref.reshape(len(ref), 3, -1).std(axis=(0, 2))
        scale = np.repeat(1 / (std + 1e-8), DESCRIPTOR_PATCH ** 2).astype(np.float32)
        shift = np.repeat(mean, DESCRIPTOR_PATCH ** 2).astype(np.float32)
        per_level.append(1000 * sliced_wasserstein((mine - shift) * scale, (ref - shift) * scale, rng, projections))
    size = images.shape[1]
    resolutions = [size >> i for i in range(len(per_level))]
    return SWDResult(resolutions, per_level)


def random_crops(photos: list[Photo], n: int, size: int, scales: tuple[float, ...] = (0.5,), seed: int = 0
                 ) -> np.ndarray:
    """n random size x size crops, each (photo, scale) equally often."""
    from .photos import PatchSampler

    sampler = PatchSampler(photos, size, scales, min_std=0, hflip=False)
    return sampler.batch(n, np.random.default_rng(seed))


def gaussian_blur(images: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(images.astype(np.float32), sigma=(0, sigma, sigma, 0), mode="reflect")
    return blurred.round().clip(0, 255).astype(np.uint8)


def baseline_sets(train: list[Photo], held_out: list[Photo], n: int, size: int, scales: tuple[float, ...],
                  seed: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(reference crops of held-out photos, {baseline name: images})."""
    reference = random_crops(held_out, n, size, scales, seed)
    other_crops = random_crops(held_out, n, size, scales, seed + 1)
    rng = np.random.default_rng(seed + 2)
    mean, std = reference.reshape(-1, 3).mean(axis=0), reference.reshape(-1, 3).std(axis=0)
    gaussian = (rng.standard_normal(reference.shape) * std + mean).round().clip(0, 255).astype(np.uint8)
    baselines = {
        "held-out reals, other crops (floor)": other_crops,
        "training reals": random_crops(train, n, size, scales, seed + 3),
        "held-out reals, blurred sigma=1": gaussian_blur(other_crops, 1.0),
        "held-out reals, blurred sigma=2": gaussian_blur(other_crops, 2.0),
        "Gaussian noise, real mean/std": gaussian,
        "uniform noise": rng.integers(0, 256, reference.shape, dtype=np.uint8),
    }
    return reference, baselines


def quality_report(models: dict[str, object] | None = None, real: str = DEFAULT_SOURCE, n: int = 128,
                   size: int = 128, sample_size: int = 256, scales: tuple[float, ...] = (0.5,), seed: int = 0,
                   holdout_seed: int = 0, sample_options: dict | None = None) -> list[tuple[str, SWDResult]]:
    """SWD against held-out real crops for each model (sampled at ``sample_size``, then randomly
    cropped to ``size``) and for the baselines, best first. A ``sample_options`` key that a model's
    sampler does not take raises TypeError before any work."""
    import inspect

    for model in (models or {}).values():
        inspect.signature(model.sample).bind(n, **(sample_options or {}))
    train, held_out = default_split(real, seed=holdout_seed)
    reference, sets = baseline_sets(train, held_out, n, size, scales, seed)
    for name, model in (models or {}).items():
        samples = model.sample(n, size=sample_size, seed=seed, **(sample_options or {}))
        sets[name] = _crop_each(samples, size, np.random.default_rng(seed + 4))
    rows = [(name, swd(images, reference, seed=seed + 5)) for name, images in sets.items()]
    return sorted(rows, key=lambda row: row[1].mean)


def _crop_each(images: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    _, h, w, _ = images.shape
    if (h, w) == (size, size):
        return images
    if h < size or w < size:
        raise ValueError(f"samples of {h}x{w} are smaller than the {size}px crops")
    out = []
    for image in images:
        y, x = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out.append(image[y:y + size, x:x + size])
    return np.stack(out)


def format_table(rows: list[tuple[str, SWDResult]]) -> str:
    from provenance.markdown import markdown_table

    headers = ["images", "SWD x1e3 mean"] + [f"{r}px" for r in rows[0][1].resolutions]
    return markdown_table(headers, [[name, f"{result.mean:.1f}"] + [f"{v:.1f}" for v in result.per_level]
                                    for name, result in rows])
