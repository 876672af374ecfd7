"""``provenance eval``: measure trained classifiers on a dataset split."""
from __future__ import annotations

from pathlib import Path

import click

from provenance.threads import set_torch_threads

from .common import EXIT_FAILED, emit_json, fail, json_option


@click.command("eval", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--dataset", required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--detector", "detectors", multiple=True,
              help="Trained classifier folder or shipped name (cnn, spectral); repeatable. Default: all shipped.")
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "validation", "test"]),
              help="Split of a `dataset build` set; a public 0_real/1_fake tree is read whole.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Where eval.json, eval.md, roc.png, robustness.png go (default: DATASET/eval).")
@click.option("--threads", type=int, default=None)
@json_option
def eval_command(dataset: Path, detectors, split: str, out: Path | None, threads, as_json: bool) -> None:
    """AUC, AP, balanced accuracy, TPR at 1% / 0.1% FPR and ECE, overall and per generator x perturbation.

    DATASET is a set made by `provenance dataset build` or a public benchmark tree with 0_real/1_fake
    folders per generator (generator = first folder under DATASET)."""
    from detectors.learned import load_classifier
    from provenance.datasets.public_layouts import load_any
    from provenance.evaluation import evaluate, markdown, write_reports
    from provenance.shipped import classifier_dir, shipped_classifiers

    set_torch_threads(threads)
    names = list(detectors) or shipped_classifiers()
    if not names:
        fail(dataset, "no --detector given and no trained classifier is shipped", EXIT_FAILED)
    try:
        images, labels, rows = load_any(dataset, split,
                                        on_skip=lambda path, problem: click.echo(f"provenance: {path}: {problem}", err=True))
    except FileNotFoundError as exc:
        fail(dataset, str(exc), EXIT_FAILED)
    reports, scores = [], {}
    for name in names:
        folder = classifier_dir(name)
        try:
            model = load_classifier(folder)
        except (FileNotFoundError, KeyError) as exc:
            fail(name, str(exc), EXIT_FAILED)
        label = Path(name).name
        report, scores[label] = evaluate(model, images, labels, rows, label)
        reports.append(report)
    written = write_reports(reports, scores, labels, out or dataset / "eval")
    if as_json:
        emit_json([r.to_dict() for r in reports])
    else:
        click.echo(markdown(reports))
        click.echo(f"\n{split} split: {len(labels)} images ({int(labels.sum())} synthetic); wrote "
                   + ", ".join(str(p) for p in written))
