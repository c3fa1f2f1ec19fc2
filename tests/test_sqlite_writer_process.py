"""The SQLite store's flushes written by a child process (sqlite.writer_process, the default).

It must write exactly what the store writes in-process, skip what it holds, report a failed
write, survive being killed (the flush is retried by a new child), and keep working through
a Ctrl-C of the whole process group until `serve` has flushed everything it accepted.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from appliance.core.aggregation import DAY, aggregate
from appliance.core.event import event_encoder
from appliance.core.transport import Offset, Position
from appliance.testing import ApplianceServer, EventSender, start_appliance
from plugins.store_sqlite import writer_process
from plugins.store_sqlite.analytics import SqliteAnalyticsStore
from plugins.store_sqlite.writer_process import WriterProcessError
from tests.test_sqlite_visits import SITE, T0, random_events, write

CHILD_MODULE = "plugins.store_sqlite.writer_process"


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[SqliteAnalyticsStore]:
    store = SqliteAnalyticsStore(tmp_path / "remote.db", writer_process=True)
    store.open()
    yield store
    store.close()


def writer_pid(store: SqliteAnalyticsStore) -> int:
    process = store._writer_process  # noqa: SLF001
    assert process is not None and process.pid is not None
    return process.pid


def children(pid: int) -> list[int]:
    found = []
    for task in os.listdir(f"/proc/{pid}/task"):
        found += [int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()]
    return found


def writer_children(pid: int) -> list[int]:
    return [c for c in children(pid) if CHILD_MODULE in Path(f"/proc/{c}/cmdline").read_text()]


def test_the_child_writes_what_the_store_writes_in_process(
    remote: SqliteAnalyticsStore, tmp_path: Path
) -> None:
    local = SqliteAnalyticsStore(tmp_path / "local.db")
    local.open()
    try:
        events = random_events(1_900, seed=5)
        # One flush of 1,300 events crosses the pipe as three slices (512 + 512 + 276).
        chunks = [events[:1_300]] + [events[i : i + 150] for i in range(1_300, 1_900, 150)]
        write(local, chunks)
        write(remote, chunks)
        assert writer_pid(remote) != os.getpid()
        start, end = T0 - DAY, T0 + DAY
        assert remote.kpis(SITE, start, end) == local.kpis(SITE, start, end)
        assert remote.kpis(SITE, start, end).pageviews > 0
        for prop in ("browser", "country", "source", "entry_page"):
            assert remote.breakdown(SITE, start, end, prop, 10) == local.breakdown(
                SITE, start, end, prop, 10
            )
        assert remote.event_properties(SITE, start, end, "Signup", 10) == (
            local.event_properties(SITE, start, end, "Signup", 10)
        )
    finally:
        local.close()


def test_a_batch_it_holds_is_not_written_again(remote: SqliteAnalyticsStore) -> None:
    events = random_events(40, seed=6)
    offsets = [Offset("t", "0", i) for i in range(len(events))]
    batch = aggregate(events, [Position("t", "0", 0, len(events) - 1)], offsets)
    assert remote.write_batch(batch) is True
    assert remote.write_batch(batch) is False
    assert remote.kpis(SITE, T0 - DAY, T0 + DAY).pageviews + remote.kpis(
        SITE, T0 - DAY, T0 + DAY
    ).events == len(events)


def test_a_failed_write_is_reported_and_the_child_goes_on(remote: SqliteAnalyticsStore) -> None:
    write(remote, [random_events(10, seed=7)])
    pid = writer_pid(remote)
    with sqlite3.connect(remote.path) as conn:
        conn.execute("ALTER TABLE events RENAME TO events_away")
    with pytest.raises(WriterProcessError, match="no such table: events"):
        write(remote, [random_events(10, seed=8, prefix="b")])
    with sqlite3.connect(remote.path) as conn:
        conn.execute("ALTER TABLE events_away RENAME TO events")
    write(remote, [random_events(10, seed=8, prefix="b")])
    assert writer_pid(remote) == pid


def test_a_killed_child_is_replaced(remote: SqliteAnalyticsStore) -> None:
    write(remote, [random_events(10, seed=9)])
    first = writer_pid(remote)
    os.kill(first, signal.SIGKILL)
    wait_exited(first)
    write(remote, [random_events(10, seed=10, prefix="c")])
    assert writer_pid(remote) != first
    kpis = remote.kpis(SITE, T0 - DAY, T0 + DAY)
    assert kpis.pageviews + kpis.events == 20


@pytest.mark.e2e
def test_serve_replaces_a_killed_writer_and_loses_nothing(tmp_path: Path) -> None:
    server = start_appliance(tmp_path)
    try:
        assert server.process is not None
        sender = EventSender(server)
        sender.send_and_wait({"path": "/before"})
        (first,) = writer_children(server.process.pid)
        os.kill(first, signal.SIGKILL)
        sent = 1 + sum(sender.send({"path": f"/after/{n}"}) for n in range(30))
        sender.wait_until_counted(sent, timeout_s=15)
        (second,) = writer_children(server.process.pid)
        assert second != first
    finally:
        server.stop()


@pytest.mark.e2e
def test_ctrl_c_of_the_process_group_flushes_through_the_writer(tmp_path: Path) -> None:
    """A terminal's Ctrl-C reaches serve and its child alike; the child must outlive the
    parent's last flush, or the events still queued are lost."""
    server = ApplianceServer(tmp_path, {"processor.flush_interval_ms": 3000})
    server.provision()
    command = server_command(server)
    with server.log_path.open("ab") as log:
        process = subprocess.Popen(
            command, env=server.env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    server.process = process
    try:
        wait_healthy(server)
        sender = EventSender(server)
        sender.send_and_wait({"path": "/first"})  # a flush now, the next in 3 s
        sent = 1 + sum(sender.send({"path": f"/queued/{n}"}) for n in range(20))
        os.killpg(process.pid, signal.SIGINT)
        assert process.wait(timeout=30) == 0, server.log()
        # The same child wrote the last flush: none died and was replaced on the way out.
        assert "writer process" not in server.log()
        server.process = None
        server.start()
        assert EventSender(server).counted() == sent, server.log()
    finally:
        server.stop()


def wait_exited(pid: int) -> None:
    """Until the killed child is a zombie (its parent, the store, reaps it on the next write)."""
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)


