"""Train the rendered-graphic gate (:mod:`detectors.learned.rendered`): graphics drawn here
(:mod:`provenance.datasets.graphics`: matplotlib figures, Pillow pages) against the public corpus's
photos and generated images as stored, and captioned copies of both (memes and news cards are still
pictures). Graphics take splits by index (3 train : 1 validation : 1 test), corpus images their
corpus split, a captioned copy its picture's.

The threshold is the smallest P(rendered) >= 0.5 that at most ``target_share`` of the validation
split's non-graphics reach: a gated picture loses its classifiers, so that is the error to bound.
The test split shows what the gate does; the held-out check is graphics no renderer here drew
(``python -m benchmarks rendered_graphics --graphics DIR``).
"""
from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from detectors.learned.rendered import MAX_BLOCKS, RenderedGraphicGate, rendering_features
from provenance.precision import cpu_capability

GRAPHIC_KINDS = ("figure", "page")
TARGET_SHARE = 0.002
MIN_THRESHOLD = 0.5


@dataclass(frozen=True)
class GateSample:
    kind: str  # figure | page | photo | generated | captioned photo | captioned generated
    split: str
    features: np.ndarray

    @property
    def is_rendered(self) -> bool:
        return self.kind in GRAPHIC_KINDS


def graphic_split(index: int) -> str:
    return ("test", "validation", "train", "train", "train")[index % 5]


def collect(corpus: Path, graphics: int, seed: int, on_progress: Callable[[int, int], None] | None = None
            ) -> list[GateSample]:
    """Features of every usable corpus image, ``graphics`` rendered graphics and as many captioned pictures."""
    from PIL import Image

    from provenance.corpus_detector import corpus_samples
    from provenance.datasets.graphics import captioned, posted, rendered
    from provenance.imageio import ImageLoadError, load_image

    pictures = corpus_samples(corpus)
    if not pictures:
        raise ValueError(f"{corpus}: no corpus images (run `provenance dataset corpus rebuild --out {corpus}`)")
    total, done = len(pictures) + 2 * graphics, 0
    out: list[GateSample] = []

    def add(kind: str, split: str, data: bytes | str) -> None:
        nonlocal done
        done += 1
        if on_progress:
            on_progress(done, total)
        try:
            rgb = load_image(data).rgb
        except ImageLoadError:
            return
        if min(rgb.shape[:2]) >= 8:
            out.append(GateSample(kind, split, rendering_features(rgb)))

    for sample in pictures:
        add("generated" if sample.label else "photo", sample.split, sample.image.path)
    rng = np.random.default_rng(seed)
    for index in range(graphics):
        kind, image = rendered(rng, index)
        add(kind, graphic_split(index), posted(rng, image)[0])
        picture = pictures[int(rng.integers(len(pictures)))]
        with Image.open(picture.image.path) as source:
            caption = captioned(rng, source.convert("RGB"))
        add("captioned generated" if picture.label else "captioned photo", picture.split, posted(rng, caption)[0])
    return out


def threshold_for(negative_scores: np.ndarray, target_share: float) -> float:
    """The smallest threshold >= 0.5 that at most ``target_share`` of ``negative_scores`` reach."""
    ranked = np.sort(np.asarray(negative_scores, np.float64))[::-1]
    allowed = int(np.floor(target_share * len(ranked)))
    if allowed >= len(ranked):
        return MIN_THRESHOLD
    return max(MIN_THRESHOLD, float(np.nextafter(ranked[allowed], np.inf)))


