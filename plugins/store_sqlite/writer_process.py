"""The SQLite store's flushes, written by a child process of their own.

Writing a flush is mostly Python (visit assignment, rows, parameter binding) holding the GIL
in a worker thread, and in the embedded profile that thread shares the GIL with the web
server's event loop: each time it took the GIL back, requests waited (measured: ingest ran
~25 % faster with no store writing at all). In a child process the writes run on the other
core and the parent only encodes the events (msgpack, in C) and waits on a pipe.

The parent sends a flush on the child's stdin as a request (its positions and how many
slices follow) and then its events, slice by slice, and reads one answer from its stdout;
each frame is a 4-byte length and a msgpack body. Slices are encoded as they are sent and
decoded as they arrive: the whole flush as one body took a copy of it in each process (twice
in the child), and a process keeps the memory of its largest flush. The child only ever
writes what the parent sent, so it holds no state: when it dies (or hangs past
WRITE_TIMEOUT_S), the flush raises, the processor retries it, and the next write starts a
new child. The child exits when its stdin closes (the parent closed the store, or died). It
runs in a process group of its own (a terminal's Ctrl-C does not reach it) and ignores
SIGINT and SIGTERM (a service manager may signal every process of the service), so the
parent's graceful stop can still flush through it. It logs nothing itself: a failed write's
error and traceback come back in its answer, and the parent's logging (format, level,
redaction) reports them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import IO

import msgspec

from appliance.core.aggregation import Batch
from appliance.core.event import Event, event_encoder
from appliance.core.transport import Offset, Position

log = logging.getLogger(__name__)

WRITE_TIMEOUT_S = 120.0  # a flush the child has not taken and answered by then: child killed
CLOSE_TIMEOUT_S = 30.0
EVENTS_PER_CHUNK = 512  # a slice: no one encode holds the GIL for long, no frame is big

_HEADER = struct.Struct(">I")
# Not `-m` this module: the package's __init__ imports it already, and runpy warns.
CHILD_COMMAND = (
    "import sys; from plugins.store_sqlite.writer_process import main; main(sys.argv[1:])"
)


class WriterRequest(msgspec.Struct, array_like=True):
    positions: list[Position]
    chunks: int  # frames of (events, offsets) slices that follow, in order


class WriterAnswer(msgspec.Struct, array_like=True):
    new: bool = False
    error: str = ""  # "Type: message" of a failed write, then the child's traceback


_chunk_decoder = msgspec.msgpack.Decoder(tuple[list[Event], list[Offset]])
_request_decoder = msgspec.msgpack.Decoder(WriterRequest)
_answer_decoder = msgspec.msgpack.Decoder(WriterAnswer)


class WriterProcessError(RuntimeError):
    """The child did not write the flush (it died, hung, or its write failed); the message
    says which. The processor retries the flush."""


class WriterProcess:
    """The parent's side: starts the child, sends it flushes, restarts it after a failure."""

    def __init__(self, path: Path, settle_share: float, settle_min_s: float) -> None:
        self.path = path
        self.settle_share = settle_share
        self.settle_min_s = settle_min_s
        self._child: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one flush at a time on the pipe
        self._closed = False

    @property
    def pid(self) -> int | None:
        return self._child.pid if self._child is not None else None

    def start(self) -> None:
        """Start the child (`write` does when there is none: commands that only read or
        delete never start one)."""
        # -P: the working directory (the data volume in the image) is not on sys.path.
        self._child = subprocess.Popen(
            [sys.executable, "-P", "-c", CHILD_COMMAND, str(self.path), repr(self.settle_share),
             repr(self.settle_min_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, close_fds=True,
            process_group=0,
        )  # fmt: skip
        assert self._child.stdin is not None
        os.set_blocking(self._child.stdin.fileno(), False)  # sends have a deadline too

    def write(self, batch: Batch) -> bool:
        """Have the child apply `batch`; what `apply_batch` returns, or WriterProcessError."""
        events, offsets = batch.events, batch.offsets
        starts = range(0, len(events), EVENTS_PER_CHUNK)
        request = msgspec.msgpack.encode(WriterRequest(batch.positions, len(starts)))
        with self._lock:
            if self._closed:
                raise WriterProcessError("the sqlite store is closed")
            if self._child is None or self._child.poll() is not None:
                self._restart()
            child = self._child
            assert child is not None and child.stdin is not None and child.stdout is not None
            deadline = time.monotonic() + WRITE_TIMEOUT_S
            try:
                _send_frame(child.stdin, request, deadline)
                for i in starts:
                    chunk = (events[i : i + EVENTS_PER_CHUNK], offsets[i : i + EVENTS_PER_CHUNK])
                    _send_frame(child.stdin, event_encoder.encode(chunk), deadline)
                answer = _answer_decoder.decode(_read_frame(child.stdout, deadline))
            except BaseException as error:
                # Whatever happened, the pipe is in an unknown state: never reuse it.
                code = self._kill()
                if not isinstance(error, OSError | EOFError | TimeoutError | msgspec.DecodeError):
                    raise
                raise WriterProcessError(
                    f"sqlite writer process failed ({type(error).__name__}: {error};"
                    f" exit code {code}); the flush is retried with a new one"
                ) from None
        if answer.error:
            raise WriterProcessError(f"sqlite writer process: {answer.error}")
        return answer.new

    def _restart(self) -> None:
        if self._child is not None:
            pid, code = self._child.pid, self._kill()
            log.warning("sqlite writer process %d exited (code %s); starting another", pid, code)
        self.start()

    def _kill(self) -> int | None:
        child = self._child
        if child is None:
            return None
        if child.poll() is None:
            child.kill()
        self._close_pipes(child)
        self._child = None
        return child.wait()

    def close(self) -> None:
        """Close its stdin: it finishes what it is writing and exits. Writes then fail."""
        with self._lock:
            self._closed = True
            child, self._child = self._child, None
        if child is None:
            return
        self._close_pipes(child)
        try:
            child.wait(CLOSE_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("sqlite writer process %d did not exit; killing it", child.pid)
            child.kill()
            child.wait()

    @staticmethod
    def _close_pipes(child: subprocess.Popen[bytes]) -> None:
        for pipe in (child.stdin, child.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):  # a broken pipe: the child is gone
                    pipe.close()


def _wait(stream: IO[bytes], event: int, deadline: float | None) -> None:
    """Until `stream` is ready for `event` (poll: any descriptor number, unlike select)."""
    if deadline is None:
        return
    left = deadline - time.monotonic()
    poller = select.poll()
    poller.register(stream.fileno(), event)
    if left <= 0 or not poller.poll(left * 1000):
        raise TimeoutError("the writer process did not answer in time")


def _send(stream: IO[bytes], data: bytes, deadline: float | None) -> None:
    """All of `data` (the parent's end is non-blocking, so a stuck child can't hold it)."""
    view = memoryview(data)
    while view:
        _wait(stream, select.POLLOUT, deadline)
        view = view[stream.write(view) or 0 :]


def _send_frame(stream: IO[bytes], body: bytes, deadline: float | None) -> None:
    _send(stream, _HEADER.pack(len(body)) + body, deadline)  # one write: bodies are small


def _read_exact(stream: IO[bytes], size: int, deadline: float | None) -> bytes:
    """`size` bytes; TimeoutError past `deadline` (monotonic; None: wait as long as it takes)."""
    data = bytearray()
    while len(data) < size:
        _wait(stream, select.POLLIN, deadline)
        chunk = stream.read(size - len(data))
        if not chunk:
            raise EOFError("the pipe closed")
        data += chunk
    return bytes(data)


def _read_frame(stream: IO[bytes], deadline: float | None) -> bytes:
    (size,) = _HEADER.unpack(_read_exact(stream, _HEADER.size, deadline))
    return _read_exact(stream, size, deadline)


def _read_flush(requests: IO[bytes]) -> tuple[WriterRequest, list[Event], list[Offset]]:
    request = _request_decoder.decode(_read_frame(requests, None))
    events: list[Event] = []
    offsets: list[Offset] = []
    for _ in range(request.chunks):
        part_events, part_offsets = _chunk_decoder.decode(_read_frame(requests, None))
        events += part_events
        offsets += part_offsets
    return request, events, offsets


def serve(path: Path, settle_share: float, settle_min_s: float) -> None:
    """The child: apply each flush read from stdin, answer on stdout, until stdin closes."""
    from plugins.store_sqlite.analytics import apply_batch
    from plugins.store_sqlite.db import Database

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # The answers get a descriptor of their own; stdout becomes stderr, so that nothing
    # printed by accident can garble the protocol.
    requests = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
    answers = open(os.dup(sys.stdout.fileno()), "wb", buffering=0)  # noqa: SIM115
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    db = Database(path)
    try:
        while True:
            try:
                request, events, offsets = _read_flush(requests)
            except EOFError:  # the parent closed the store, or died (maybe mid-flush)
                return
            try:
                new = apply_batch(
                    db, Batch(events, request.positions, offsets=offsets), settle_share,
                    settle_min_s,
                )  # fmt: skip
                answer = WriterAnswer(new=new)
            except Exception as error:  # the parent raises it; this process goes on
                detail = traceback.format_exc()
                answer = WriterAnswer(error=f"{type(error).__name__}: {error}\n{detail}")
            _send_frame(answers, msgspec.msgpack.encode(answer), None)
    finally:
        db.close()


def main(args: list[str]) -> None:
    """The child's entry point: PATH SETTLE_SHARE SETTLE_MIN_S."""
    serve(Path(args[0]), float(args[1]), float(args[2]))
