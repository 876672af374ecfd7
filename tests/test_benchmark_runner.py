"""``python -m benchmarks NAME --options``: the commands the README and model cards print must run."""
from __future__ import annotations

import pytest

from benchmarks import __main__ as runner


def test_a_named_benchmark_gets_its_options(monkeypatch, tmp_path, capsys):
    missing = tmp_path / "no-corpus"
    with pytest.raises(SystemExit) as exit:
        runner.main(["corpus_check", "--corpus", str(missing)])
    assert exit.value.code is None  # ran, and said why it skipped
    assert f"{missing}: no corpus" in capsys.readouterr().out


def test_options_for_a_benchmark_without_any_are_refused():
    with pytest.raises(SystemExit, match="takes no options"):
        runner.main(["generation", "--fast"])


def test_an_unknown_name_is_refused():
    with pytest.raises(SystemExit, match="unknown benchmark 'nope'"):
        runner.main(["nope"])


def test_real_crops_baseline_rejudges_the_toy_classifiers_at_the_thresholds_they_replaced():
    from benchmarks.real_crops import relabelled, replaced_thresholds
    from detectors.learned import load_classifier
    from detectors.results import Evidence, Signal, Strength
    from provenance.shipped import CLASSIFIERS_DIR

    before = replaced_thresholds()
    assert set(before) == {"cnn", "spectral"}
    for name, threshold in before.items():  # tightening only ever raised them
        assert threshold < load_classifier(CLASSIFIERS_DIR / name).operating_point.threshold

    def cnn(probability, signal):
        return Evidence("cnn", "classifier", signal, Strength.NONE, "cnn", probability=probability,
                        details={"band_low": 0.05, "scope": "our-generators"})

    uncertain_now = [cnn(0.40, Signal.UNCERTAIN)]
    assert relabelled(uncertain_now, {"cnn": 0.33}) == "likely_synthetic"
    assert relabelled(uncertain_now, {"cnn": 0.54}) == "inconclusive"
    assert relabelled([cnn(0.01, Signal.NONE)], {"cnn": 0.33}) == "no_evidence_of_synthesis"


def test_rendered_graphics_index_pins_each_public_graphic_with_its_licence(tmp_path):
    import csv
    import re

    from benchmarks.rendered_graphics import INDEX, IndexedGraphic

    with INDEX.open(newline="") as handle:
        rows = [IndexedGraphic(**row) for row in csv.DictReader(handle)]
    assert len(rows) > 500 and {r.kind for r in rows} == {"charts", "screenshots", "diagrams", "text"}
    assert len({r.repo for r in rows}) >= 10 and len({r.file for r in rows}) == len(rows)
    for row in rows:
        assert re.fullmatch(r"[0-9a-f]{40}", row.commit) and re.fullmatch(r"[0-9a-f]{64}", row.sha256), row
        assert row.licence and row.out_path(tmp_path) == tmp_path / row.file
