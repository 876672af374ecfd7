"""The dataset card (README.md): what is in the set, how it was made, and the counts that matter."""
from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Iterable

from provenance.markdown import markdown_table
from .layout import SPLITS, TRUST_ROOT_FILE
from .plan import DatasetConfig


def class_key(row: dict) -> str:
    return "real" if row["label"] == "real" else f"synthetic/{row['generator']}"


def count_table(rows: Iterable[dict]) -> dict:
    """{class/generator: {perturbation: {split: n}}}"""
    table: dict = {}
    for row in rows:
        cell = table.setdefault(class_key(row), {}).setdefault(row["perturbation"], {})
        cell[row["split"]] = cell.get(row["split"], 0) + 1
    return table


def _counts_markdown(rows: list[dict]) -> str:
    table = count_table(rows)
    lines = []
    for cls in sorted(table):
        for perturbation in sorted(table[cls]):
            cell = table[cls][perturbation]
            lines.append([cls, perturbation, *[cell.get(s, 0) for s in SPLITS], sum(cell.values())])
    totals = Counter()
    for row in rows:
        totals[row["split"]] += 1
    lines.append(["**all**", "", *[totals[s] for s in SPLITS], sum(totals.values())])
    return markdown_table(["class / generator", "perturbation", *SPLITS, "total"], lines)


def _distribution_markdown(rows: list[dict]) -> str:
    """Format, size and JPEG quality per class: the check that no format shortcut is left."""
    by_class: dict[str, list[dict]] = {}
    for row in rows:
        by_class.setdefault(row["label"], []).append(row)
    lines = []
    for cls, members in sorted(by_class.items()):
        formats = Counter(r["format"] for r in members)
        qualities = [r["quality"] for r in members if r["format"] != "png"]
        sizes = [r["width"] * r["height"] for r in members]
        lines.append([cls, len(members), ", ".join(f"{k} {v / len(members):.0%}" for k, v in sorted(formats.items())),
                      f"{sum(qualities) / len(qualities):.1f}" if qualities else "-",
                      f"{(sum(sizes) / len(sizes)) ** 0.5:.0f}px"])
    return markdown_table(["class", "images", "format", "mean JPEG quality", "mean side (sqrt area)"], lines)


def _provenance_markdown(rows: list[dict]) -> str:
    synthetic = [r for r in rows if r["label"] == "synthetic"]
    lines = []
    for generator in sorted({r["generator"] for r in synthetic}):
        members = [r for r in synthetic if r["generator"] == generator]
        c2pa = Counter(r["c2pa"] for r in members)
        versions = sorted({f"{r.get('model')} {r.get('model_version')}" for r in members})
        lines.append([generator, len(members), sum(r["watermark"] for r in members),
                      c2pa.get("signed", 0), c2pa.get("stripped", 0), c2pa.get("none", 0), "; ".join(versions)])
    return markdown_table(["generator", "images", "watermarked", "C2PA signed", "C2PA stripped", "no C2PA",
                           "model version"], lines)


def _shortcuts_markdown(out: Path, rows: list[dict]) -> str:
    """Per class, each trait a detector could tell the classes apart by instead of by generation."""
    from .layout import image_path
    from .external import measure_shortcuts, shortcut_gaps

    per_class = measure_shortcuts(rows, lambda row: image_path(out, row))
    lines = []
    for cls in sorted(per_class):
        for trait, counts in per_class[cls].items():
            total = sum(counts.values())
            top = sorted(counts.items(), key=lambda kv: -kv[1])[:4]
            shown = ", ".join(f"{value} {n / total:.0%}" if "p10" not in trait else value for value, n in top)
            lines.append([cls, trait, shown + (f", ... ({len(counts)} values)" if len(counts) > 4 else "")])
    gaps = shortcut_gaps(per_class)
    gap_text = ", ".join(f"{k} {v:.3f}" for k, v in gaps.items())
    return (markdown_table(["class", "trait", "distribution"], lines)
            + (f"\n\nDistance between the classes (total variation, 0 = identical): {gap_text}." if gaps else ""))


