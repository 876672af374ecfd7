"""Robustness of our keyed mark: detection and ID recovery by the default ``watermark`` detector
after common edits, on 10 photos shipped by scikit-image / scikit-learn (long side <= 768 px)."""
from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from benchmarks.timing import machine_line, print_table

PHOTOS = ["astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "motorcycle_left",
          "sklearn_china", "sklearn_flower", "hubble_deep_field", "retina"]


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _rotate(rgb: np.ndarray, degrees: float) -> np.ndarray:
    h, w = rgb.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1)
    return cv2.warpAffine(rgb, matrix, (w, h), borderMode=cv2.BORDER_REFLECT)


def _resize_back(rgb: np.ndarray, factor: float) -> np.ndarray:
    small = cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_CUBIC)


ATTACKS = {
    "none": lambda x: x,
    "JPEG q90": lambda x: _jpeg(x, 90),
    "JPEG q75": lambda x: _jpeg(x, 75),
    "JPEG q50": lambda x: _jpeg(x, 50),
    "resize 0.5x and back": lambda x: _resize_back(x, 0.5),
    "blur sigma 1": lambda x: cv2.GaussianBlur(x, (0, 0), 1),
    "noise sigma 5": lambda x: np.clip(x + np.random.default_rng(0).normal(0, 5, x.shape), 0, 255).astype(np.uint8),
    "brightness +20%": lambda x: np.clip(x * 1.2, 0, 255).round().astype(np.uint8),
    "crop to 80%": lambda x: x[x.shape[0] // 10: -(x.shape[0] // 10), x.shape[1] // 10: -(x.shape[1] // 10)],
    "crop 8/16 px (block-aligned)": lambda x: x[8:, 16:],
    "rotate 2 degrees": lambda x: _rotate(x, 2),
}


def main() -> None:
    import detectors
    from detectors.results import Signal
    from provenance.imageio import encode_image, load_image
    from provenance.generators.photos import sample_photo as load_photo
    from provenance.watermark.marking import Mark, embed_mark
    from provenance.watermark.payload import WatermarkId

    print(machine_line(), f"{len(PHOTOS)} photos; cell = detected / ID recovered")
    detector = detectors.create("watermark")
    counts = {(scheme, attack): [0, 0] for scheme in ("dwtDct", "dwtDctSvd") for attack in ATTACKS}
    for index, name in enumerate(PHOTOS):
        rgb = load_photo(name)
        if rgb.shape[0] * rgb.shape[1] > 1_000_000:
            rgb = cv2.resize(rgb, (768, 768), interpolation=cv2.INTER_AREA)
        for scheme in ("dwtDct", "dwtDctSvd"):
            wm_id = WatermarkId(index, 1000 + index)
            marked = embed_mark(np.ascontiguousarray(rgb), Mark(scheme, watermark_id=wm_id))
            for attack, edit in ATTACKS.items():
                image = load_image(encode_image(np.ascontiguousarray(edit(marked)), "PNG"))
                evidence = detector.detect(image)
                found = evidence.signal is Signal.SYNTHETIC and evidence.details["scheme"] == scheme
                counts[scheme, attack][0] += found
                counts[scheme, attack][1] += found and evidence.details.get("serial") == wm_id.serial
    rows = [[attack] + [f"{counts[s, attack][0]}/{len(PHOTOS)} / {counts[s, attack][1]}" for s in ("dwtDct", "dwtDctSvd")]
            for attack in ATTACKS]
    print_table(["edit", "dwtDct", "dwtDctSvd"], rows)


if __name__ == "__main__":
    main()
