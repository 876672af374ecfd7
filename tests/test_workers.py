"""The worker pool: a file that stalls, kills its worker, eats memory or trips a bug gets an error record,
its worker is replaced, and every other file still gets its verdict, in input order."""
from __future__ import annotations

import io
import json
import os
import time

import pytest
from click.testing import CliRunner
from PIL import Image

from detectors.results import Label
from provenance.check import CheckConfig, NamedBytes
from provenance.workers import Budget, CheckPool, CheckPoolError, check_in_workers, fork_available

pytestmark = pytest.mark.skipif(not fork_available(), reason="worker processes need fork")


@pytest.fixture
def hostile():
    # a plugin module, so that worker processes (fresh, not forks of this one) register it too
    return CheckConfig(detectors=("metadata", "test-hostile"), plugins=("tests.hostile_detector",))


@pytest.fixture(scope="module")
def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), (10, 20, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("batch_size", [1, 3])
def test_a_stalling_dying_or_hogging_file_costs_only_itself(hostile, png, batch_size):
    names = ["a", "stall", "b", "die", "c", "hog", "d"]
    budget = Budget(seconds=3, memory_bytes=300 * 2**20 + _baseline_rss(hostile, png))
    started = time.monotonic()
    with CheckPool(hostile, workers=2, budget=budget, batch_size=batch_size) as pool:
        verdicts = list(pool.imap([NamedBytes(name, png) for name in names]))
        stats = pool.stats
    assert [v.source for v in verdicts] == names
    by_name = {v.source: v for v in verdicts}
    for name in "abcd":
        assert by_name[name].label == Label.NO_EVIDENCE
    assert by_name["stall"].label == Label.ERROR and "time budget (3 s per file)" in by_name["stall"].error
    assert by_name["die"].label == Label.ERROR and "died (SIGKILL)" in by_name["die"].error
    assert by_name["hog"].label == Label.ERROR and "memory budget" in by_name["hog"].error
    assert (stats.timed_out, stats.worker_deaths, stats.over_memory) == (1, 1, 1)
    assert stats.files == len(names) and not stats.exceptions
    assert time.monotonic() - started < 60  # the stall is cut at its budget, not waited out


def test_forked_workers_without_warm_up_still_keep_the_budget(hostile, png):
    # how the CLI checks: workers forked from a process that has read no file, models loaded on the first file
    budget = Budget(seconds=3, memory_bytes=300 * 2**20 + _baseline_rss(hostile, png, start_method="fork"))
    names = ["a", "stall", "die", "hog", "b"]
    with CheckPool(hostile, workers=1, budget=budget, start_method="fork", warm_up=False) as pool:
        verdicts = {v.source: v for v in pool.imap([NamedBytes(name, png) for name in names])}
    assert verdicts["a"].label == verdicts["b"].label == Label.NO_EVIDENCE
    assert "time budget" in verdicts["stall"].error and "died (SIGKILL)" in verdicts["die"].error
    assert "memory budget" in verdicts["hog"].error


def test_a_bad_configuration_without_warm_up_still_fails_up_front(tmp_path):
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("nope")
    config = CheckConfig(detectors=("c2pa",), detector_options={"c2pa": {"trust_anchors": [bad]}})
    with pytest.raises(CheckPoolError, match="not-a-cert.pem"):
        list(check_in_workers([str(bad)], config, start_method="fork", warm_up=False))


def test_a_large_image_earns_time_by_its_megapixels(hostile):
    buffer = io.BytesIO()
    Image.new("RGB", (1000, 1000)).save(buffer, format="PNG")
    budget = Budget(seconds=3, seconds_per_megapixel=5)
    with CheckPool(hostile, workers=1, budget=budget) as pool:
        (large,) = pool.imap([NamedBytes("large", buffer.getvalue())])
    assert large.label == Label.NO_EVIDENCE
    with CheckPool(hostile, workers=1, budget=Budget(seconds=3, seconds_per_megapixel=0)) as pool:
        (large,) = pool.imap([NamedBytes("large", buffer.getvalue())])
    assert large.label == Label.ERROR and "time budget (3 s per file)" in large.error


def _baseline_rss(config, png, start_method: str = "forkserver") -> int:
    """A worker's resident memory after checking a harmless file: the budget is set above it.
    A forked worker starts with this (test) process's pages, so it is measured the same way."""
    with CheckPool(config, workers=1, start_method=start_method) as pool:
        list(pool.imap([NamedBytes("harmless", png)]))
        return pool.stats.peak_worker_rss


def test_a_bad_configuration_fails_once_up_front(tmp_path):
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("nope")
    config = CheckConfig(detectors=("c2pa",), detector_options={"c2pa": {"trust_anchors": [bad]}})
    with pytest.raises(CheckPoolError, match="not-a-cert.pem"):
        list(check_in_workers([str(bad)], config))


def test_unbounded_single_worker_checks_in_process(png):
    verdicts = list(check_in_workers([NamedBytes("x", png)], CheckConfig(detectors=("metadata",)),
                                     budget=Budget(seconds=None)))
    assert [v.label for v in verdicts] == [Label.NO_EVIDENCE]


def test_cli_jobs_keep_order_and_a_fifo_is_an_error_record(tmp_path, png):
    from provenance.cli import main

    paths = []
    for i in range(5):
        path = tmp_path / f"{i}.png"
        path.write_bytes(png)
        paths.append(str(path))
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    paths.insert(2, str(fifo))
    result = CliRunner().invoke(main, ["check", "--json", "-j", "2", "--timeout", "20", "--detector", "metadata",
                                       *paths])
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["source"] for r in records] == paths
    assert records[2]["label"] == "error" and "not a regular file" in records[2]["error"]
    assert result.exit_code == 4
    assert "Traceback" not in result.output


def test_a_process_that_used_the_c2pa_reader_is_not_forked(tmp_path, png):
    # c2pa's reader deadlocks in a fork of a process that read a PDF manifest: the pool then
    # starts its workers from the fork server instead (checked in a fresh interpreter)
    import subprocess
    import sys

    import io

    from PIL import Image, PngImagePlugin

    plain, labelled = tmp_path / "x.png", tmp_path / "labelled.png"
    plain.write_bytes(png)
    text = PngImagePlugin.PngInfo()
    text.add_text("Comment", "mentions c2pa")  # the manifest store's label: the native reader must look
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).save(buffer, "PNG", pnginfo=text)
    labelled.write_bytes(buffer.getvalue())
    script = (
        "from provenance.workers import fork_is_safe\n"
        "from provenance.c2pa.reading import ManifestReader\n"
        "reader = ManifestReader(use_trust_store=False)\n"
        "before = fork_is_safe()\n"
        f"reader.read(open({str(plain)!r}, 'rb').read(), 'image/png')\n"
        "after_plain = fork_is_safe()  # no C2PA bytes: the native reader was not needed\n"
        f"reader.read(open({str(labelled)!r}, 'rb').read(), 'image/png')\n"
        "print(before, after_plain, fork_is_safe())\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["True", "True", "False"]
