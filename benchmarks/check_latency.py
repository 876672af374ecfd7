"""``check`` speed against the floor, Pillow decoding the same file, measured side by side:

1. cold: the whole ``provenance check`` process on one 1080p JPEG (all detectors, and ``--fast``)
   vs a Python process that only decodes the file with Pillow; wall time, CPU time, peak RSS;
2. warm: per-image latency in a running process (models loaded), per detector, vs Pillow's decode;
   detectors one after another, and side by side on the machine's cores as a one-image ``check`` runs them;
3. throughput on 512x512 JPEGs: in one process, and as separate ``check`` processes each given a
   share of the files (what a 2-core machine gains from a second worker); ``check -j 2`` columns
   are added when the CLI has ``-j``: the scan rate is the median of repeated pairs of runs (3x the
   files against 1x: start-up cancels out), printed with its range.

Every figure is a median of repeats, taken in interleaved rounds (each contender once per round),
so that a burst of load on a shared machine falls on the baseline and the check alike (warm: each
checker in rounds of its own with the decode, as a process with one checker runs); the machine's load and the CPU capability (which precision
torch work would use, what runs the CNN and the learned mark) are printed with the tables, since other processes on
a shared machine move these numbers. ``PROVENANCE_BENCH_REPEATS`` and ``PROVENANCE_BENCH_FILES``
shrink the run.
"""
from __future__ import annotations

import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

from PIL import Image

from benchmarks.timing import machine_line, print_table
from provenance.threads import detector_threads

REPEATS = int(os.environ.get("PROVENANCE_BENCH_REPEATS", "5"))
WARM_ROUNDS = 6 * REPEATS  # warm calls take milliseconds: more rounds, the same few seconds
THROUGHPUT_FILES = int(os.environ.get("PROVENANCE_BENCH_FILES", "48"))
REPO = Path(__file__).resolve().parent.parent


def sample_files(directory: Path) -> list[Path]:
    from skimage import data

    chelsea = Image.fromarray(data.chelsea()).resize((1920, 1080), Image.Resampling.LANCZOS)
    files = [directory / "astronaut_512.png", directory / "chelsea_1920x1080_q90.jpg", directory / "chelsea_1920x1080.png"]
    Image.fromarray(data.astronaut()).save(files[0])
    chelsea.save(files[1], quality=90)
    chelsea.save(files[2])
    return files