def train_gate(corpus: Path, out: Path, graphics: int = 1200, seed: int = 17, target_share: float = TARGET_SHARE,
               on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Fit, set the threshold, measure the test split; write ``out/gate.json`` and ``out/MODEL_CARD.md``."""
    started = time.perf_counter()
    samples = collect(Path(corpus), graphics, seed, on_progress)
    features = np.stack([s.features for s in samples])
    rendered = np.array([s.is_rendered for s in samples])
    splits, kinds = np.array([s.split for s in samples]), np.array([s.kind for s in samples])
    train = splits == "train"
    if rendered[train].all() or not rendered[train].any():
        raise ValueError("the training split needs graphics and pictures both")
    gate = RenderedGraphicGate().fit(features[train], rendered[train])
    scores = gate.predict_proba(features)
    validation_negatives = scores[(splits == "validation") & ~rendered]
    gate.threshold = threshold_for(validation_negatives, target_share)
    table = {kind: {split: {"images": int(((kinds == kind) & (splits == split)).sum()),
                            "gated": int(((kinds == kind) & (splits == split) & (scores >= gate.threshold)).sum())}
                    for split in ("train", "validation", "test")}
             for kind in ("figure", "page", "photo", "generated", "captioned photo", "captioned generated")}
    gate.record = {
        "threshold_rule": f"smallest P(rendered) >= {MIN_THRESHOLD} reached by at most {target_share:.2%} of the "
                          f"validation split's {len(validation_negatives)} non-graphics",
        "target_share": target_share, "graphics": graphics, "seed": seed, "corpus": str(corpus),
        "max_blocks": MAX_BLOCKS, "seconds": round(time.perf_counter() - started, 1),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}, {cpu_capability().isa})", "gated": table,
    }
    gate.save(out)
    (Path(out) / "MODEL_CARD.md").write_text(model_card(gate))
    return gate.record


def model_card(gate: RenderedGraphicGate) -> str:
    record = gate.record
    rows = ["| images | split | n | gated |", "|---|---|---|---|"]
    for kind, per_split in record["gated"].items():
        for split in ("validation", "test"):
            cell = per_split[split]
            if cell["images"]:
                rows.append(f"| {kind} | {split} | {cell['images']} | {cell['gated']} "
                            f"({cell['gated'] / cell['images']:.1%}) |")
    return "\n".join([
        "# rendered-graphic gate", "",
        "Says when an image is computer-rendered (a chart, text, a screenshot, a diagram) rather than a photograph "
        "or a generator's picture; every trained classifier abstains on such an image (`detectors/learned/rendered.py`). "
        "Logistic regression on 17 statistics of up to "
        f"{record['max_blocks']:,} 8x8 blocks and their logarithms; `gate.json` holds the scaler and coefficients "
        "(JSON: loading runs no code).", "",
        "## Data", "",
        f"- Positives: {record['graphics']} graphics drawn here from seed {record['seed']} "
        "(`provenance/datasets/graphics.py`): two matplotlib figures (12 chart kinds, tables, bullet slides; 12 styles) "
        "for every Pillow page (text, buttons, rules, gradient headers), each served as a platform might (30% "
        "downscaled, PNG or JPEG q60-95). Splits by index: 3 train, 1 validation, 1 test.",
        "- Negatives: the photos and generated images of the public corpus pinned in "
        "`provenance/datasets/corpus_index.csv`, as stored, in its own splits, and as many captioned copies of them "
        "(a caption bar or text on the picture), in their picture's split.",
        "",
        "## Training and threshold", "",
        f"- scikit-learn `LogisticRegression(C={gate.C})` on standardised features, train split only; "
        f"{record['seconds']:.0f} s in all (features and fit) on {record['machine']}.",
        f"- Threshold {gate.threshold:.4f}: the {record['threshold_rule']}.",
        "", "## Measured (at the threshold)", "", *rows, "",
        "Graphics from renderers that drew none of the training set (public repositories' charts, screenshots, "
        "diagrams and text images, and Pillow drawings), and what the gate costs `check` on the corpus's test split: "
        "`python -m benchmarks rendered_graphics --graphics DIR --corpus CORPUS` (README, \"Rendered graphics\").",
        "",
        "Retrain: `provenance train detector rendered-gate --corpus CORPUS --out detectors/weights/rendered-graphic`.",
        "",
    ])
