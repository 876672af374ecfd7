"""``provenance generate``: our own models' images, each watermarked and signed unless told otherwise."""
from __future__ import annotations

from pathlib import Path

import click

from provenance.threads import set_torch_threads

from .common import EXIT_FAILED, emit_json, fail, json_option
from .progress import progress_bar


@click.command("generate", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", default="gan", show_default=True,
              help="Shipped model name (gan, diffusion) or a training/export directory.")
@click.option("-n", "count", default=4, show_default=True, type=click.IntRange(min=0), help="Number of images.")
@click.option("--size", default=256, show_default=True, type=click.IntRange(min=1), help="Width and height in pixels.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder; also gets generated.jsonl, one record per image.")
@click.option("--seed", default=0, show_default=True, help="Same seed, same images.")
@click.option("--format", "fmt", type=click.Choice(["png", "jpeg", "webp"]), default="png", show_default=True)
@click.option("--quality", default=95, show_default=True, type=click.IntRange(1, 100), help="JPEG/WebP quality.")
@click.option("--no-watermark", is_flag=True, help="Leave out the invisible watermark (for datasets).")
@click.option("--no-c2pa", is_flag=True, help="Leave out the signed C2PA manifest (for datasets).")
@click.option("--scheme", default=None, help="Watermark scheme (default: learned).")
@click.option("--keys", type=click.Path(file_okay=False, path_type=Path),
              help="Signing keys folder (default: $PROVENANCE_HOME/keys or ~/.config/provenance/keys).")
@click.option("--steps", type=click.IntRange(min=1), help="DDIM steps (diffusion only; default: the model's).")
@click.option("--threads", type=int, default=None, help="Torch CPU threads.")
@json_option
def generate_command(model, count, size, out, seed, fmt, quality, no_watermark, no_c2pa, scheme, keys, steps,
                     threads, as_json) -> None:
    """Generate N images with our GAN or diffusion model.

    Each image carries our invisible watermark (ID = model code + serial) and a C2PA manifest
    declaring trainedAlgorithmicMedia, signed with your keys (`provenance keys init`).
    """
    from provenance.generation import GenerateOptions, GenerationError, iter_generate
    from provenance.watermark.marking import DEFAULT_SCHEME, MarkingError

    set_torch_threads(threads)
    options = GenerateOptions(
        size=size, seed=seed, format=fmt, quality=quality, watermark=not no_watermark,
        scheme=scheme or DEFAULT_SCHEME, c2pa=not no_c2pa, keys=keys,
        sample_options={"steps": steps} if steps else {})
    records = []
    try:
        with progress_bar("generating", total=count, enabled=not as_json and count >= 2) as bar:
            for image in iter_generate(model, count, out, options):
                records.append(image.to_dict())
                bar.advance()
    except (GenerationError, MarkingError) as exc:
        fail(model, str(exc), EXIT_FAILED)
    except ValueError as exc:  # e.g. a size the network cannot make
        fail(model, str(exc), EXIT_FAILED)
    if as_json:
        for record in records:
            emit_json(record)
        return
    labels = []
    if not no_watermark:
        labels.append(f"watermark {options.scheme}")
    if not no_c2pa:
        labels.append("C2PA manifest")
    click.echo(f"{out}: {len(records)} images from {model} (seed {seed}), "
               f"labelled with {' + '.join(labels) if labels else 'nothing (--no-watermark --no-c2pa)'}; "
               f"records in {out / 'generated.jsonl'}")
