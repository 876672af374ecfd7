"""The training augmentations every classifier family uses, drawn the same way for both classes
(so a model learns generator traces, not format or processing): resize 0.5-1.5x, blur, noise and a
JPEG round trip at quality 50-100."""
from __future__ import annotations

import numpy as np

from provenance.datasets.perturbations import Blur, Noise, Resize, jpeg_round_trip

_RESIZE, _BLUR, _NOISE = Resize(0.5, 1.5), Blur(0.3, 1.5), Noise(1.0, 6.0)


def augment(rgb: np.ndarray, rng: np.random.Generator, noise: Noise = _NOISE) -> np.ndarray:
    if rng.random() < 0.3:
        rgb = _RESIZE.apply(rgb, _RESIZE.draw(rng))
    if rng.random() < 0.2:
        rgb = _BLUR.apply(rgb, _BLUR.draw(rng))
    if rng.random() < 0.2:
        rgb = noise.apply(rgb, noise.draw(rng))
    if rng.random() < 0.5:
        rgb = jpeg_round_trip(rgb, int(rng.integers(50, 101)))
    return rgb
