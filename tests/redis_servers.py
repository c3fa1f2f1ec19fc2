"""Real Redis servers for the Redis tests: the shared one `make services` starts, and private
ones (Debian's redis-server) a test starts, stops and restarts on free loopback ports.

When Redis (or redis-server) is missing the tests are skipped with advice, except in CI
(CI=true), where that is a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

SHARED_URL = "redis://127.0.0.1:6379/0"
_shared_problem: list[str | None] = []  # checked once per session


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI=true: the Redis tests must run)")
    pytest.skip(reason)


def require_shared_redis() -> str:
    """The URL of the Redis `make services` starts; skip (fail in CI) when it is away."""
    if not _shared_problem:
        try:
            redis.Redis.from_url(SHARED_URL, socket_connect_timeout=2).ping()
            _shared_problem.append(None)
        except redis.RedisError as error:
            _shared_problem.append(
                f"no Redis answers at {SHARED_URL} ({error}); start it with `make services`"
            )
    if _shared_problem[0] is not None:
        _unavailable(_shared_problem[0])
    return SHARED_URL


def unique_prefix() -> str:
    """A key prefix no other test (or earlier run) uses on a shared Redis."""
    return f"test-{uuid.uuid4().hex[:12]}"


def free_port(bus: bool = False) -> int:
    """A free loopback port; with `bus`, one whose cluster bus port (+10000) is free too."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if not bus:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as sock:
                try:
                    sock.bind(("127.0.0.1", port + 10000))
                    return port
                except OSError:
                    continue


def _redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        _unavailable("redis-server is not installed; `make services` installs it")
    return str(path)


class RedisServer:
    """One redis-server process on 127.0.0.1:`port`, its data (AOF) kept in `directory`, so
    a stop and start keeps the data like a production Redis with persistence does."""

    def __init__(self, directory: Path, *extra: str, password: str = "") -> None:
        self.binary = _redis_server()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port(bus="--cluster-enabled" in extra)
        self.password = password
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def estimate(self, members: set[str]) -> int:
        """What this server's HyperLogLog counts for exactly `members` (a scratch key): Redis
        counts distinct ids with HLL, so an exact count can only be compared through it."""
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None)
        key = f"estimate:{uuid.uuid4().hex}"
        try:
            if members:
                client.pfadd(key, *members)
            return int(client.pfcount(key))
        finally:
            client.delete(key)
            client.close()

    def start(self) -> RedisServer:
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
            str(self.directory), "--save", "", "--appendonly", "yes", "--appendfsync", "always",
            "--logfile", str(self.directory / "redis.log"), *self.extra,
        ]  # fmt: skip
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        client = redis.Redis(host="127.0.0.1", port=self.port, password=self.password or None)
        while True:
            try:
                client.ping()
                return self
            except redis.ConnectionError as error:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.directory / "redis.log").read_text(errors="replace")[-2000:]
                    message = f"redis-server on {self.port} did not start:\n{log}"
                    self.stop()
                    raise RuntimeError(message) from error
                time.sleep(0.02)
            finally:
                client.close()

    def stop(self) -> None:
        """SIGTERM this server (by its pid) and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None


class RedisClusterNodes:
    """Three primaries (no replicas) on loopback, slots spread by `redis-cli --cluster create`."""

    def __init__(self, directory: Path) -> None:
        self.nodes = [
            RedisServer(
                directory / f"node{i}",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                "2000",
            )  # fmt: skip
            for i in range(3)
        ]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisClusterNodes:
        try:
            return self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> RedisClusterNodes:
        for node in self.nodes:
            node.start()
        cli = shutil.which("redis-cli")
        if cli is None:
            _unavailable("redis-cli is not installed; `make services` installs it")
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        subprocess.run(
            [str(cli), "--cluster", "create", *addresses, "--cluster-replicas", "0",
             "--cluster-yes"],
            check=True, capture_output=True, timeout=30,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        for node in self.nodes:
            client = redis.Redis(host="127.0.0.1", port=node.port, decode_responses=True)
            try:
                while client.cluster("info").get("cluster_state") != "ok":
                    if time.monotonic() > deadline:
                        raise RuntimeError("the test cluster did not reach cluster_state:ok")
                    time.sleep(0.05)
            finally:
                client.close()
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
