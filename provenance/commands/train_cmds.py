"""``provenance train gan|diffusion|quality``: train our own generators on CPU and measure them.

Re-running the same ``train`` command continues from the latest checkpoint in ``--out``.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

# Spin-waiting OpenMP threads collapse on a shared machine; must be set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import click  # noqa: E402

from .common import EXIT_FAILED, emit_json, fail, json_option  # noqa: E402

# Per-family defaults chosen from measured CPU step times (see benchmarks/generation.py).
FAMILY_DEFAULTS = {
    "gan": {"patch": 32, "batch_size": 32, "bf16": False, "sample_every": 500, "grid_options": {}},
    "diffusion": {"patch": 32, "batch_size": 32, "bf16": True, "sample_every": 1000,
                  "grid_options": {"steps": 25}},
}


@click.group("train", context_settings={"help_option_names": ["-h", "--help"]})
def train_group() -> None:
    """Train our generators (GAN, diffusion) on patches of real photos, and measure their quality."""


def _training_options(func):
    options = [
        click.option("--real", default="default", show_default=True,
                     help="Folder of real photos, or 'default' (photos shipped with scikit-image/scikit-learn)."),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Run directory: checkpoints, log.jsonl, samples/, weights.safetensors, config.json."),
        click.option("--steps", default=10_000, show_default=True, help="Total steps (a resumed run counts earlier ones)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--batch-size", type=int, help="Default: 32."),
        click.option("--patch", type=int, help="Training patch size in pixels. Default: 32."),
        click.option("--scale", "scales", type=float, multiple=True,
                     help="Rescale photos by this before cropping (repeatable). Default: 0.5."),
        click.option("--threads", type=int, default=None, help="Torch CPU threads (default: torch's choice)."),
        click.option("--bf16/--fp32", "bf16", default=None, help="bfloat16 autocast. Default: gan fp32, diffusion bf16."),
        click.option("--width", type=int, help="Model width: GAN latent channels x8 at the top / UNet base channels."),
        click.option("--sample-every", type=int, help="Write a sample grid every N steps."),
        click.option("--checkpoint-every", type=int, default=500, show_default=True),
        click.option("--log-every", type=int, default=50, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _run_training(family: str, real, out, steps, seed, batch_size, patch, scales, threads, bf16, width,
                  sample_every, checkpoint_every, log_every) -> None:
    import torch

    from provenance.generators.training import TrainConfig, Trainer

    if threads:
        torch.set_num_threads(threads)
    defaults = FAMILY_DEFAULTS[family]
    config = TrainConfig(
        real=str(real), steps=steps, seed=seed, batch_size=batch_size or defaults["batch_size"],
        patch=patch or defaults["patch"], scales=tuple(scales) or (0.5,),
        bf16=defaults["bf16"] if bf16 is None else bf16, log_every=log_every,
        sample_every=sample_every or defaults["sample_every"], checkpoint_every=checkpoint_every,
        grid_options=defaults["grid_options"])
    model_config = _width_overrides(family, width)
    try:
        trainer = Trainer(family, out, config, model_config)
    except (ValueError, FileNotFoundError) as exc:
        fail(out, str(exc), EXIT_FAILED)
    if trainer.step >= steps:
        click.echo(f"{out}: already at step {trainer.step} of {steps}; nothing to do", err=True)
        return
    params = sum(p.numel() for p in trainer.model.export_state_dict().values())
    click.echo(f"{family}: {params / 1e6:.2f}M sampling parameters, {len(trainer.train_photos)} training photos, "
               f"{len(trainer.held_out_photos)} held out; from step {trainer.step} to {steps}; "
               f"{torch.get_num_threads()} threads, {'bf16' if config.bf16 else 'fp32'}", err=True)
    _with_progress(trainer.config.steps, trainer.step, lambda on_log: trainer.run(on_log=on_log))
    click.echo(f"{out}: step {trainer.step}; weights in {Path(out) / 'weights.safetensors'}", err=True)


def _width_overrides(family: str, width: int | None) -> dict:
    if width is None:
        return {}
    if family == "gan":
        return {"generator_widths": (8 * width, 4 * width, 2 * width, width),
                "discriminator_widths": (2 * width, 4 * width, 8 * width)}
    return {"base_channels": width}


def _with_progress(total: int, completed: int, run, also=None):
    """``run(on_log)`` with a progress bar on a terminal, or one JSON line per log record on a log file;
    ``also`` gets every record too (e.g. to append it to the run's log.jsonl)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        def log_line(record: dict) -> None:
            if also:
                also(record)
            click.echo(json.dumps(record), err=True)

        return run(log_line)
    with Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  TextColumn("{task.fields[losses]}"), console=console) as progress:
        task = progress.add_task("train", total=total, completed=completed, losses="")

        def on_log(record: dict) -> None:
            if also:
                also(record)
            shown = {k: v for k, v in record.items() if k not in ("step", "seconds", "load_1m")}
            progress.update(task, completed=record["step"],
                            losses=" ".join(f"{k}={v:.3g}" for k, v in shown.items()))

        return run(on_log)


