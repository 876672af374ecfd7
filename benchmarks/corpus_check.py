"""What `check` labels, end to end, on the corpus's held-out test split: per generator family and per
real source, for each arrangement of the trained classifiers, in one run.

    python -m benchmarks.corpus_check --corpus /root/provenance-corpus \
        --own /root/provenance-runs/corpus-detector/own [--weights detectors/weights/spectral-corpus] \
        [--cnn-weights detectors/weights/cnn-corpus] \
        [--fakes-per-family 80] [--jpeg 85] [--json]

Every image is checked once by the full default pipeline (C2PA, watermarks, metadata) plus all the
classifiers (``cnn``, ``spectral``: trained on our own generators only; ``spectral-corpus`` and
``cnn-corpus``: the public corpus and our generators); each arrangement's verdict is then the fusion rule
(detectors/fusion.py) over that arrangement's evidence, so arrangements are compared on the same
evidence. ``scoped`` fusion is the shipped rule (a classifier's confident "not synthetic" vetoes
only classifiers trained on nothing it was not); ``unscoped`` is the rule before scopes (any
confident classifier vetoes). Files are checked as stored (PNG/WebP fakes, mostly JPEG reals), or
re-encoded as JPEG at ``--jpeg`` quality like an upload. Baseline: the arrangement shipped before
``cnn-corpus`` (``cnn+spectral+spectral-corpus``), in the same run.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

CLASSIFIER_SETS = {
    "cnn+spectral (before)": ("cnn", "spectral"),
    "cnn+spectral+spectral-corpus": ("cnn", "spectral", "spectral-corpus"),
    "cnn+spectral+spectral-corpus+cnn-corpus": ("cnn", "spectral", "spectral-corpus", "cnn-corpus"),
    "spectral-corpus alone": ("spectral-corpus",),
    "cnn-corpus alone": ("cnn-corpus",),
}
CLASSIFIERS = ("cnn", "spectral", "spectral-corpus", "cnn-corpus")
FLAGGED = ("synthetic", "likely_synthetic")


def test_samples(corpus: Path, own: Path | None, fakes_per_family: int, seed: int = 0) -> list:
    from provenance.corpus_detector import corpus_samples, own_samples

    samples = [s for s in corpus_samples(corpus) + (own_samples(own) if own else []) if s.split == "test"]
    rng = np.random.default_rng(seed)
    chosen = [s for s in samples if not s.label]
    for family in sorted({s.family for s in samples if s.label}):
        members = [s for s in samples if s.label and s.family == family]
        keep = rng.permutation(len(members))[:fakes_per_family]
        chosen += [members[i] for i in sorted(keep)]
    return chosen


def as_source(sample, jpeg: int | None):
    from PIL import Image

    from provenance.check import NamedBytes

    if not jpeg:
        return sample.image.path
    with Image.open(sample.image.path) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=jpeg)
    return NamedBytes(Path(sample.image.path).with_suffix(".jpg").name, buffer.getvalue())


def unscoped(evidence):
    return [replace(e, details={k: v for k, v in e.details.items() if k != "scope"}) for e in evidence]


def run(samples: list, weights: Path | None, jpeg: int | None, batch: int = 8, cnn_weights: Path | None = None) -> dict:
    from detectors.fusion import fuse
    from provenance.check import DECLARED_SIGNAL_DETECTORS, CheckConfig, Checker

    names = DECLARED_SIGNAL_DETECTORS + CLASSIFIERS
    options = {name: {"weights": str(folder)} for name, folder in (("spectral-corpus", weights),
                                                                   ("cnn-corpus", cnn_weights)) if folder}
    checker = Checker(CheckConfig(detectors=names, detector_options=options))
    labels: dict[str, dict[str, list[str]]] = {}
    probabilities: dict[str, list[float]] = {n: [] for n in CLASSIFIERS}
    started = time.time()
    for start in range(0, len(samples), batch):
        chunk = samples[start:start + batch]
        for sample, verdict in zip(chunk, checker.check([as_source(s, jpeg) for s in chunk])):
            by_name = {e.detector: e for e in verdict.evidence}
            for n in probabilities:
                probabilities[n].append(by_name[n].probability if n in by_name and by_name[n].probability is not None
                                        else float("nan"))
            declared = [by_name[n] for n in DECLARED_SIGNAL_DETECTORS if n in by_name]
            for arrangement, classifiers in CLASSIFIER_SETS.items():
                evidence = declared + [by_name[n] for n in classifiers if n in by_name]
                for rule, ev in (("scoped", evidence), ("unscoped", unscoped(evidence))):
                    labels.setdefault(f"{arrangement} / {rule}", {}).setdefault(sample.key, []).append(
                        fuse(ev)[0].value)
        if (start // batch) % 10 == 0:
            print(f"checked {start + len(chunk)}/{len(samples)} ({time.time() - started:.0f}s)", file=sys.stderr,
                  flush=True)
    return {"labels": {a: {k: v[0] for k, v in per.items()} for a, per in labels.items()},
            "probabilities": probabilities, "seconds": time.time() - started}


def strata(samples: list) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for s in samples:
        out.setdefault(f"fake: {s.family}" if s.label else f"real: {s.source}", []).append(s.key)
    return dict(sorted(out.items()))


def table(samples: list, result: dict) -> str:
    from provenance.markdown import markdown_table

    arrangements = list(result["labels"])
    rows = []
    for stratum, keys in strata(samples).items():
        cells = []
        for a in arrangements:
            got = [result["labels"][a][k] for k in keys]
            flagged = np.mean([g in FLAGGED for g in got])
            inconclusive = np.mean([g == "inconclusive" for g in got])
            cells.append(f"{flagged:.3f} / {inconclusive:.2f}")
        rows.append([stratum, len(keys), *cells])
    reals = [s.key for s in samples if not s.label]
    rows.append(["real: all", len(reals), *[f"{np.mean([result['labels'][a][k] in FLAGGED for k in reals]):.3f} / "
                                            f"{np.mean([result['labels'][a][k] == 'inconclusive' for k in reals]):.2f}"
                                            for a in arrangements]])
    return markdown_table(["test stratum", "n", *[f"{a}: flagged / inconclusive" for a in arrangements]], rows)


SHIPPED = "cnn+spectral+spectral-corpus+cnn-corpus / scoped"
BEFORE = "cnn+spectral+spectral-corpus / scoped"  # shipped before cnn-corpus


def compact_table(before: dict, shipped: list[dict]) -> str:
    """``before``'s cnn+spectral arrangement (a run made with the classifiers as shipped before), next
    to the shipped arrangement of each run in ``shipped`` (files as stored, re-encoded, ...)."""
    from provenance.markdown import markdown_table

    def cell(run, arrangement, keys):
        got = [run["labels"][arrangement][k] for k in keys]
        flagged, inconclusive = sum(g in FLAGGED for g in got), sum(g == "inconclusive" for g in got)
        return f"{flagged}/{len(got)} ({flagged / len(got):.1%}) / {inconclusive}"

    columns = [(f"before, {before['inputs']}", before, BEFORE)] + [(f"shipped, {r['inputs']}", r, SHIPPED) for r in shipped]
    strata_of = before["strata"]
    reals = [k for name, keys in strata_of.items() if name.startswith("real") for k in keys]
    rows = [[name, len(keys), *[cell(run, arrangement, keys) for _, run, arrangement in columns]]
            for name, keys in [*strata_of.items(), ("real: all", reals)]]
    return markdown_table(["test stratum", "n", *[title for title, _, _ in columns]], rows)


def main(argv: list[str] | None = None) -> None:
    from .timing import capability_line

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("/root/provenance-corpus"))
    parser.add_argument("--own", type=Path, default=None, help="Our generators' output: OWN/<generator>/*.png")
    parser.add_argument("--weights", type=Path, default=None, help="spectral-corpus folder (default: the shipped one)")
    parser.add_argument("--cnn-weights", type=Path, default=None, help="cnn-corpus folder (default: the shipped one)")
    parser.add_argument("--fakes-per-family", type=int, default=80)
    parser.add_argument("--jpeg", type=int, default=None, help="Re-encode every input as JPEG at this quality.")
    parser.add_argument("--out", type=Path, default=None, help="Write the full results (labels per image) here.")
    parser.add_argument("--label", default="", help="Words added to this run's column name, e.g. 'weights shipped before'.")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--compact", type=Path, nargs="+", metavar="RESULTS",
                        help="Only print a table from runs saved with --out (no checking): the first run's "
                             "arrangement shipped before cnn-corpus, then each run's shipped arrangement.")
    args = parser.parse_args(argv if argv is not None else [])
    if args.compact:
        runs = [json.loads(path.read_text()) for path in args.compact]
        print(compact_table(runs[0], runs[1:]))
        print("\ncells: flagged synthetic or likely_synthetic / inconclusive; before = cnn + spectral + "
              "spectral-corpus; shipped = the same + cnn-corpus; both with scoped vetoes")
        return
    if not args.corpus.is_dir():
        print(f"corpus_check: {args.corpus}: no corpus; run `provenance dataset corpus rebuild` first (skipped)")
        return
    print(capability_line())
    print("baseline: cnn+spectral+spectral-corpus (the classifiers shipped before cnn-corpus), same evidence, same run")
    samples = test_samples(args.corpus, args.own, args.fakes_per_family)
    result = run(samples, args.weights, args.jpeg, cnn_weights=args.cnn_weights)
    result["inputs"] = (f"JPEG q{args.jpeg} re-encode" if args.jpeg else "files as stored") + (
        f", {args.label}" if args.label else "")
    result["strata"] = strata(samples)
    if args.out:
        args.out.write_text(json.dumps(result) + "\n")
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(samples)} test-split images ({result['inputs']}), checked in {result['seconds']:.0f}s; "
          "share labelled synthetic or likely_synthetic / inconclusive:\n")
    print(table(samples, result))


if __name__ == "__main__":
    main(sys.argv[1:])
