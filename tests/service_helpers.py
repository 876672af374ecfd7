"""Files the service tests upload: a generated, watermarked and signed image, and a plain photo."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image


def signed_generated_image(tiny_gan, keys, directory: Path) -> Path:
    """One image from the tiny GAN the tests train, marked and signed with the test keys (PNG)."""
    import provenance

    return provenance.generate(tiny_gan, n=1, size=256, seed=3, out=directory, keys=keys.directory)[0].path


def plain_photo_jpeg() -> bytes:
    """scikit-image's astronaut, 512x512, as a camera JPEG: no manifest, no mark."""
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(data.astronaut())).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()
