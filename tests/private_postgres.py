"""A PostgreSQL server of a test's own, on a free loopback port, that the test may stop and
start again (the shared one `make services` starts must stay up for everyone else).

Debian's PostgreSQL binaries (`make services` installs them), a fresh cluster from initdb
with trust authentication on loopback; run as the `postgres` user when the tests run as
root (PostgreSQL refuses root). Missing binaries skip the test, except in CI (CI=true).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        reason = "PostgreSQL's binaries are not installed; `make services` installs them"
        if os.environ.get("CI", "").lower() in ("true", "1"):
            pytest.fail(reason)
        pytest.skip(reason)
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivatePostgres:
    def __init__(self) -> None:
        self.bin = _binaries()
        self.user = "postgres" if os.geteuid() == 0 else None
        # Not under pytest's tmp_path: the postgres user must be able to enter it.
        self.directory = Path(tempfile.mkdtemp(prefix="appliance-pg-"))
        self.data = self.directory / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        if self.user:
            shutil.chown(self.directory, self.user)
        subprocess.run(
            [str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
             "--auth=trust", "--no-sync", "-E", "UTF8"],
            check=True, capture_output=True, timeout=60, user=self.user,
        )  # fmt: skip

    def dsn(self, password: str = "") -> str:
        credentials = f"postgres:{password}" if password else "postgres"
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/postgres"

    def start(self) -> PrivatePostgres:
        log = (self.directory / "postgres.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
            stdout=log, stderr=subprocess.STDOUT, user=self.user,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 20
        while True:
            try:
                psycopg.connect(self.dsn(), connect_timeout=1).close()
                return self
            except psycopg.OperationalError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    text = (self.directory / "postgres.log").read_text(errors="replace")
                    self.stop()
                    message = f"private postgres did not start:\n{text[-2000:]}"
                    raise RuntimeError(message) from error
                time.sleep(0.05)

    def stop(self) -> None:
        """Fast shutdown (SIGINT, by pid): open sessions are cut, as in an outage."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def remove(self) -> None:
        self.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(self.directory)