@train_group.command("gan")
@_training_options
def gan_command(**options) -> None:
    """Train the fully convolutional GAN (hinge loss, spectral-norm critic) on photo patches."""
    _run_training("gan", **options)


@train_group.command("diffusion")
@_training_options
def diffusion_command(**options) -> None:
    """Train the diffusion UNet (DDPM, epsilon prediction) on photo patches; samples with DDIM."""
    _run_training("diffusion", **options)


@train_group.command("quality")
@click.option("--model", "models", multiple=True,
              help="Export directory or shipped name (repeatable). Omit to print the baselines only.")
@click.option("--real", default="default", show_default=True, help="Photo source; its held-out split is the reference.")
@click.option("-n", "--images", "n", default=128, show_default=True, help="Images per set.")
@click.option("--size", default=128, show_default=True, help="Compared crop size (pyramid down to 16px).")
@click.option("--sample-size", default=256, show_default=True, help="Models sample at this size, then crop.")
@click.option("--sample-steps", type=int, help="DDIM steps for diffusion models (default: the model's).")
@click.option("--scale", "scales", type=float, multiple=True, help="Photo rescale for real crops. Default: 0.5.")
@click.option("--seed", default=0, show_default=True)
@click.option("--threads", type=int, default=None)
@json_option
def quality_command(models, real, n, size, sample_size, sample_steps, scales, seed, threads, as_json) -> None:
    """Sliced Wasserstein distance (ProGAN) of generator samples vs held-out real photos, next to baselines."""
    import torch

    from provenance.generators import load_generator
    from provenance.generators.quality import format_table, quality_report

    if threads:
        torch.set_num_threads(threads)
    loaded = {}
    for name in models:
        try:
            loaded[name] = load_generator(name)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            fail(name, str(exc))
    options = {}
    if sample_steps:
        if any(m.family != "diffusion" for m in loaded.values()):
            raise click.UsageError("--sample-steps applies to diffusion models only")
        options["steps"] = sample_steps
    try:
        rows = quality_report(loaded, real=real, n=n, size=size, sample_size=sample_size,
                              scales=tuple(scales) or (0.5,), seed=seed, sample_options=options)
    except (ValueError, FileNotFoundError) as exc:
        fail(real, str(exc))
    if as_json:
        emit_json([{"images": name, "swd_mean": r.mean, "swd_per_level": dict(zip(map(str, r.resolutions), r.per_level))}
                   for name, r in rows])
    else:
        click.echo(format_table(rows))
        click.echo("SWD x1e3 on 7x7 Laplacian-pyramid neighbourhoods vs held-out real crops; lower is better.")


@train_group.command("photos")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-wheels", is_flag=True, help="Skip the photos from scikit-image/scikit-learn.")
def photos_command(out: Path, no_wheels: bool) -> None:
    """Collect ~75 offline real photos into OUT (Debian photo packages + wheels) for --real OUT."""
    from provenance.generators.photo_packages import PhotoInstallError, install_photos

    try:
        written = install_photos(out, include_wheels=not no_wheels)
    except PhotoInstallError as exc:
        fail(out, str(exc), EXIT_FAILED)
    click.echo(f"{out}: {len(written)} photos; train with --real {out}")