def server_command(server: ApplianceServer) -> list[str]:
    return [sys.executable, "-m", "appliance", "serve", "--host", "127.0.0.1", "--port",
            str(server.port)]  # fmt: skip


def wait_healthy(server: ApplianceServer, timeout_s: float = 20) -> None:
    client = server.client()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if client.get("/healthz", timeout_s=1).status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"serve did not start:\n{server.log()}")


def test_a_parent_gone_mid_flush_ends_the_child_with_nothing_written(tmp_path: Path) -> None:
    """The request said two slices; stdin closes after one (the parent died): the child
    exits cleanly, and the transaction was never begun."""
    path = tmp_path / "a.db"
    store = SqliteAnalyticsStore(path)
    store.open()  # migrated, in-process
    store.close()
    child = subprocess.Popen(
        [sys.executable, "-P", "-c", writer_process.CHILD_COMMAND, str(path), "0.25", "0.05"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert child.stdin is not None
    try:
        events = random_events(600, seed=9)[:512]
        offsets = [Offset("t", "0", i) for i in range(len(events))]
        request = writer_process.WriterRequest([Position("t", "0", 0, 599)], chunks=2)
        child.stdin.write(frame(msgspec.msgpack.encode(request)))
        child.stdin.write(frame(event_encoder.encode((events, offsets))))
        child.stdin.close()
        assert child.wait(30) == 0
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()
        assert child.stdout is not None and child.stderr is not None
        assert child.stdout.read() == b""  # no answer to a flush it never got whole
        errors = child.stderr.read()
        child.stdout.close()
        child.stderr.close()
    assert errors == b""
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT count(*) FROM events").fetchone() == (0,)
        assert conn.execute("SELECT count(*) FROM applied_positions").fetchone() == (0,)
    conn.close()


def frame(body: bytes) -> bytes:
    return len(body).to_bytes(4, "big") + body
