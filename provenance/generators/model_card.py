"""Ship a trained run: copy its sampling weights into the package and write a model card that says
what data it saw, how long it trained, on what, and how good it measurably is (SWD vs baselines).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import time
from pathlib import Path

import numpy as np
from PIL import Image

from provenance.shipped import MODEL_CARD_FILE as CARD_FILE

from . import CONFIG_FILE, SHIPPED_WEIGHTS_DIR, WEIGHTS_FILE, load_generator
from .quality import format_table, quality_report
from .training import LOG_FILE, image_grid

GRID_FILE = "samples.jpg"
QUALITY_FILE = "quality.json"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def export_run(run: str | Path, name: str, dest_root: str | Path = SHIPPED_WEIGHTS_DIR, n: int = 128,
               size: int = 128, sample_size: int = 256, seed: int = 0, sample_options: dict | None = None,
               reproduce: str = "") -> Path:
    """Copy ``run``'s weights and config to ``dest_root/name`` and write its card, grid and quality."""
    run, dest = Path(run), Path(dest_root) / name
    config = json.loads((run / CONFIG_FILE).read_text())
    training = config["training"]
    reproduce = reproduce or reproduce_commands(run, name, config, Path(dest_root), n, sample_options)
    log = [json.loads(line) for line in (run / LOG_FILE).read_text().splitlines() if line.strip()]
    dest.mkdir(parents=True, exist_ok=True)
    for file in (WEIGHTS_FILE, CONFIG_FILE):
        shutil.copyfile(run / file, dest / file)

    model = load_generator(dest)
    started = time.perf_counter()
    rows = quality_report({f"{name} (ours)": model}, real=training["real"], n=n, size=size,
                          sample_size=sample_size, scales=tuple(training["scales"]), seed=seed,
                          holdout_seed=training["holdout_seed"], sample_options=sample_options)
    quality_seconds = time.perf_counter() - started
    (dest / QUALITY_FILE).write_text(json.dumps(
        {"n": n, "crop": size, "sample_size": sample_size, "sample_options": sample_options or {},
         "rows": [{"images": k, "swd_mean": r.mean, "per_level": dict(zip(map(str, r.resolutions), r.per_level))}
                  for k, r in rows]}, indent=2) + "\n")

    grid = model.sample(9, size=sample_size, seed=seed, **(sample_options or {}))
    Image.fromarray(image_grid(grid, columns=3)).save(dest / GRID_FILE, quality=92)
    card = _card(name, config, log, rows, n, size, sample_size, sample_options, quality_seconds, reproduce,
                 (dest / WEIGHTS_FILE).stat().st_size)
    (dest / CARD_FILE).write_text(card)
    return dest


def reproduce_commands(run: Path, name: str, config: dict, dest_root: Path, n: int,
                       sample_options: dict | None) -> str:
    """The commands that collect the photos, train this run and export it, from what the run recorded."""
    training = config["training"]
    export = f"provenance train generator export {run} --name {name}"
    if dest_root.resolve() != SHIPPED_WEIGHTS_DIR.resolve():
        export += f" --dest {dest_root}"
    if n != 128:
        export += f" -n {n}"
    if sample_options and "steps" in sample_options:
        export += f" --sample-steps {sample_options['steps']}"
    return "\n".join([
        "provenance dataset photos photos/   # Debian photo packages + wheel photos, offline",
        f"provenance train generator {config['family']} --real photos/ --out {run} --steps {config['step']} "
        f"--seed {training['seed']} --threads 1   # re-run to resume",
        export,
    ])


def _card(name, config, log, rows, n, size, sample_size, sample_options, quality_seconds, reproduce,
          weights_bytes) -> str:
    training, photos = config["training"], config["photos"]
    last = log[-1] if log else {}
    params_note = f"{weights_bytes / 1e6:.1f} MB of weights (safetensors, fp32)"
    rates = [r["images_per_s"] for r in log if "images_per_s" in r]
    loss_keys = [k for k in last if k not in ("step", "seconds", "images_per_s", "load_1m")]
    ours = next(r for k, r in rows if k.endswith("(ours)"))
    beaten = [k for k, r in rows if r.mean > ours.mean]
    lines = [
        f"# Model card: `{name}` ({config['family']})",
        "",
        f"Our own {config['family']} image generator, trained from scratch on this project's machines. "
        "Every image `provenance generate` makes with it carries our watermark and a C2PA manifest.",
        "",
        "## Training",
        "",
        f"- Steps: **{config['step']:,}**, batch {training['batch_size']} random {training['patch']}x"
        f"{training['patch']} crops (photos capped at 1024 px, then scaled by {training['scales']}), "
        f"seed {training['seed']}, {'bf16 autocast' if training['bf16'] else 'fp32'}.",
        f"- Wall time in training steps: **{last.get('seconds', 0) / 3600:.2f} h** "
        f"(median {np.median(rates) if rates else 0:.0f} images/s; sampling grids and checkpoints not counted).",
        f"- Hardware: {cpu_name()}, {os.cpu_count()} logical CPUs, no GPU; torch CPU threads as set by "
        "`--threads` (1 here: two runs shared the 2 cores).",
        f"- Final logged losses (mean over the last {training['log_every']} steps): "
        + ", ".join(f"{k} {last[k]:.4g}" for k in loss_keys) + ".",
        f"- Model config: `{json.dumps(config['model'])}`; {params_note}.",
        "",
        "## Data",
        "",
        f"- Source: `{training['real']}` — {len(photos['train'])} training photos, "
        f"{len(photos['held_out'])} held out (split by near-duplicate group, seed {training['holdout_seed']}).",
        "- Made offline with `provenance dataset photos DIR`: natural colour photos from Debian's "
        "`opencv-doc`, `mate-backgrounds` and `plasma-workspace-wallpapers` packages plus the "
        "scikit-image / scikit-learn sample photos (each picked by eye; no renders or illustrations).",
        f"- Held out: {', '.join(photos['held_out'])}.",
        "",
        "## Measured quality",
        "",
        f"Sliced Wasserstein distance (ProGAN's Laplacian-pyramid 7x7 descriptors, x1e3; lower is better) "
        f"between {n} random {size}px crops of {sample_size}px samples and {n} crops of the **held-out** "
        f"photos, next to trivial baselines computed in the same run ({quality_seconds:.0f} s). "
        "Sampler options: " + (json.dumps(sample_options) if sample_options else "defaults") + ".",
        "",
        format_table(rows),
        "",
        f"Our model scores better than: {', '.join(beaten) if beaten else 'none of the baselines'}.",
        "",
        f"![samples]({GRID_FILE})",
        "",
        f"`{GRID_FILE}`: 9 samples at {sample_size}x{sample_size}, seed 0, unlabelled (no watermark).",
        "",
        "## Limits",
        "",
        "- Trained on ~60 photos for hours on 2 CPU cores: samples are natural-photo *textures* "
        "(colour, grain, edges at patch scale) without objects or scene layout. Useful to exercise "
        "labelling, datasets and detectors; far from a modern generator, so a detector that catches "
        "these says little about detecting Stable Diffusion or GPT-image output.",
        "- Fully convolutional: larger images are stationary texture, with no global composition.",
        "",
        "## Reproduce",
        "",
        "```",
        reproduce or "(see README: Training our generators)",
        "```",
        "",
    ]
    return "\n".join(lines)
