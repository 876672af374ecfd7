"""``provenance train generator ...`` and ``provenance train detector ...``: grouped by what they train.

    train generator gan|diffusion   train one of our generators on photo patches (resumable)
    train generator quality         SWD of generator samples vs held-out photos, next to baselines
    train generator export          ship a run with its model card
    train detector cnn|spectral     fit a passive classifier on a built dataset, calibrate it (resumable)
    train detector export           ship a classifier with its test-split evaluation
    train detector corpus           fit and ship a classifier (spectral or cnn) on the public corpus
    train detector tighten          raise shipped thresholds to <= 1% FPR on every corpus real source
    train detector early-stop       let check stop a tile classifier after half its tiles, margin measured on the corpus
    train detector rendered-gate    the gate that makes classifiers abstain on charts, text, screenshots, diagrams

Each command parses its options and calls the library (provenance.generators.training,
provenance.detector_training, the model-card exporters); per-family choices live with the families.
Re-running the same training command continues from the latest checkpoint in ``--out``.
"""
from __future__ import annotations

import json
from pathlib import Path

import click

from provenance.errors import first_line
from provenance.threads import set_torch_threads

from .common import EXIT_FAILED, crop_sides, emit_json, fail, json_option
from .progress import training_progress

# One command per registered family, named here so that `--help` does not import torch to list
# them; tests/test_registries.py checks these against the registries.
TRAINABLE_GENERATORS = ("gan", "diffusion")
TRAINABLE_DETECTORS = ("cnn", "spectral", "surprise")


@click.group("train", context_settings={"help_option_names": ["-h", "--help"]})
def train_group() -> None:
    """Train our generators and our detectors (real photos: `provenance dataset photos`)."""


@train_group.group("generator")
def generator_group() -> None:
    """Train our generators (GAN, diffusion) on patches of real photos, measure and ship them."""


@train_group.group("detector")
def detector_group() -> None:
    """Train passive classifiers (cnn, spectral, surprise) on a built dataset, and ship them."""


