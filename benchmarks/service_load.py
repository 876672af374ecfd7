"""``provenance serve`` under load, against ``check`` in one process on the same files.

50 concurrent clients post 512x512 JPEGs (raw bodies, keep-alive) to a server started here on a
free 127.0.0.1 port for 60 s; throughput, latency percentiles, errors and the server's resident
memory (sampled every 0.5 s over the whole process tree) are reported. The baseline is one
in-process :class:`~provenance.check.Checker` checking the same files one at a time, before the
server starts, so the two never compete for the CPU. Loopback only; bounded in time and count.

    python -m benchmarks service_load
    python -m benchmarks.service_load --clients 50 --seconds 60 --workers 1
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
from PIL import Image

from benchmarks.timing import machine_line, print_table
from provenance.service.launch import LOOPBACK, running_server

MAX_REQUESTS = 100_000  # a hard cap on top of the time bound


@dataclass
class Run:
    latencies_ms: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> int:
        return len(self.latencies_ms)

    def row(self, name: str, rss: str) -> list[object]:
        q = np.percentile(self.latencies_ms, [50, 95, 99]) if self.latencies_ms else [float("nan")] * 3
        errors = sum(self.errors.values())
        detail = f" ({', '.join(f'{k}: {v}' for k, v in sorted(self.errors.items()))})" if errors else ""
        return [name, self.ok + errors, f"{self.ok / self.seconds:.2f}", f"{q[0]:.0f}", f"{q[1]:.0f}", f"{q[2]:.0f}",
                f"{errors}{detail}", rss]


def sample_jpegs(count: int = 8) -> list[bytes]:
    """512x512 JPEG q90 crops of scikit-image's photos (shipped with it, so this runs offline)."""
    from skimage import data

    photos = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.immunohistochemistry(),
              data.retina(), data.cat(), data.hubble_deep_field()]
    out = []
    for rgb in photos[:count]:
        img = Image.fromarray(np.ascontiguousarray(rgb)).convert("RGB")
        side = min(img.size)
        left, top = (img.width - side) // 2, (img.height - side) // 2
        img = img.crop((left, top, left + side, top + side)).resize((512, 512), Image.Resampling.LANCZOS)
        buffer = io.BytesIO()
        img.save(buffer, "JPEG", quality=90)
        out.append(buffer.getvalue())
    return out


def in_process(files: list[bytes], seconds: float) -> Run:
    """``check`` in this process, one file at a time, after one warm-up check of each file."""
    from provenance.check import Checker, NamedBytes

    checker = Checker()
    for i, data in enumerate(files):
        checker.check_one(NamedBytes(f"warm-{i}.jpg", data))
    run = Run()
    started = time.perf_counter()
    i = 0
    while time.perf_counter() - started < seconds and i < MAX_REQUESTS:
        t0 = time.perf_counter()
        verdict = checker.check_one(NamedBytes(f"file-{i}.jpg", files[i % len(files)]))
        if verdict.label.value == "error":
            run.errors["error record"] = run.errors.get("error record", 0) + 1
        else:
            run.latencies_ms.append((time.perf_counter() - t0) * 1000)
        i += 1
    run.seconds = time.perf_counter() - started
    return run


