"""``provenance dataset build|verify|corpus``: labelled real + synthetic image sets for detector research."""
from __future__ import annotations

from pathlib import Path

import click

from provenance.errors import first_line

from .common import EXIT_FAILED, emit_json, fail, json_option
from .progress import progress_bar
from .engine_options import engine_options, ray_options, refuse_ray_only_options
from .corpus_cmds import corpus_group


def _range(text: str, kind=float) -> tuple:
    low, _, high = text.partition("-")
    try:
        return kind(low), kind(high or low)
    except ValueError:
        raise click.BadParameter(f"expected LOW-HIGH, e.g. 70-95, not {text!r}") from None


@click.group("dataset", context_settings={"help_option_names": ["-h", "--help"]})
def dataset_group() -> None:
    """Build and verify labelled benchmark datasets (Hugging Face imagefolder layout)."""


dataset_group.add_command(corpus_group)


@dataset_group.command("build")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--real", "real_sources", multiple=True,
              help="Folder of real photos to crop --n-real images from (see `provenance dataset photos`), or 'default' (wheel photos; the default). "
                   "Repeatable as NAME=DIR: every image of DIR once, through the external pipeline.")
@click.option("--synthetic", "synthetic_sources", multiple=True, metavar="NAME=DIR",
              help="Generated images from outside (NAME = generator label), repeatable: each image once, "
                   "native crop, same encoding and perturbations as every other image.")
@click.option("--n-real", default=100, show_default=True, type=click.IntRange(min=0))
@click.option("--n-gan", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("--n-diffusion", default=50, show_default=True, type=click.IntRange(min=0))
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=16))
@click.option("--seed", default=0, show_default=True)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Parallel processes.")
@click.option("--split", "splits", default="0.7,0.15,0.15", show_default=True, help="train,validation,test fractions.")
@click.option("--format", "fmt", type=click.Choice(["jpeg", "png", "webp"]), default="jpeg", show_default=True,
              help="Encoding of every image, real and synthetic alike.")
@click.option("--jpeg-quality", default="70-95", show_default=True, help="Quality range (jpeg/webp).")
@click.option("--perturb-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of images given one perturbation.")
@click.option("--perturbations", default="blur,brightness,crop,noise,resize,screenshot", show_default=True,
              help="Comma-separated perturbations to draw from.")
@click.option("--watermark-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of synthetic images with our watermark.")
@click.option("--c2pa-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of synthetic images signed with a C2PA manifest.")
@click.option("--stripped-fraction", default=0.5, show_default=True, type=click.FloatRange(0, 1),
              help="Share of the signed images whose manifest is then stripped.")
@click.option("--gan-model", default="gan", show_default=True, help="Shipped name or export directory.")
@click.option("--diffusion-model", default="diffusion", show_default=True)
@click.option("--diffusion-steps", default=25, show_default=True, type=click.IntRange(min=1))
@click.option("--keys", type=click.Path(file_okay=False, path_type=Path),
              help="Signing keys (default: a key pair made for this dataset under OUT/.build/keys).")
@engine_options
@json_option
def build_command(out, real_sources, synthetic_sources, n_real, n_gan, n_diffusion, size, seed, workers, splits, fmt, jpeg_quality,
                  perturb_fraction, perturbations, watermark_fraction, c2pa_fraction, stripped_fraction, gan_model,
                  diffusion_model, diffusion_steps, keys, engine, address, num_workers, as_json) -> None:
    """Build a labelled dataset in OUT; after a crash, the same command finishes it.

    With --engine ray the same plan, files and records are made by Ray actors (--num-workers, default
    --workers); OUT must be on storage every Ray node sees."""
    from provenance.datasets import DatasetConfig, DatasetError, build_dataset

    try:
        split_fractions = tuple(float(x) for x in splits.split(","))
    except ValueError:
        raise click.BadParameter(f"expected three comma-separated fractions, not {splits!r}") from None
    if len(split_fractions) != 3:
        raise click.BadParameter("--split needs three fractions: train,validation,test")
    from provenance.datasets.external import source_spec

    plain = [r for r in real_sources if "=" not in r]
    if len(plain) > 1:
        raise click.BadParameter(f"one photo folder for --n-real crops, not {', '.join(plain)}; "
                                 "give other real sources as NAME=DIR")
    try:
        external = tuple([source_spec("synthetic", s) for s in synthetic_sources]
                         + [source_spec("real", r) for r in real_sources if "=" in r])
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    config = DatasetConfig(
        real=str(plain[0]) if plain else "default", external=external, n_real=n_real, n_gan=n_gan, n_diffusion=n_diffusion, size=size, seed=seed,
        splits=split_fractions, format=fmt, jpeg_quality=_range(jpeg_quality, int),
        perturb_fraction=perturb_fraction, perturbations=tuple(p for p in perturbations.split(",") if p),
        watermark_fraction=watermark_fraction, c2pa_fraction=c2pa_fraction, stripped_fraction=stripped_fraction,
        gan_model=gan_model, diffusion_model=diffusion_model, diffusion_steps=diffusion_steps)
    try:
        config.check()
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    map_items, failures = None, (DatasetError, ValueError, FileNotFoundError)
    if engine == "ray":
        from provenance.engines.ray_engine import RayEngineError, dataset_item_runner

        map_items = dataset_item_runner(ray_options(address, num_workers, default_workers=workers))
        failures += (RayEngineError,)
    refuse_ray_only_options(engine, address=address, num_workers=num_workers)
    try:
        with progress_bar("dataset", enabled=not as_json and engine != "ray") as bar:  # Ray shows its own
            result = build_dataset(out, config, workers=workers, keys=keys, map_items=map_items,
                                   on_progress=lambda done, total: bar.update(completed=done, total=total))
    except failures as exc:
        fail(out, first_line(exc), EXIT_FAILED)
    for failure in result.failed:
        click.echo(f"provenance: {out}: {failure['id']}: {failure['error']}", err=True)
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{out}: {result.planned - len(result.failed)} of {result.planned} images "
                   f"({result.made_now} made now, {result.already_done} already there); card in {out / 'README.md'}")
    if result.failed:
        raise SystemExit(EXIT_FAILED)


@dataset_group.command("verify")
@click.argument("directory", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--deep", is_flag=True, help="Also decode watermarks and read C2PA manifests against the labels.")
@json_option
def verify_command(directory: Path, deep: bool, as_json: bool) -> None:
    """Check a dataset: every planned image present once, files match labels, no split leakage."""
    from provenance.datasets import verify_dataset

    checked, problems = verify_dataset(directory, deep=deep)
    if as_json:
        emit_json({"directory": str(directory), "images": checked, "problems": problems})
    else:
        for problem in problems:
            click.echo(f"provenance: {problem}", err=True)
        click.echo(f"{directory}: {checked} images, {len(problems)} problems")
    if problems:
        raise SystemExit(EXIT_FAILED)


@dataset_group.command("photos")
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--no-wheels", is_flag=True, help="Skip the photos from scikit-image/scikit-learn.")
def photos_command(out: Path, no_wheels: bool) -> None:
    """Collect ~75 offline real photos into OUT (Debian photo packages + wheels) for --real OUT."""
    from provenance.generators.photo_packages import PhotoInstallError, install_photos

    try:
        written = install_photos(out, include_wheels=not no_wheels)
    except PhotoInstallError as exc:
        fail(out, str(exc), EXIT_FAILED)
    click.echo(f"{out}: {len(written)} photos; use with --real {out}")
