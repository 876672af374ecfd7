"""``provenance check``: a thin shell over :class:`provenance.check.Checker`."""
from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import NoReturn

import click

from detectors.results import Label, Verdict
from provenance.imageio import DEFAULT_MAX_WORKING_SET, LoadLimits
from provenance.shipped import CLASSIFIER_META_FILE
from provenance.threads import detector_threads
from provenance.workers import DEFAULT_SECONDS_PER_FILE, WORKER_FOOTPRINT_BYTES, Budget, CheckPoolError, check_in_workers

from .common import EXIT_FAILED, EXIT_FOUND_SYNTHETIC, EXIT_OK, EXIT_SOME_FILES_FAILED, emit_json, error_line, json_option
from .engine_options import engine_options, ray_options, refuse_ray_only_options
from .progress import progress_bar

LABEL_COLOUR = {
    Label.SYNTHETIC: "red",
    Label.LIKELY_SYNTHETIC: "red",
    Label.INCONCLUSIVE: "yellow",
    Label.NO_EVIDENCE: "cyan",
    Label.CAPTURE_DECLARED: "green",
    Label.ERROR: "magenta",
}


@click.command("check")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@json_option
@click.option("--trust", "trust_anchors", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="PEM file (or folder of PEMs) of C2PA trust anchors; repeatable. Added to the trust store.")
@click.option("--no-trust-store", is_flag=True, help="Use only --trust anchors, not the user's trust store.")
@click.option("--detector", "detector_names", multiple=True,
              help="Run only these detectors (repeatable): c2pa, watermark, sd-watermark, metadata, cnn, spectral, "
                   "spectral-corpus, cnn-corpus. "
                   "Default: all (the classifiers when their weights are shipped).")
@click.option("--fast", "fast_profile", is_flag=True,
              help="Run only the declared signals (c2pa, watermark, sd-watermark, metadata): no trained "
                   "classifiers. For pipelines that want those alone; a missing signal says little.")
@click.option("--watermark-key", "watermark_keys", multiple=True,
              help="Watermark key to test (repeatable; default: the project's public key). "
                   "Each key tried widens the multiple-testing correction.")
@click.option("--scheme", "schemes", multiple=True,
              help="Watermark schemes to decode (default dwtDct, dwtDctSvd and learned; rivaGan is slow).")
@click.option("--max-mb", default=200, show_default=True, help="Refuse files larger than this.")
@click.option("--max-megapixels", default=120, show_default=True,
              help="Refuse images with more pixels (bombs); also Pillow's decompression-bomb limit.")
