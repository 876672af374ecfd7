"""The end-to-end demo: local keys, a marked and signed "generated" image, an unlabelled image from
our GAN, a rendered chart, and eight checks.

Uses a photo shipped by scikit-image, so it runs offline on a fresh install.
"""
from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from detectors.results import Verdict

from .c2pa.keys import init_keys
from .c2pa.signing import C2paSigner
from .c2pa.strip import jpeg_manifest_segments
from .check import CheckConfig, Checker
from .imageio import encode_image
from .watermark.marking import Mark, embed_mark
from .watermark.payload import WatermarkId

DEMO_MODEL = "provenance-demo"


@dataclass
class DemoCase:
    path: Path
    what: str
    verdict: Verdict


def run_demo(directory: Path) -> list[DemoCase]:
    directory.mkdir(parents=True, exist_ok=True)
    keys = init_keys(directory / "keys", common_name="provenance demo signer", force=True)
    photo = _sample_photo()

    original = directory / "original.jpg"
    original.write_bytes(encode_image(photo, "JPEG", quality=92))

    generated = directory / "generated.jpg"
    marked = embed_mark(photo, Mark(watermark_id=WatermarkId(generator=0, serial=1)))
    with C2paSigner(keys) as signer:
        signer.sign(encode_image(marked, "JPEG", quality=95), generated, ai_generated=True, model=DEMO_MODEL,
                    model_version="0.1", extra_assertion={"watermark_id": str(WatermarkId(0, 1))})
        captured = directory / "captured_signed.jpg"
        signer.sign(original.read_bytes(), captured, source_type="digitalCapture")

    reencoded = directory / "generated_reencoded.jpg"
    with Image.open(generated) as img:
        img.save(reencoded, quality=80)  # what a social platform does: manifest gone, pixels recompressed

    cropped = directory / "generated_cropped.jpg"
    with Image.open(reencoded) as img:  # a platform's crop of the re-upload: 75% of each side, off-centre
        width, height = img.size
        img.crop((width // 5, height * 3 // 20, width * 19 // 20, height * 9 // 10)).save(cropped, quality=80)

    tampered = directory / "generated_tampered.jpg"
    tampered.write_bytes(_edit_keeping_manifest(generated.read_bytes()))

    unlabelled = directory / "gan_unlabelled.jpg"
    unlabelled.write_bytes(encode_image(_unlabelled_gan_sample(), "JPEG", quality=85))

    chart = directory / "chart.png"
    chart.write_bytes(_chart_png())

    checker = Checker(CheckConfig(detector_options={"c2pa": {"trust_anchors": [keys.root_cert],
                                                             "use_trust_store": False}}))
    cases = [
        (original, "the original photo, unsigned and unmarked"),
        (captured, "the original signed by the demo key as a camera capture"),
        (generated, "a 'generated' copy: our watermark + C2PA manifest declaring AI"),
        (reencoded, "that copy re-saved as JPEG q80 (manifest stripped)"),
        (cropped, "the re-saved copy cropped to 56% of its area and saved again: the learned mark is found"),
        (tampered, "that copy edited after signing, manifest carried over"),
        (unlabelled, "our GAN's output with no watermark and no manifest: only the classifiers can tell"),
        (chart, "a bar chart drawn by matplotlib: computer-rendered, so the classifiers abstain"),
    ]
    verdicts = checker.check([path for path, _ in cases])
    return [DemoCase(path, what, verdict) for (path, what), verdict in zip(cases, verdicts)]


def _unlabelled_gan_sample() -> np.ndarray:
    from .generators import load_generator

    return load_generator("gan").sample(1, size=256, seed=2026)[0]


def _chart_png() -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.bar(["North", "South", "East", "West"], [42, 35, 27, 31], color="#3a6ea5")
    ax.set_title("Votes by region")
    ax.set_ylabel("thousands")
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return buffer.getvalue()


def _sample_photo() -> np.ndarray:
    from .generators.photos import sample_photo

    return sample_photo("astronaut")


def _edit_keeping_manifest(signed_jpeg: bytes) -> bytes:
    """Paint over part of the picture, re-encode, and graft the signed file's C2PA segments back in:
    the manifest now describes pixels that are no longer there."""
    with Image.open(io.BytesIO(signed_jpeg)) as img:
        edited = img.convert("RGB")
    ImageDraw.Draw(edited).rectangle((300, 60, 420, 140), fill=(20, 20, 20))
    buffer = io.BytesIO()
    edited.save(buffer, "JPEG", quality=95)
    return _insert_segments(buffer.getvalue(), jpeg_manifest_segments(signed_jpeg))


def _insert_segments(jpeg: bytes, segments: bytes) -> bytes:
    return jpeg[:2] + segments + jpeg[2:]