@train_group.command("export")
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Shipped name, e.g. gan or diffusion.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of exports (default: the package's shipped weights folder).")
@click.option("-n", "--images", "n", default=128, show_default=True, help="Images per set for the SWD figure.")
@click.option("--sample-steps", type=int, help="DDIM steps for a diffusion model (default: the model's).")
@click.option("--threads", type=int, default=None)
def export_command(run: Path, name: str, dest: Path | None, n: int, sample_steps: int | None, threads) -> None:
    """Ship RUN's weights as NAME with a model card (data, steps, time, hardware, SWD vs baselines, grid)."""
    import shlex
    import sys

    import torch

    from provenance.generators import SHIPPED_WEIGHTS_DIR
    from provenance.generators.model_card import export_run

    if threads:
        torch.set_num_threads(threads)
    config = json.loads((run / "config.json").read_text())
    training = config["training"]
    reproduce = "\n".join([
        "provenance train photos photos/   # Debian photo packages + wheel photos, offline",
        f"provenance train {config['family']} --real photos/ --out {run} --steps {config['step']} "
        f"--seed {training['seed']} --threads 1   # re-run to resume",
        "provenance train export " + " ".join(shlex.quote(a) for a in sys.argv[3:]),
    ])
    try:
        dest_dir = export_run(run, name, dest or SHIPPED_WEIGHTS_DIR, n=n,
                              sample_options={"steps": sample_steps} if sample_steps else None,
                              reproduce=reproduce)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(run, str(exc), EXIT_FAILED)
    click.echo(f"{dest_dir}: weights, config, MODEL_CARD.md, samples.jpg, quality.json")


@train_group.command("detector")
@click.option("--dataset", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A dataset built by `provenance dataset build` (train split fits, validation calibrates).")
@click.option("--model", "family", type=click.Choice(["cnn", "spectral"]), required=True)
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--steps", default=3000, show_default=True, help="CNN optimisation steps (re-run to resume).")
@click.option("--seed", default=0, show_default=True)
@click.option("--target-fpr", default=0.01, show_default=True, help="False-positive rate on validation reals.")
@click.option("--generators", default=None,
              help="Train and calibrate on these generators' images only, e.g. 'gan' (cross-generator tests).")
@click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
              help="Override a field of the family's config (repeatable), e.g. --set input=npr --set tile=96.")
@click.option("--threads", type=int, default=None)
def detector_command(dataset: Path, family: str, out: Path, steps: int, seed: int, target_fpr: float,
                     generators: str | None, settings, threads) -> None:
    """Train a passive classifier on DATASET's train split and calibrate it on its validation split."""
    import torch

    from detectors.learned import create
    from provenance.datasets.reading import load_split

    if threads:
        torch.set_num_threads(threads)
    try:
        only = tuple(generators.split(",")) if generators else None
        train_images, train_labels, _ = load_split(dataset, "train", only)
        val_images, val_labels, _ = load_split(dataset, "validation", only)
    except (FileNotFoundError, ValueError) as exc:
        fail(dataset, str(exc), EXIT_FAILED)
    click.echo(f"{family}: {len(train_labels)} training images ({int(train_labels.sum())} synthetic), "
               f"{len(val_labels)} for calibration", err=True)
    try:
        model = create(family, **_parse_settings(settings))
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(f"{family}: {exc}", param_hint="--set") from None
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        if family == "cnn":
            with open(out / "log.jsonl", "a") as log:
                def append(record: dict) -> None:
                    log.write(json.dumps(record) + "\n")
                    log.flush()

                _with_progress(steps, 0, lambda on_log: model.fit(train_images, train_labels, steps=steps, seed=seed,
                                                                  out=out, on_log=on_log), also=append)
        else:
            model.fit(train_images, train_labels, seed=seed)
        model.calibrate(val_images, val_labels, target_fpr=target_fpr)
    except ValueError as exc:
        fail(out, str(exc), EXIT_FAILED)
    model.training.setdefault("seconds", round(time.perf_counter() - started, 1))
    model.training.update(dataset=str(dataset), generators=generators or "all",
                          hardware=f"{os.cpu_count()} CPU cores, {torch.get_num_threads()} torch threads",
                          calibration_images=len(val_labels))
    model.save(out)
    point = model.operating_point
    click.echo(f"{out}: threshold {point.threshold:.3f} (FPR {point.measured_fpr:.3%} on {point.n_real} "
               "validation reals); evaluate with `provenance eval`")
    if point.n_real * point.target_fpr < 1:
        click.echo(f"provenance: {out}: warning: {point.n_real} validation reals cannot pin a "
                   f"{point.target_fpr:.1%} false-positive rate; build a larger dataset", err=True)


def _parse_settings(settings) -> dict:
    parsed = {}
    for setting in settings:
        key, sep, value = setting.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, not {setting!r}", param_hint="--set")
        try:
            parsed[key] = json.loads(value)
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


@train_group.command("export-detector")
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Shipped detector name: cnn or spectral.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of classifiers (default: the package's detectors/weights).")
@click.option("--dataset", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Dataset to evaluate on (default: the one it was trained on; its test split).")
def export_detector_command(run: Path, name: str, dest: Path | None, dataset: Path | None) -> None:
    """Ship a trained classifier with a model card holding its test-split evaluation."""
    from detectors.classifiers import SHIPPED_WEIGHTS
    from detectors.learned.model_card import export_classifier

    try:
        folder = export_classifier(run, name, dest or SHIPPED_WEIGHTS, dataset)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(run, str(exc), EXIT_FAILED)
    click.echo(f"{folder}: classifier, MODEL_CARD.md, eval/")


from .train_watermark_cmd import watermark_command  # noqa: E402

train_group.add_command(watermark_command)