def _generator_training_options(func):
    options = [
        click.option("--real", default="default", show_default=True,
                     help="Folder of real photos, or 'default' (photos shipped with scikit-image/scikit-learn)."),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Run directory: checkpoints, log.jsonl, samples/, weights.safetensors, config.json."),
        click.option("--steps", default=10_000, show_default=True, help="Total steps (a resumed run counts earlier ones)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--batch-size", type=int, help="Default: the family's (32)."),
        click.option("--patch", type=int, help="Training patch size in pixels. Default: the family's (32)."),
        click.option("--scale", "scales", type=float, multiple=True,
                     help="Rescale photos by this before cropping (repeatable). Default: 0.5."),
        click.option("--threads", type=int, default=None, help="Torch CPU threads (default: torch's choice)."),
        click.option("--bf16/--fp32", "bf16", default=None,
                     help="bfloat16 autocast. Default: gan fp32; diffusion bf16 where the CPU runs bf16 natively "
                          "(AMX / AVX512-BF16), else fp32 (emulated bf16 is several times slower)."),
        click.option("--width", type=int, help="Model width: GAN latent channels x8 at the top / UNet base channels."),
        click.option("--sample-every", type=int, help="Write a sample grid every N steps."),
        click.option("--checkpoint-every", type=int, default=500, show_default=True),
        click.option("--log-every", type=int, default=50, show_default=True),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _train_generator(family: str, real, out, steps, seed, batch_size, patch, scales, threads, bf16, width,
                     sample_every, checkpoint_every, log_every) -> None:
    set_torch_threads(threads)
    import torch

    from provenance.generators.training import Trainer, family_model_config, family_train_config

    config = family_train_config(family, real=str(real), steps=steps, seed=seed, batch_size=batch_size, patch=patch,
                                 scales=tuple(scales) or None, bf16=bf16, log_every=log_every,
                                 sample_every=sample_every, checkpoint_every=checkpoint_every)
    try:
        trainer = Trainer(family, out, config, family_model_config(family, width))
    except (ValueError, FileNotFoundError) as exc:
        fail(out, first_line(exc), EXIT_FAILED)
    if trainer.step >= steps:
        click.echo(f"{out}: already at step {trainer.step} of {steps}; nothing to do", err=True)
        return
    params = sum(p.numel() for p in trainer.model.export_state_dict().values())
    click.echo(f"{family}: {params / 1e6:.2f}M sampling parameters, {len(trainer.train_photos)} training photos, "
               f"{len(trainer.held_out_photos)} held out; from step {trainer.step} to {steps}; "
               f"{torch.get_num_threads()} threads, {'bf16' if config.bf16 else 'fp32'}", err=True)
    with training_progress(trainer.config.steps, trainer.step) as on_log:
        trainer.run(on_log=on_log)
    click.echo(f"{out}: step {trainer.step}; weights in {trainer.out}", err=True)


def _generator_command(family: str) -> click.Command:
    @_generator_training_options
    def command(**options) -> None:
        _train_generator(family, **options)

    command.__doc__ = f"Train our {family} generator on photo patches (re-run to resume)."
    return click.command(family)(command)


for _family in TRAINABLE_GENERATORS:
    generator_group.add_command(_generator_command(_family))


@generator_group.command("quality")
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
    from provenance.generators import load_generator
    from provenance.generators.quality import format_table, quality_report

    set_torch_threads(threads)
    loaded = {}
    for name in models:
        try:
            loaded[name] = load_generator(name)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            fail(name, first_line(exc))
    options = {"steps": sample_steps} if sample_steps else {}
    try:
        rows = quality_report(loaded, real=real, n=n, size=size, sample_size=sample_size,
                              scales=tuple(scales) or (0.5,), seed=seed, sample_options=options)
    except TypeError as exc:  # a sampler that takes no such option
        raise click.UsageError(f"--sample-steps: {first_line(exc)}") from None
    except (ValueError, FileNotFoundError) as exc:
        fail(real, first_line(exc))
    if as_json:
        emit_json([{"images": name, "swd_mean": r.mean, "swd_per_level": dict(zip(map(str, r.resolutions), r.per_level))}
                   for name, r in rows])
    else:
        click.echo(format_table(rows))
        click.echo("SWD x1e3 on 7x7 Laplacian-pyramid neighbourhoods vs held-out real crops; lower is better.")


@generator_group.command("export")
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Shipped name, e.g. gan or diffusion.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of exports (default: the package's shipped weights folder).")
@click.option("-n", "--images", "n", default=128, show_default=True, help="Images per set for the SWD figure.")
@click.option("--sample-steps", type=int, help="DDIM steps for a diffusion model (default: the model's).")
@click.option("--threads", type=int, default=None)
def export_generator_command(run: Path, name: str, dest: Path | None, n: int, sample_steps: int | None,
                             threads) -> None:
    """Ship RUN's weights as NAME with a model card (data, steps, time, hardware, SWD vs baselines, grid)."""
    from provenance.generators.model_card import export_run
    from provenance.shipped import GENERATORS_DIR

    set_torch_threads(threads)
    try:
        dest_dir = export_run(run, name, dest or GENERATORS_DIR, n=n,
                              sample_options={"steps": sample_steps} if sample_steps else None)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(run, first_line(exc), EXIT_FAILED)
    click.echo(f"{dest_dir}: weights, config, MODEL_CARD.md, samples.jpg, quality.json")


# -- detectors -------------------------------------------------------------------------------------

def _detector_training_options(func):
    options = [
        click.option("--dataset", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
                     help="A dataset built by `provenance dataset build` (train split fits, validation calibrates)."),
        click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path)),
        click.option("--steps", default=3000, show_default=True,
                     help="Optimisation steps of an iterative family (cnn; re-run to resume)."),
        click.option("--seed", default=0, show_default=True),
        click.option("--target-fpr", default=0.01, show_default=True, help="False-positive rate on validation reals."),
        click.option("--generators", default=None,
                     help="Train and calibrate on these generators' images only, e.g. 'gan' (cross-generator tests)."),
        click.option("--set", "settings", multiple=True, metavar="KEY=VALUE",
                     help="Override a field of the family's config (repeatable), e.g. --set input=npr --set tile=96."),
        click.option("--threads", type=int, default=None),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _train_detector(family: str, dataset: Path, out: Path, steps: int, seed: int, target_fpr: float,
                    generators: str | None, settings, threads) -> None:
    set_torch_threads(threads)
    from detectors.learned import create
    from provenance.detector_training import load_training_data, train_detector

    try:
        data = load_training_data(dataset, generators.split(",") if generators else None)
    except (FileNotFoundError, ValueError) as exc:
        fail(dataset, first_line(exc), EXIT_FAILED)
    click.echo(f"{family}: {len(data.train_labels)} training images ({int(data.train_labels.sum())} synthetic), "
               f"{len(data.validation_labels)} for calibration", err=True)
    try:
        model = create(family, **_parse_settings(settings))
    except (TypeError, ValueError) as exc:
        raise click.BadParameter(f"{family}: {exc}", param_hint="--set") from None
    try:
        with training_progress(steps) as on_log:
            train_detector(model, data, out, steps=steps, seed=seed, target_fpr=target_fpr, on_log=on_log)
    except ValueError as exc:
        fail(out, first_line(exc), EXIT_FAILED)
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


def _detector_command(family: str) -> click.Command:
    @_detector_training_options
    def command(**options) -> None:
        _train_detector(family, **options)

    command.__doc__ = (f"Fit a {family} classifier on DATASET's train split and calibrate it on its validation split.")
    return click.command(family)(command)


for _family in TRAINABLE_DETECTORS:
    detector_group.add_command(_detector_command(_family))


@detector_group.command("corpus")
@click.option("--corpus", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The public corpus, as `provenance dataset corpus rebuild --out` wrote it.")
@click.option("--own", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Our generators' unmarked output too: OWN/<generator>/*.png (e.g. from `provenance generate`).")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Run folder: the classifier, splits.json, the feature cache and every image's scores.")
@click.option("--family", type=click.Choice(["spectral", "cnn"]), default="spectral", show_default=True,
              help="spectral: features + logistic regression (ships as spectral-corpus); cnn: the NPR-input CNN "
                   "(ships as cnn-corpus; checkpointed, kill and re-run to resume).")
@click.option("--C", "C", default=None, type=float, help="spectral: inverse regularisation (default: the shipped model's).")
@click.option("--steps", default=None, type=click.IntRange(1), help="cnn: training steps of 64 tiles (default 2000).")
@click.option("--target-fpr", default=0.01, show_default=True, help="Per real source, on validation photos.")
@click.option("--crops", default=None, type=click.IntRange(1, 16),
              help="Crops per training image (other offsets and JPEG draws; default: the shipped model's).")
@click.option("--export", "export_to", type=click.Path(file_okay=False, path_type=Path),
              help="Also write the shipped folder here (model card, held-out tables, failure thumbnails), "
                   "e.g. detectors/weights/spectral-corpus.")
@click.option("--lofo", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The JSON `python -m benchmarks.corpus_lofo` wrote, for the card's unseen-family table.")
@click.option("--check-table", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The table `python -m benchmarks.corpus_check` printed (markdown), for the card.")
def corpus_detector_command(corpus: Path, own: Path | None, out: Path, family: str, C: float | None,
                            steps: int | None, target_fpr: float, crops: int | None, export_to: Path | None,
                            lofo: Path | None, check_table: Path | None) -> None:
    """Fit a classifier on the public corpus (+ our generators), split by source group, with a
    threshold for <= TARGET_FPR false positives on every real source (resumable: caches and checkpoints)."""
    from provenance import corpus_detector

    if (family == "cnn" and C is not None) or (family == "spectral" and steps is not None):
        raise click.UsageError("--C is an option of --family spectral, --steps of --family cnn")
    progress = lambda line: click.echo(line, err=True)  # noqa: E731
    crops = crops or corpus_detector.TRAINING_CROPS
    try:
        if family == "cnn":
            from provenance import corpus_cnn

            result = corpus_cnn.train(corpus, own, out, steps=steps or corpus_cnn.DEFAULT_STEPS, crops=crops,
                                      target_fpr=target_fpr, on_progress=progress)
            held_out = "validation photos (crops and files) and training photos' files, by both graphs"
        else:
            result = corpus_detector.train(corpus, own, out, C=C or corpus_detector.DEFAULT_C, target_fpr=target_fpr,
                                           on_progress=progress, crops=crops)
            held_out = "validation photos, training photos out of fold and as shipped; crops and files"
    except ImportError as exc:
        fail(corpus, f"{first_line(exc)}; install the export extra: pip install -e '.[export]'", EXIT_FAILED)
    except (FileNotFoundError, ValueError) as exc:
        fail(corpus, first_line(exc), EXIT_FAILED)
    point = result.model.operating_point
    click.echo(f"{out}: threshold {point.threshold:.4f} ({point.measured_fpr:.2%} of {point.n_real} real "
               f"scores above it: {held_out}; every source <= target)")
    if export_to:
        _export_corpus_classifier(result, family, own, out, export_to, lofo, check_table)


def _export_corpus_classifier(result, family: str, own: Path | None, out: Path, export_to: Path,
                              lofo: Path | None, check_table: Path | None) -> None:
    from provenance.corpus_card import SPECTRAL_CARD, cnn_card, export
    from provenance.datasets.corpus import read_index

    own_option = " --own OWN" if own else ""
    if family == "cnn":
        text = cnn_card((out / "inference.md").read_text().rstrip("\n").splitlines())
        commands = ["provenance dataset corpus rebuild --mirror-dir MIRRORS --out CORPUS",
                    "python -m benchmarks corpus_cnn --corpus CORPUS --cache CACHE --noise-sigma 40 --folds 3 "
                    "--steps 2000   # writes CACHE/corpus-cnn-3folds-2000-noise40.json",
                    f"provenance train detector corpus --family cnn --corpus CORPUS{own_option} --out RUN",
                    "python -m benchmarks corpus_check --corpus CORPUS --own OWN --cnn-weights RUN --out STORED.json",
                    "python -m benchmarks corpus_check --corpus CORPUS --own OWN --cnn-weights RUN --jpeg 85 "
                    "--out JPEG.json",
                    "python -m benchmarks corpus_check --compact STORED.json STORED.json JPEG.json > CHECK.md",
                    f"provenance train detector corpus --family cnn --corpus CORPUS{own_option} --out RUN "
                    f"--export {export_to} --lofo CACHE/corpus-cnn-3folds-2000-noise40.json --check-table CHECK.md"]
    else:
        text = SPECTRAL_CARD
        commands = ["provenance dataset corpus rebuild --mirror-dir MIRRORS --out CORPUS",
                    "python -m benchmarks.corpus_lofo --corpus CORPUS --resampled-crops 2   # writes CACHE/lofo-224.json",
                    f"provenance train detector corpus --corpus CORPUS{' --own OWN' if own else ''} --out RUN",
                    "provenance train detector tighten cnn spectral --corpus CORPUS   # the toy-trained thresholds",
                    "# end to end: the weights shipped before (OLD.json), then the retrained RUN:",
                    "python -m benchmarks.corpus_check --corpus CORPUS --own OWN --label 'weights shipped before' "
                    "--out OLD.json",
                    "python -m benchmarks.corpus_check --corpus CORPUS --own OWN --weights RUN --label retrained "
                    "--out STORED.json",
                    "python -m benchmarks.corpus_check --corpus CORPUS --own OWN --weights RUN --jpeg 85 --label retrained "
                    "--out JPEG.json",
                    "python -m benchmarks.corpus_check --compact OLD.json OLD.json STORED.json JPEG.json > CHECK.md",
                    f"provenance train detector corpus --corpus CORPUS{' --own OWN' if own else ''} --out RUN "
                    f"--export {export_to} --lofo CACHE/lofo-224.json --check-table CHECK.md"]
    folder = export(result, export_to, read_index(), commands, json.loads(lofo.read_text()) if lofo else None,
                    check_table.read_text().strip() if check_table else None, text)
    click.echo(f"{folder}: classifier, MODEL_CARD.md, eval/, failures/, splits.json")


@detector_group.command("tighten")
@click.argument("names", nargs=-1, required=True)
@click.option("--corpus", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The public corpus, as `provenance dataset corpus rebuild --out` wrote it.")
@click.option("--target-fpr", default=0.01, show_default=True, help="Per real source, on validation photos.")
@click.option("--crops", default="", metavar="SIDES", callback=crop_sides,
              help="Also a random crop of each validation photo per side, px, comma-separated (e.g. 384,256), "
                   "re-saved as JPEG as a posted crop is.")
@json_option
def tighten_command(names, corpus: Path, target_fpr: float, crops: list[int], as_json: bool) -> None:
    """Raise shipped classifiers' thresholds (NAMES: shipped names or folders) so that every real source of
    the corpus's validation split stays at or under TARGET_FPR false positives. Never lowers one."""
    from provenance.corpus_detector import tighten_threshold
    from provenance.shipped import classifier_dir

    records = {}
    for name in names:
        try:
            records[name] = tighten_threshold(classifier_dir(name), corpus, target_fpr, crops)
        except (FileNotFoundError, ValueError, KeyError) as exc:
            fail(name, first_line(exc), EXIT_FAILED)
        if not as_json:
            r = records[name]
            click.echo(f"{name}: threshold {r['threshold_before']:.4f} -> {r['threshold']:.4f} "
                       f"({r['validation_reals']} validation reals)")
    if as_json:
        emit_json(records)


@detector_group.command("early-stop")
@click.argument("names", nargs=-1, required=True)
@click.option("--corpus", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The public corpus, as `provenance dataset corpus rebuild --out` wrote it.")
@click.option("--own", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Our generators' output: OWN/<generator>/*.png (measured too).")
@json_option
def early_stop_command(names, corpus: Path, own: Path | None, as_json: bool) -> None:
    """Let `check` stop a tile classifier (NAMES: shipped names or folders) after half its tiles when that
    half is further below the uncertain band than the other half has ever lifted a training or validation
    image of the corpus; the test split shows what it changes."""
    from dataclasses import asdict

    from provenance.corpus_detector import corpus_samples, own_samples
    from provenance.early_stop import measure_early_stop
    from provenance.shipped import classifier_dir

    samples = corpus_samples(corpus) + (own_samples(own) if own else [])
    records = {}
    for name in names:
        try:
            record = measure_early_stop(classifier_dir(name), samples,
                                        lambda line, name=name: click.echo(f"{name}: {line}", err=True))
        except (FileNotFoundError, ValueError, KeyError) as exc:
            fail(name, first_line(exc), EXIT_FAILED)
        records[name] = asdict(record)
        if not as_json:
            click.echo(f"{name}: margin {record.margin:.3f} over {record.measured_images} images; test: "
                       f"{record.test_stopped}/{record.test_images} stop early, {record.test_changed} would have "
                       f"reached the uncertain band; {record.share_stopped:.0%} of all stop early")
    if as_json:
        emit_json(records)


@detector_group.command("rendered-gate")
@click.option("--corpus", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="The public corpus, as `provenance dataset corpus rebuild --out` wrote it.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for gate.json and MODEL_CARD.md; detectors/weights/rendered-graphic ships it.")
@click.option("--graphics", default=1200, show_default=True, type=click.IntRange(25),
              help="Graphics to draw (and as many captioned pictures).")
@click.option("--seed", default=17, show_default=True)
@click.option("--target-share", default=0.002, show_default=True, type=click.FloatRange(0, 0.5),
              help="Most validation pictures (photos, generated, captioned) the gate may call rendered.")
@json_option
def rendered_gate_command(corpus: Path, out: Path, graphics: int, seed: int, target_share: float, as_json: bool) -> None:
    """Train the gate that makes the classifiers abstain on computer-rendered images (charts, text,
    screenshots, diagrams): graphics drawn here against the corpus's photos, generated images and
    captioned copies of them. About 15 minutes on 2 cores."""
    from provenance.rendered_gate import train_gate

    from .progress import progress_bar

    try:
        with progress_bar("rendered-gate") as bar:
            record = train_gate(corpus, out, graphics, seed, target_share,
                                lambda done, total: bar.update(completed=done, total=total))
    except (FileNotFoundError, ValueError) as exc:
        fail(str(corpus), first_line(exc), EXIT_FAILED)
    if as_json:
        emit_json(record)
        return
    test = {kind: cells["test"] for kind, cells in record["gated"].items()}
    click.echo(f"{out}: threshold rule: {record['threshold_rule']}; test split gated: "
               + ", ".join(f"{kind} {c['gated']}/{c['images']}" for kind, c in test.items() if c["images"]))


@detector_group.command("export")
@click.argument("run", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--name", required=True, help="Shipped detector name: cnn or spectral.")
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Folder of classifiers (default: the package's detectors/weights).")
@click.option("--dataset", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Dataset to evaluate on (default: the one it was trained on; its test split).")
@click.option("--inference-only", is_flag=True,
              help="Only copy the weights and (re)write the run-time format (the CNN's cnn.onnx) and its "
                   "model-card section; no evaluation. Needs the `export` extra (onnx, onnxscript).")
def export_detector_command(run: Path, name: str, dest: Path | None, dataset: Path | None, inference_only: bool) -> None:
    """Ship a trained classifier with a model card holding its test-split evaluation, and the CNN
    as ONNX (cnn.onnx) for onnxruntime, checked to give the torch model's scores."""
    from provenance.classifier_card import copy_classifier, export_classifier, export_inference
    from provenance.shipped import CLASSIFIERS_DIR

    try:
        if inference_only:
            folder = copy_classifier(run, name, dest or CLASSIFIERS_DIR)
            export_inference(folder)
        else:
            folder = export_classifier(run, name, dest or CLASSIFIERS_DIR, dataset)
    except ImportError as exc:
        fail(run, f"{first_line(exc)}; install the export extra: pip install -e '.[export]'", EXIT_FAILED)
    except (FileNotFoundError, ValueError, KeyError) as exc:
        fail(run, first_line(exc), EXIT_FAILED)
    click.echo(f"{folder}: classifier, {'inference format' if inference_only else 'MODEL_CARD.md, eval/, splits.json'}")


from .train_watermark_cmd import watermark_command, watermark_int8_command, watermark_scorer_command  # noqa: E402

train_group.add_command(watermark_command)
train_group.add_command(watermark_scorer_command)
train_group.add_command(watermark_int8_command)
