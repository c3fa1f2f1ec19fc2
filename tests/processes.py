"""`appliance` commands in subprocesses for the tests that run the Kafka profile as operators
do: started with their output in a log file, waited for, and killed when the test ends."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx2 as httpx

APPLIANCE = [sys.executable, "-m", "appliance"]
T = TypeVar("T")


class Processes:
    """Start `appliance ...` commands; whatever is still running at `close()` is killed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, env: dict[str, str], *args: str, log: str) -> subprocess.Popen[bytes]:
        with (self.log_dir / log).open("ab") as output:
            process = subprocess.Popen(
                [*APPLIANCE, *args], env=env, stdout=output, stderr=subprocess.STDOUT
            )
        self.started.append(process)
        return process

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def wait_until(predicate: Callable[[], T], timeout_s: float, what: str) -> T:
    """Poll until `predicate()` is truthy and return that value; fail after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not (value := predicate()):
        assert time.monotonic() < deadline, f"{what}: not within {timeout_s} s (last {value!r})"
        time.sleep(0.05)
    return value


def answers(url: str) -> bool:
    """True once `url`'s /healthz answers 200."""
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False