def _external_markdown(config: DatasetConfig, rows: list[dict]) -> str:
    if not config.external:
        return ""
    from .external import parse_source, scan_source

    used = Counter(json.loads(r["source"])["external"] for r in rows if '"external"' in r["source"])
    described = []
    for spec in config.external:
        label, _, rest = spec.partition(":")
        name = rest.partition("=")[0]
        try:
            _, skipped = scan_source(name, label, parse_source(rest)[1], config.size)
        except ValueError:  # the folder has gone since the plan was made
            skipped = {"folder no longer present, not counted": 0}
        skips = ", ".join(f"{n} {reason}" for reason, n in sorted(skipped.items()))
        described.append(f"{label} `{name}` ({used.get(name, 0)} images{'; skipped: ' + skips if skips else ''})")
    names = "; ".join(described)
    return (f"- External sources: {names}. Each image: decoded (metadata dropped), JPEG-compressed once at native\n"
            "  resolution if its file was lossless (so both classes carry a lossy history), one native crop at a\n"
            "  random offset (never resized), then the shared perturbation and encoding above. Splits by group:\n"
            "  generator x origin folder for synthetic sources, the photo for real ones.\n")


def _generators_used(config: DatasetConfig, rows: list[dict]) -> str:
    used = {r["generator"] for r in rows if r["label"] == "synthetic"}
    names = [f"`{config.gan_model}`" if "gan" in used else "",
             f"`{config.diffusion_model}` (DDIM {config.diffusion_steps} steps)" if "diffusion" in used else ""]
    return ", ".join(n for n in names if n) or "none"


def card_text(config: DatasetConfig, rows: list[dict], planned: int, out: Path) -> str:
    """The card's Markdown for ``rows`` (the images made so far in ``out``) out of ``planned``."""
    status = "complete" if len(rows) == planned else f"**incomplete: {len(rows)} of {planned} images** (re-run the build)"
    real_sources = sorted({r["source_photo"] for r in rows if r["label"] == "real" and "external" not in r["source"]})
    return f"""---
configs:
- config_name: default
  data_dir: .
---
# Synthetic-image detection dataset (made by `provenance dataset build`)

Status: {status}. Seed {config.seed}, {config.size}x{config.size} before perturbation.
Load with `datasets.load_dataset("imagefolder", data_dir=THIS_FOLDER)`; every image's labels are in
split's `metadata.jsonl` (`file_name`, `label`, `generator`, `seed`, `index`, `watermark`,
`watermark_id`, `c2pa`, `perturbation` and `perturbations` (JSON, with parameters), `format`,
`quality`, `split`, `source_photo`/`source_group`/`source` (JSON crop details) for real images).

## Counts (class x generator x perturbation x split)

{_counts_markdown(rows)}

## One pipeline for both classes

Real crops and generated images go through the same steps, with parameters drawn from the same
distribution regardless of class: one perturbation for {config.perturb_fraction:.0%} of images (chosen
from {", ".join(config.perturbations)}), then encoding as **{config.format}**
{f"with quality drawn from {config.jpeg_quality[0]}-{config.jpeg_quality[1]}" if config.format != "png" else ""}.
Real photos are downscaled by {config.real_scale[0]}-{config.real_scale[1]} (more only when the photo is small) before
cropping, which removes most of the 8x8 JPEG grid their source files carry. Measured per class:

{_distribution_markdown(rows)}

## Shortcuts, measured on the written files

{_shortcuts_markdown(out, rows)}

## Labels from the write side

{_provenance_markdown(rows) if any(r["label"] == "synthetic" for r in rows) else "No synthetic images."}

Watermarks are our keyed mark ({_schemes_markdown(rows)}) with ID (generator code, serial); C2PA manifests are signed by
the key whose root is `{TRUST_ROOT_FILE}` (present when any image was signed). "Stripped" images were
signed, then had their manifest store removed (JPEG APP11 / PNG caBX), as re-upload pipelines do.

## Sources and splits

- Real photos: `{config.real}` ({len(real_sources)} photos used). Splits are by near-duplicate photo group:
  no photo (or its stereo/edited twin) appears in two splits. Synthetic images are assigned to splits at random.
{_external_markdown(config, rows)}- Generators: {_generators_used(config, rows)}; trained
  on photo patches by `provenance train` (see their model cards). Their training photos may overlap the
  real photos here: a detector must not be judged on recognising specific photos.
"""


def _schemes_markdown(rows: list[dict]) -> str:
    """The watermark schemes the marked images carry, e.g. "`learned`: 120 images"."""
    counts = Counter(row["watermark_scheme"] for row in rows if row.get("watermark_scheme"))
    return ", ".join(f"`{name}`: {n} images" for name, n in sorted(counts.items())) or "no image is marked"