def throughput_files(directory: Path, n: int) -> list[Path]:
    """n different 512x512 JPEGs: crops of the scikit-image photos, scaled and shifted."""
    import numpy as np
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry()]
    files = []
    for i in range(n):
        photo = Image.fromarray(photos[i % len(photos)])
        scale = 1.0 + 0.15 * (i // len(photos))
        big = photo.resize((max(512, int(photo.width * scale)), max(512, int(photo.height * scale))))
        rng = np.random.default_rng(i)
        x, y = int(rng.integers(0, big.width - 511)), int(rng.integers(0, big.height - 511))
        files.append(directory / f"crop_{i:03d}.jpg")
        big.crop((x, y, x + 512, y + 512)).save(files[-1], quality=88)
    return files


def load_now() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "n/a"


GNU_TIME = Path("/usr/bin/time")


def child_env() -> dict[str, str]:
    """The environment of a measured child process. It may write and read bytecode caches, as an
    installed package's modules do (pip compiles them), even where this shell disables them: the
    first (warm-up) run writes them for our modules."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _run(command: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MB) of one child process. The peak comes from GNU time when it is
    installed: a child started from this (large) process would otherwise report our own peak,
    which Linux carries across fork and exec."""
    env = child_env()
    with tempfile.NamedTemporaryFile("r") as report:
        wrapped = [str(GNU_TIME), "-f", "%M", "-o", report.name, *command] if GNU_TIME.is_file() else command
        start = time.perf_counter()
        process = subprocess.Popen(wrapped, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        if code not in (0, 1):
            raise RuntimeError(f"{' '.join(command)} exited with {code}")
        peak = float(report.read().split()[-1]) / 1024 if GNU_TIME.is_file() else float("nan")
    return wall, usage.ru_utime + usage.ru_stime, peak


def interleaved_medians(measures: dict[str, Callable[[], tuple[float, ...]]], rounds: int) -> dict[str, tuple[float, ...]]:
    """Each measure's median (per component), after one warm-up call each, from ``rounds`` rounds
    that call every measure once in turn: load that comes and goes on a shared machine then lands
    on the baseline as often as on what is compared with it."""
    for measure in measures.values():
        measure()
    samples: dict[str, list[tuple[float, ...]]] = {label: [] for label in measures}
    for _ in range(rounds):
        for label, measure in measures.items():
            samples[label].append(measure())
    return {label: tuple(statistics.median(column) for column in zip(*runs)) for label, runs in samples.items()}


def cold_rows(jpeg: Path) -> list[list[object]]:
    python = sys.executable
    pillow = [python, "-c", f"from PIL import Image; Image.open({str(jpeg)!r}).load()"]
    cli = [python, "-m", "provenance.cli", "check"]
    # What any pixel-reading check must import before its first step: numpy for the arrays, OpenCV
    # for the watermark decoders' colour conversion, click for the CLI (besides Pillow).
    imports = [python, "-c", "import numpy, cv2, click; from PIL import Image"]
    baseline = "Pillow decode only (baseline)"
    commands = {baseline: pillow, "provenance check (all detectors)": cli + [str(jpeg)],
                "provenance check --fast": cli + ["--fast", str(jpeg)],
                "import floor: numpy, OpenCV, click, Pillow (no work)": imports}
    medians = interleaved_medians({label: lambda command=command: _run(command) for label, command in commands.items()},
                                  REPEATS)
    floor = medians[baseline][0]
    return [[label, f"{wall:.2f}", f"{cpu:.2f}", f"{wall / floor:.1f}x", f"{rss:.0f}", load_now()]
            for label, (wall, cpu, rss) in medians.items()]


def wall_cpu_ms(fn) -> Callable[[], tuple[float, float]]:
    """A measure of ``fn``: wall and CPU (this process, all threads) milliseconds of one call.
    On a shared machine CPU time is the steadier figure: wall time also counts waiting for a core."""
    def measure() -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return (time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000
    return measure


def pillow_decode(path: Path) -> None:
    with Image.open(io.BytesIO(path.read_bytes())) as img:
        img.load()


def paired_with_decode(path: Path, checkers: dict) -> dict[str, tuple[float, ...]]:
    """Each checker's (wall, CPU) medians in its own interleaved rounds with Pillow's decode, as a
    process that runs one checker sees them: calls of several checkers in turn evict each other's
    weights from the caches (measured at 1080p: 64 ms alone, 70 ms with two more checkers in the
    rounds). "decode": the median of the decodes timed beside them."""
    decode = wall_cpu_ms(lambda: pillow_decode(path))
    medians, decodes = {}, []
    for label, checker in checkers.items():
        pair = interleaved_medians({"decode": decode, label: wall_cpu_ms(lambda checker=checker: checker.check_one(path))},
                                   WARM_ROUNDS)
        medians[label] = pair[label]
        decodes.append(pair["decode"])
    medians["decode"] = tuple(statistics.median(column) for column in zip(*decodes))
    return medians


def warm_rows(files: list[Path]) -> list[list[object]]:
    from provenance.check import DECLARED_SIGNAL_DETECTORS, CheckConfig, Checker
    from provenance.imageio import load_image
    from provenance.watermark.decision import DEFAULT_SCHEMES

    full = Checker()
    side_by_side = Checker(CheckConfig(threads=detector_threads()))  # as a one-image `check` runs them
    fast = Checker(CheckConfig(detectors=DECLARED_SIGNAL_DETECTORS))
    fast_side_by_side = Checker(CheckConfig(detectors=DECLARED_SIGNAL_DETECTORS, threads=detector_threads()))  # as `check --fast`
    # what reading the learned mark costs: the same check with the classical schemes only
    classical = {"watermark": {"schemes": [s for s in DEFAULT_SCHEMES if s != "learned"]}}
    without_learned = Checker(CheckConfig(threads=detector_threads(), detector_options=classical))
    rows = []
    for path in files:
        medians = paired_with_decode(path, {
            "check": full, "threads": side_by_side, "fast": fast, "fast threads": fast_side_by_side,
            "classical": without_learned,
        })
        floor, total, threaded, quick = medians["decode"], medians["check"], medians["threads"], medians["fast"]
        quick_threaded = medians["fast threads"][0]
        image = load_image(path)
        parts = []
        for detector in full.detectors:
            def detect(detector=detector):
                fresh = load_image(image.data)  # a new image each time: no transforms carried over
                start = time.process_time()
                detector.detect(fresh)
                return time.process_time() - start

            detect()
            parts.append(f"{detector.name} {statistics.median(detect() for _ in range(REPEATS)) * 1000:.0f}")
        rows.append([path.name, f"{floor[0]:.1f} / {floor[1]:.1f}", f"{total[0]:.0f} / {total[1]:.0f}",
                     f"{total[0] / floor[0]:.1f}x / {total[1] / floor[1]:.1f}x",
                     f"{threaded[0]:.0f} ({threaded[0] / floor[0]:.1f}x)", f"{quick[0]:.0f} / {quick[1]:.0f}",
                     f"{quick[0] / floor[0]:.1f}x / {quick[1] / floor[1]:.1f}x",
                     f"{quick_threaded:.0f} ({quick_threaded / floor[0]:.1f}x)",
                     f"{medians['classical'][0]:.0f} ({medians['classical'][0] / floor[0]:.1f}x)", ", ".join(parts),
                     load_now()])
    return rows


def _has_jobs_option() -> bool:
    from provenance.commands.check_cmd import check_command

    return any("-j" in param.opts for param in check_command.params)


def throughput_rows(files: list[Path], more_files: list[Path]) -> tuple[list[str], list[list[object]]]:
    from provenance.check import DECLARED_SIGNAL_DETECTORS, CheckConfig, Checker

    rows = []
    python = sys.executable
    cli = [python, "-m", "provenance.cli", "check", "--json"]
    jobs = _has_jobs_option()
    for label, config, extra in (("all detectors", CheckConfig(), []),
                                 ("--fast", CheckConfig(detectors=DECLARED_SIGNAL_DETECTORS), ["--fast"])):
        checker = Checker(config)
        checker.check(files[:2])  # models loaded, as in a long scan
        start, cpu = time.perf_counter(), time.process_time()
        for _ in checker.iter_check(files):
            pass
        in_process = len(files) / (time.perf_counter() - start)
        cpu_per_image = (time.process_time() - cpu) * 1000 / len(files)
        one = len(files) / _run(cli + extra + [str(f) for f in files])[0]
        half = len(files) // 2
        start = time.perf_counter()
        children = [subprocess.Popen(cli + extra + [str(f) for f in part], stdout=subprocess.DEVNULL, env=child_env())
                    for part in (files[:half], files[half:])]
        for child in children:
            child.wait()
        two = len(files) / (time.perf_counter() - start)
        row = [label, len(files), f"{in_process:.1f}", f"{cpu_per_image:.0f}", f"{one:.1f}", f"{two:.1f}",
               f"{two / one:.2f}x"]
        if jobs:
            # the rate of a long scan: the files a run on 3x the files adds, over the time it adds
            # (process start-up and model loading cancel out); one pair of runs moves by 20% on a
            # shared host, so the median of REPEATS pairs, with their range
            parallel = cli + extra + ["-j", "2"]
            shorts, rates = [], []
            for _ in range(REPEATS):
                short = _run(parallel + [str(f) for f in files])[0]
                long = _run(parallel + [str(f) for f in more_files])[0]
                shorts.append(short)
                rates.append((len(more_files) - len(files)) / max(long - short, 1e-9))
            row += [f"{len(files) / statistics.median(shorts):.1f}",
                    f"{statistics.median(rates):.1f} ({min(rates):.1f}-{max(rates):.1f})"]
        rows.append(row + [load_now()])
    headers = ["detectors", "files", "in one process, warm (img/s)", "CPU ms / image", "1 check process (img/s)",
               "2 check processes, half the files each (img/s)", "2 vs 1 process"]
    jobs_headers = ["check -j 2 (img/s)",
                    f"check -j 2, {len(more_files)} vs {len(files)} files: scan rate, median of {REPEATS} (range) (img/s)"]
    return headers + (jobs_headers if jobs else []) + ["load(1m)"], rows


def backend_line() -> str:
    from detectors.learned import load_classifier
    from provenance import precision
    from provenance.shipped import CLASSIFIERS_DIR as SHIPPED_WEIGHTS
    from provenance.watermark.learned.scheme import SHIPPED_WEIGHTS as LEARNED, LearnedScheme

    cnn = load_classifier(SHIPPED_WEIGHTS / "cnn").backend if (SHIPPED_WEIGHTS / "cnn").is_dir() else "none"
    learned = LearnedScheme(LEARNED).graph_precision if LEARNED.is_file() else "none"
    return f"{precision.describe()} cnn_backend={cnn} learned_mark_backend={learned}"


def main() -> None:
    print(machine_line(), backend_line(), f"repeats={REPEATS} (cold, in interleaved rounds) warm_rounds={WARM_ROUNDS}",
          "cold processes use bytecode caches (as installed)")
    with tempfile.TemporaryDirectory() as tmp:
        files = sample_files(Path(tmp))
        print("\nCold: one 1920x1080 JPEG q90, whole process (median wall/CPU seconds, peak RSS)\n")
        print_table(["process", "wall s", "CPU s", "wall / Pillow process", "peak RSS MB", "load(1m)"],
                    cold_rows(files[1]))
        print("\nWarm: per image in a running process (median ms, wall / CPU; per-detector CPU ms on a freshly "
              "loaded image, each computing its own transforms)\n")
        print_table(["file", "Pillow decode ms", "check ms", "check / decode",
                     f"check ms, detectors on {detector_threads()} threads (/ decode wall)", "--fast ms", "--fast / decode",
                     f"--fast ms on {detector_threads()} threads (/ decode wall)",
                     f"check ms on {detector_threads()} threads without the learned mark (/ decode wall)",
                     "per detector CPU ms", "load(1m)"], warm_rows(files))
        more = throughput_files(Path(tmp), 3 * THROUGHPUT_FILES)
        many = more[:THROUGHPUT_FILES]
        headers, rows = throughput_rows(many, more)
        print(f"\nThroughput: {len(many)} different 512x512 JPEGs q88 (CLI rows include process start-up)\n")
        print_table(headers, rows)


if __name__ == "__main__":
    main()