def process_tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and all its descendants (uvicorn's workers), from /proc."""
    total, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                pending.extend(int(c) for c in (task / "children").read_text().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total


class RssSampler(threading.Thread):
    def __init__(self, pid: int, every: float = 0.5):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            self.samples.append((time.monotonic(), process_tree_rss(self.pid)))
            self.stop.wait(self.every)


def load(url: str, files: list[bytes], clients: int, seconds: float) -> Run:
    host, port = urlsplit(url).hostname, urlsplit(url).port
    assert host == LOOPBACK, "load goes to loopback only"
    run = Run()
    lock = threading.Lock()
    sent = iter(range(MAX_REQUESTS))
    stop_at = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(host, port, timeout=600)
        n = index
        while time.monotonic() < stop_at:
            with lock:
                if next(sent, None) is None:
                    return
            body = files[n % len(files)]
            n += clients
            t0 = time.perf_counter()
            try:
                connection.request("POST", "/v1/check", body=body, headers={"Content-Type": "image/jpeg"})
                response = connection.getresponse()
                payload = response.read()
                if response.status != 200:
                    outcome = f"HTTP {response.status}"
                else:
                    outcome = "ok" if json.loads(payload)["records"][0]["label"] != "error" else "error record"
            except (OSError, http.client.HTTPException) as exc:
                outcome = type(exc).__name__
                connection.close()
                connection = http.client.HTTPConnection(host, port, timeout=600)
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if outcome == "ok":
                    run.latencies_ms.append(elapsed)
                else:
                    run.errors[outcome] = run.errors.get(outcome, 0) + 1
        connection.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 600)
    run.seconds = time.perf_counter() - started
    return run


def cpu_line() -> str:
    try:
        import torch

        capability = torch.backends.cpu.get_cpu_capability()
        bf16 = bool(getattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False)())
        return f"torch CPU capability {capability}, native bf16: {'yes' if bf16 else 'no'}"
    except ImportError:
        return "torch not installed"


def uptime_line() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f}, {five:.2f}, {fifteen:.2f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.service_load", description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the HTTP load")
    parser.add_argument("--baseline-seconds", type=float, default=30.0, help="length of the in-process run")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--concurrency", type=int, default=1, help="checks at once per server process")
    parser.add_argument("--images", type=int, default=8)
    args = parser.parse_args(argv if argv is not None else [])

    print(machine_line() + "; " + cpu_line())
    print(f"before: {uptime_line()}")
    files = sample_jpegs(args.images)
    print(f"{len(files)} distinct 512x512 JPEG q90 files, {statistics.mean(map(len, files)) / 1024:.0f} KiB on average")

    baseline = in_process(files, args.baseline_seconds)

    options = ["--workers", str(args.workers), "--concurrency", str(args.concurrency),
               "--queue", str(args.clients), "--timeout", "300"]
    with tempfile.TemporaryDirectory() as tmp, running_server(options, Path(tmp) / "server.log") as (url, server):
        sampler = RssSampler(server.pid)
        sampler.start()
        time.sleep(1.0)
        http_run = load(url, files, args.clients, args.seconds)
        sampler.stop.set()
        sampler.join()

    rss = [value for _, value in sampler.samples]
    ready_mib, peak_mib, end_mib = rss[0] / 2**20, max(rss) / 2**20, rss[-1] / 2**20
    half = len(rss) // 2
    first_half, second_half = max(rss[1:half] or rss) / 2**20, max(rss[half:]) / 2**20
    print(f"after: {uptime_line()}")
    print(f"server: --workers {args.workers} --concurrency {args.concurrency} --queue {args.clients} --timeout 300; "
          f"{args.clients} clients for {args.seconds:.0f} s; RSS sampled {len(rss)} times")
    print_table(
        ["setup", "requests", "req/s", "p50 ms", "p95 ms", "p99 ms", "errors", "server RSS MiB (ready / peak / end)"],
        [baseline.row("`check` in one process (baseline), 1 at a time", "-"),
         http_run.row(f"HTTP POST /v1/check, {args.clients} clients", f"{ready_mib:.0f} / {peak_mib:.0f} / {end_mib:.0f}")])
    ratio = (http_run.ok / http_run.seconds) / (baseline.ok / baseline.seconds)
    print(f"\nHTTP throughput / in-process throughput: {ratio:.2f} "
          f"(HTTP overhead {100 * (1 - ratio):+.0f}% of throughput); "
          f"peak RSS over the first / second half of the load: {first_half:.0f} / {second_half:.0f} MiB")


if __name__ == "__main__":
    main(sys.argv[1:])
