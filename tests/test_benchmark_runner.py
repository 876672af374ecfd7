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
