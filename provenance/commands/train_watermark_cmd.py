"""``provenance train watermark``: train the learned watermark (resumable; re-run to continue)."""
from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads: spin-waiting collapses on shared CPUs

import click  # noqa: E402

from .common import EXIT_FAILED, fail  # noqa: E402
from .progress import training_progress  # noqa: E402


@click.command("watermark")
@click.option("--real", default="default", show_default=True,
              help="Folder of real photos (e.g. from 'provenance train photos DIR'), or 'default'.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: checkpoint.pt, weights.safetensors, config.json, log.jsonl, samples/.")
@click.option("--steps", default=20_000, show_default=True, help="Total steps (a resumed run counts earlier ones).")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch-size", default=16, show_default=True)
@click.option("--size", default=128, show_default=True, help="Working resolution of the networks (new runs only).")
@click.option("--width", default=32, show_default=True, help="Channels of the conv stacks (new runs only).")
@click.option("--warmup-steps", default=400, show_default=True, help="At least this many message-only steps (loud residual, no attacks); "
              "the ramp then advances only while running bit accuracy >= 0.85.")
@click.option("--ramp-steps", default=3000, show_default=True, help="Advancing steps to ramp attacks, image loss and quietness.")
@click.option("--max-rotation", default=15.0, show_default=True, help="Attack rotation range (degrees) at full strength.")
@click.option("--max-crop", default=0.5, show_default=True, help="Attack crop: fraction of each side cut at full strength.")
@click.option("--init-from", "init_weights", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Fine-tune: start a new run from these weights (e.g. the shipped learned.safetensors).")
@click.option("--start-progress", default=0.0, show_default=True, help="Curriculum point a fine-tune starts at (0-1).")
@click.option("--registered-crops", "registered_crop_p", default=0.0, show_default=True,
              help="Share of batches showing crops as registration reads them back (in place, black around).")
@click.option("--decoder-only", is_flag=True,
              help="Fine-tune the decoder alone: the encoder, image quality and marks already made stay as they are.")
@click.option("--extra-train", type=click.Path(file_okay=False, exists=True), default=None,
              help="More training images (never held out), e.g. our generators' output.")
@click.option("--lr", default=1e-3, show_default=True, help="Adam learning rate (a fine-tune wants less).")
@click.option("--threads", type=int, default=1, show_default=True, help="Torch CPU threads.")
@click.option("--checkpoint-every", default=100, show_default=True)
@click.option("--sample-every", default=250, show_default=True, help="Samples + held-out bit accuracy every N steps.")
@click.option("--log-every", default=25, show_default=True)
@click.option("--onnx/--no-onnx", "export_onnx", default=True, show_default=True,
              help="Export the decoder to ONNX (weights.decoder.onnx) at the end.")
def watermark_command(real, out, steps, seed, batch_size, size, width, warmup_steps, ramp_steps, max_rotation, max_crop,
                      init_weights, start_progress, registered_crop_p, decoder_only, extra_train, lr, threads, checkpoint_every, sample_every,
                      log_every, export_onnx) -> None:
    """Train the learned watermark's encoder/decoder through a differentiable attack layer."""
    import torch

    from provenance.watermark.learned.export import export_decoder
    from provenance.watermark.learned.networks import NetConfig
    from provenance.watermark.learned.training import WEIGHTS_FILE, TrainConfig, WatermarkTrainer

    torch.set_num_threads(threads)
    config = TrainConfig(real=str(real), steps=steps, seed=seed, batch_size=batch_size, warmup_steps=warmup_steps,
                         ramp_steps=ramp_steps, checkpoint_every=checkpoint_every, sample_every=sample_every,
                         log_every=log_every, max_rotation=max_rotation, max_crop=max_crop,
                         init_weights=str(init_weights or ""), start_progress=start_progress,
                         registered_crop_p=registered_crop_p, decoder_only=decoder_only, extra_train=str(extra_train or ""),
                         lr=lr)
    try:
        trainer = WatermarkTrainer(out, config, NetConfig(size=size, width=width))
    except (ValueError, FileNotFoundError) as exc:
        fail(out, str(exc), EXIT_FAILED)
    if trainer.step >= steps:
        click.echo(f"{out}: already at step {trainer.step} of {steps}; nothing to do", err=True)
    else:
        params = sum(p.numel() for m in (trainer.encoder, trainer.decoder) for p in m.parameters())
        click.echo(f"learned watermark: {params / 1e3:.0f}k parameters, {trainer.net.bits} bits at "
                   f"{trainer.net.size}px, {len(trainer.train_photos)} training photos, "
                   f"{len(trainer.held_out_photos)} held out; step {trainer.step} to {steps}; {threads} threads",
                   err=True)
        with training_progress(steps, trainer.step) as on_log:
            trainer.run(on_log=on_log)
    weights = Path(out) / WEIGHTS_FILE
    if export_onnx and weights.is_file():
        try:
            click.echo(f"{out}: ONNX decoder {export_decoder(weights)}", err=True)
        except ImportError as exc:  # torch.onnx.export needs the onnx package
            click.echo(f"{out}: ONNX export skipped ({exc}); pip install onnx, or pass --no-onnx", err=True)
    click.echo(f"{out}: step {trainer.step}; weights in {weights}", err=True)


def photo_options(command):
    """``--photos`` (a folder read recursively) and ``--exclude`` (a file listing paths under it never to use)."""
    command = click.option("--exclude", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                           help="File of paths under --photos never to use, one per line (e.g. a benchmark's photos).")(command)
    return click.option("--photos", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
                        help="Folder of photos (recursively), e.g. the detection corpus's real/ folder.")(command)


def excluded_paths(exclude: Path | None) -> tuple[str, ...]:
    """The non-empty lines of an ``--exclude`` file."""
    return tuple(line.strip() for line in exclude.read_text().splitlines() if line.strip()) if exclude else ()


@click.command("watermark-scorer")
@click.option("--weights", default=None, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Learned watermark weights to distil (default: the shipped ones).")
@photo_options
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory: samples.npz, checkpoint.pt, scorer.safetensors, config.json, log.jsonl.")
@click.option("--samples", default=3000, show_default=True, help="Edited photos (marked and not) to distil on (new runs only).")
@click.option("--steps", default=5000, show_default=True, help="Total steps (a resumed run counts earlier ones).")
@click.option("--seed", default=0, show_default=True)
@click.option("--batch-size", default=32, show_default=True)
@click.option("--width", default=24, show_default=True, help="Channels of the student's trunk (new runs only).")
@click.option("--peak-loss", default=0.0, show_default=True,
              help="Weight of matching each canvas's best window score, which picks the crop scale (new runs only).")
@click.option("--threads", type=int, default=2, show_default=True, help="Torch CPU threads.")
@click.option("--device", default="cpu", show_default=True, help="Torch device for training, e.g. cuda.")
@click.option("--install", is_flag=True,
              help="At the end, put the scorer beside --weights (.scorer.safetensors and .scorer.onnx), "
                   "so registration ranks placements with it.")
def watermark_scorer_command(weights, photos, exclude, out, samples, steps, seed, batch_size, width, peak_loss,
                             threads, device, install) -> None:
    """Distil the learned mark's crop-registration scores into a narrow, faster network."""
    import torch

    from provenance.watermark.learned.scheme import SHIPPED_WEIGHTS
    from provenance.watermark.learned.scorer import ScorerConfig
    from provenance.watermark.learned.scorer_training import SCORER_FILE, ScorerTrainConfig, ScorerTrainer

    from .progress import progress_bar

    torch.set_num_threads(threads)
    excluded = excluded_paths(exclude)
    config = ScorerTrainConfig(weights=str(weights or SHIPPED_WEIGHTS), photos=str(photos), exclude=excluded,
                               samples=samples, steps=steps, seed=seed, batch_size=batch_size, peak_loss=peak_loss,
                               scorer=ScorerConfig(width=width))
    try:
        with progress_bar("editing photos", total=samples) as bar:
            trainer = ScorerTrainer(out, config, on_sample_built=lambda k: bar.advance(k), device=device)
    except (ValueError, FileNotFoundError) as exc:
        fail(out, str(exc).splitlines()[0], EXIT_FAILED)
    if trainer.step >= steps:
        click.echo(f"{out}: already at step {trainer.step} of {steps}; nothing to do", err=True)
    else:
        params = sum(p.numel() for p in trainer.student.parameters())
        click.echo(f"placement scorer: {params / 1e3:.0f}k parameters, {len(trainer.train_index)} training samples, "
                   f"{len(trainer.validation_index)} validation; step {trainer.step} to {steps}; {threads} threads, {device}",
                   err=True)
        with training_progress(steps, trainer.step) as on_log:
            trainer.run(on_log=on_log)
    click.echo(f"{out}: step {trainer.step}; validation {trainer.validation}; scorer in {Path(out) / SCORER_FILE}", err=True)
    if install:
        scorer, graph = trainer.install()
        click.echo(f"installed {scorer} and {graph} (an int8 form of the old scorer is now ignored: "
                   "`provenance train watermark-int8` writes new ones)", err=True)


@click.command("watermark-int8")
@click.option("--weights", default=None, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Learned watermark weights whose exported graphs to quantise (default: the shipped ones).")
@photo_options
@click.option("--samples", default=144, show_default=True, help="Edited photos (marked and not) read to set the ranges.")
@click.option("--seed", default=0, show_default=True)
def watermark_int8_command(weights, photos, exclude, samples, seed) -> None:
    """Write the int8 forms of the learned mark's exported graphs (run where the CPU has VNNI).

    About 50 s and 2 GB of memory at the default 144 samples; prints a JSON report of each int8
    graph's agreement with its float graph."""
    import json

    from provenance.watermark.learned.export import export_int8
    from provenance.watermark.learned.scheme import SHIPPED_WEIGHTS
    from provenance.watermark.learned.scorer_training import list_photos

    from .progress import progress_bar

    weights = weights or SHIPPED_WEIGHTS
    excluded = excluded_paths(exclude)
    try:
        paths = list_photos(photos, excluded)
        with progress_bar("reading edited photos", total=samples) as bar:
            report = export_int8(weights, paths, samples=samples, seed=seed, on_progress=bar.advance)
    except (ValueError, FileNotFoundError) as exc:
        fail(photos, str(exc).splitlines()[0], EXIT_FAILED)
    click.echo(json.dumps(report, indent=2))
