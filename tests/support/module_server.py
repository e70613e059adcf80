"""Start one of the test servers in tests/support as its own process.

The test EHR's servers (``fhir_server``, ``auth_server``) run as ``python -m
tests.support.<name>`` from the repository root, bind 127.0.0.1 at a port the OS picks
and print ``port <n>`` as their first stdout line. ``start`` waits for that line (with a
timeout, failing with the server's stderr if it dies first) and ``stop`` terminates and
waits. A server's stderr goes to a log file, never an unread pipe that could fill up.
"""
from __future__ import annotations

import select
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ModuleServer:
    """A running ``tests.support`` server: its process and its base URL."""

    process: subprocess.Popen[str]
    url: str

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def start(module: str, *args: str, log: Path | None = None,
          timeout: float = 15) -> ModuleServer:
    """Run ``python -m tests.support.<module> *args``; its base URL once it listens."""
    sink = log.open("w") if log is not None else subprocess.DEVNULL
    try:
        process = subprocess.Popen([sys.executable, "-m", f"tests.support.{module}", *args],
                                   cwd=ROOT, stdout=subprocess.PIPE, stderr=sink, text=True)
    finally:
        if log is not None:
            sink.close()  # type: ignore[union-attr]
    assert process.stdout is not None
    ready = select.select([process.stdout], [], [], timeout)[0]
    line = process.stdout.readline() if ready else ""  # "" too if it died first
    if not line.startswith("port "):
        ModuleServer(process, "").stop()
        told = log.read_text(errors="replace") if log is not None else ""
        raise RuntimeError(f"tests.support.{module} did not start:\n{told}")
    return ModuleServer(process, f"http://127.0.0.1:{int(line.split()[1])}")