@click.option("-j", "--jobs", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes checking files in parallel (models load once per worker).")
@click.option("--timeout", default=DEFAULT_SECONDS_PER_FILE, show_default=True, type=click.FloatRange(min=0),
              help="Seconds one file may take, plus 2 s per megapixel once decoded; past it the file gets an error "
                   "record and the batch goes on (0: no limit).")
@click.option("--max-memory-gb", default=DEFAULT_MAX_WORKING_SET / 2**30, show_default=True, type=click.FloatRange(min=0.5),
              help="Memory one file's check may use: larger images are refused before decoding, and a worker "
                   "that grows past it is stopped.")
@click.option("-v", "--verbose", is_flag=True, help="Show every detector's evidence, not only the reasons.")
@click.option("--classifier", "classifier_dirs", multiple=True, type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Use this trained classifier folder (from `provenance train detector`) instead of the shipped one.")
@click.option("--no-rendered-gate", is_flag=True,
              help="Let the trained classifiers score images that look computer-rendered (charts, text, "
                   "screenshots, diagrams); by default they abstain on those.")
@click.option("--heatmap", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a PNG of a classifier's per-tile scores (one input image; the --classifier one, "
                   "else cnn, else spectral).")
@engine_options
@click.option("--out", default=None, metavar="OUT",
              help="--engine ray: the dataset folder (or URI) of verdict records to write; a re-run skips "
                   "the inputs already in it.")
@click.option("--out-format", type=click.Choice(["parquet", "jsonl"]), default="parquet", show_default=True,
              help="--engine ray: format of the OUT files.")
def check_command(paths, as_json, trust_anchors, no_trust_store, detector_names, fast_profile, watermark_keys,
                  schemes, max_mb, max_megapixels, jobs, timeout, max_memory_gb, verbose, classifier_dirs, no_rendered_gate, heatmap, engine, address, num_workers, out,
                  out_format):
    """Check images, video, audio and PDFs (files or folders, recursively) for evidence of AI generation.

    \b
    Labels: synthetic | likely_synthetic | inconclusive | no_evidence_of_synthesis |
            capture_declared | error
    Exit status: 0 none synthetic, 1 some synthetic or likely synthetic, 4 some files could not be
    checked (1+4=5 when both), 2 usage error.

    \b
    With --engine ray: one INPUT (a folder, a file of paths/URIs, or a Parquet/JSONL table with a
    path or bytes column) and --out OUT, a dataset with one verdict record per image; the exit
    status then counts every record in OUT (1 on a failed Ray job).
    """
    from provenance.allocator import apply_allocator_policy
    from provenance.check import DECLARED_SIGNAL_DETECTORS, CheckConfig, Checker, default_detectors, expand_paths

    apply_allocator_policy()  # before any image is read; forked workers inherit it
    if fast_profile and (detector_names or classifier_dirs or heatmap):
        raise click.UsageError("--fast runs the declared-signal detectors only; it cannot be combined with "
                               "--detector, --classifier or --heatmap")

    options: dict[str, dict] = {"c2pa": {"trust_anchors": list(trust_anchors), "use_trust_store": not no_trust_store}}
    watermark_options: dict = {}
    if watermark_keys:
        watermark_options["keys"] = list(watermark_keys)
    if schemes:
        watermark_options["schemes"] = list(schemes)
    options["watermark"] = watermark_options
    names = tuple(detector_names) or (DECLARED_SIGNAL_DETECTORS if fast_profile else default_detectors())
    for folder in classifier_dirs:
        family = _classifier_family(folder)
        options[family] = {"weights": folder}
        names = names if family in names else names + (family,)
    if no_rendered_gate:
        from detectors import REGISTRY as DETECTORS
        from detectors.classifiers import ClassifierDetector

        for name in names:
            factory = DETECTORS.factory(name) if name in DETECTORS else None
            if isinstance(factory, type) and issubclass(factory, ClassifierDetector):
                options.setdefault(name, {})["rendered_gate"] = False
    config = CheckConfig(
        detectors=names,
        detector_options=options,
        limits=LoadLimits(max_bytes=max_mb * 2**20, max_pixels=max_megapixels * 1_000_000,
                          max_working_set=int(max_memory_gb * 2**30)),
        threads=detector_threads(jobs),
    )
    try:
        checker = Checker(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if engine == "ray":
        _check_on_ray(paths, out, out_format, config, ray_options(address, num_workers), as_json, heatmap)
    refuse_ray_only_options(engine, address=address, num_workers=num_workers, out=out)

    files = list(expand_paths(paths))
    if not files:
        raise click.UsageError("no image, video, audio or PDF files found under the given paths")
    if heatmap is not None:
        _write_heatmap(checker, files, heatmap, given=[_classifier_family(f) for f in classifier_dirs])
    counts: Counter[Label] = Counter()
    budget = Budget(seconds=timeout or None, memory_bytes=int(max_memory_gb * 2**30) + WORKER_FOOTPRINT_BYTES)
    try:
        # This process has read no file (unless it drew a heatmap), so workers can be plain forks of it:
        # no second interpreter importing everything again. One file needs no warm-up before it.
        verdicts = check_in_workers(files, config, workers=jobs, budget=budget,
                                    start_method="forkserver" if heatmap is not None else "fork",
                                    warm_up=len(files) > jobs)
        for verdict in _with_progress(verdicts, len(files)):
            counts[verdict.label] += 1
            if as_json:
                emit_json(verdict.to_dict())
            else:
                print_verdict(verdict, verbose)
    except CheckPoolError as exc:
        raise click.UsageError(str(exc)) from None
    if not as_json and len(files) > 1:
        click.echo("summary: " + _summary(counts))
    sys.exit(_exit_code(counts))


def _summary(counts: Counter[Label]) -> str:
    return ", ".join(f"{counts[label]} {label.value}" for label in Label if counts[label])


def _exit_code(counts: Counter[Label]) -> int:
    code = EXIT_OK
    if counts[Label.SYNTHETIC] or counts[Label.LIKELY_SYNTHETIC]:
        code |= EXIT_FOUND_SYNTHETIC
    if counts[Label.ERROR]:
        code |= EXIT_SOME_FILES_FAILED
    return code


def _check_on_ray(paths, out, out_format, config, options, as_json, heatmap) -> NoReturn:
    from provenance.engines.ray_engine import RayEngineError, check_on_ray

    if len(paths) != 1:
        raise click.UsageError("--engine ray takes one INPUT: a folder, a file of paths/URIs, or a Parquet/JSONL table")
    if out is None:
        raise click.UsageError("--engine ray needs --out OUT, the dataset folder of verdict records to write")
    if heatmap is not None:
        raise click.UsageError("--heatmap takes one image; use it without --engine ray")
    try:
        result = check_on_ray(paths[0], out, config, options, out_format)
    except RayEngineError as exc:
        click.echo(f"provenance: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    for note in result.notes:
        click.echo(f"provenance: {note}", err=True)
    counts = Counter({Label(label): n for label, n in result.counts.items()})
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{out}: {sum(counts.values())} images ({result.checked_now} checked now, "
                   f"{result.already_done} already there): {_summary(counts) or 'none'}")
    sys.exit(_exit_code(counts))


def _classifier_family(folder: Path) -> str:
    import json

    try:
        return json.loads((folder / CLASSIFIER_META_FILE).read_text())["family"]
    except (OSError, ValueError, KeyError):
        raise click.BadParameter(f"{folder}: not a trained classifier folder (no classifier.json)") from None


def _write_heatmap(checker, files: list[Path], out: Path, given: list[str]) -> None:
    """The heatmap of a classifier given with --classifier, else of the cnn, else of the spectral one."""
    from detectors.classifiers import ClassifierDetector
    from provenance.heatmap import render_heatmap
    from provenance.imageio import ImageLoadError, load_image

    if len(files) != 1:
        raise click.UsageError("--heatmap takes exactly one image")
    classifiers = sorted((d for d in checker.detectors if isinstance(d, ClassifierDetector)),
                         key=lambda d: (d.name not in given, d.name != "cnn"))
    usable = [d for d in classifiers if (d.weights / CLASSIFIER_META_FILE).is_file()]
    if not usable:
        raise click.UsageError("--heatmap needs a trained classifier (cnn or spectral weights)")
    try:
        image = render_heatmap(load_image(files[0], checker.config.limits).rgb, usable[0].model)
        image.save(out)
    except (ImageLoadError, ValueError, OSError) as exc:
        click.echo(error_line(files[0], f"no heatmap: {exc}"), err=True)
        return
    click.echo(f"{out}: {usable[0].name} heatmap of {files[0]}", err=True)


def _with_progress(verdicts, total: int):
    with progress_bar("checking", total=total, enabled=total >= 2) as bar:
        for verdict in verdicts:
            yield verdict
            bar.advance()


def print_verdict(verdict: Verdict, verbose: bool) -> None:
    if verdict.label == Label.ERROR:
        click.echo(error_line(verdict.source, verdict.error or "could not be checked"), err=True)
        return
    click.secho(f"{verdict.label.value:<25}", fg=LABEL_COLOUR[verdict.label], bold=verdict.label == Label.SYNTHETIC,
                nl=False)
    click.echo(f" {verdict.source}")
    for reason in verdict.reasons:
        click.echo(f"    - {reason}")
    if verbose:
        for e in verdict.evidence:
            strength = []
            if e.state:
                strength.append(f"state={e.state}")
            if e.p_value is not None:
                strength.append(f"p={e.p_value:.2e}")
            if e.probability is not None:
                strength.append(f"prob={e.probability:.3f}")
            click.echo(f"      [{e.detector}] {e.signal.value}/{e.strength.value}"
                       f"{' ' + ' '.join(strength) if strength else ''}: {e.summary}")
