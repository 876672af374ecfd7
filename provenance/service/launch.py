"""Start ``provenance serve`` in a child process on a free loopback port and wait until it is ready
(for the browser test, the load benchmark and scripts). Needs nothing from the ``[serve]`` extra
in the caller's process."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from http.client import HTTPConnection
from pathlib import Path
from typing import Iterator, Sequence

LOOPBACK = "127.0.0.1"
_CODE_ROOT = Path(__file__).resolve().parents[2]  # the child runs this same code


class ServerFailed(RuntimeError):
    pass


def free_loopback_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


@contextmanager
def running_server(options: Sequence[str], log: Path, ready_within: float = 300) -> Iterator[tuple[str, subprocess.Popen]]:
    """``provenance serve --host 127.0.0.1 --port <free> *options``; yields (base URL, process) once
    ``/readyz`` answers 200, and stops the server afterwards. Output goes to ``log``."""
    port = free_loopback_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_CODE_ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "provenance.cli", "serve", "--host", LOOPBACK, "--port", str(port), *options]
    with open(log, "wb") as sink:
        process = subprocess.Popen(command, cwd=_CODE_ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://{LOOPBACK}:{port}"
    try:
        _wait_ready(port, process, log, ready_within)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_ready(port: int, process: subprocess.Popen, log: Path, seconds: float) -> None:
    """Poll our own server's /readyz on the loopback port it was started on (never another host)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"server exited ({process.returncode}): {log.read_text(errors='replace')[-2000:]}")
        connection = HTTPConnection(LOOPBACK, port, timeout=2)
        try:
            connection.request("GET", "/readyz")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        time.sleep(0.5)
    raise ServerFailed(f"server not ready within {seconds:.0f} s: {log.read_text(errors='replace')[-2000:]}")
