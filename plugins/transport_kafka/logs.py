"""Client errors in the log without flooding it: a broker that is down repeats every second."""

from __future__ import annotations

import logging
import time


class ThrottledLog:
    """Logs each kind of message at once, then at most once per `interval_s` with a count."""

    def __init__(self, logger: logging.Logger, interval_s: float = 30.0) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def log(self, level: int, kind: str, message: str, *args: object) -> None:
        now = time.monotonic()
        if now - self._last.get(kind, -self.interval_s) < self.interval_s:
            self._suppressed[kind] = self._suppressed.get(kind, 0) + 1
            return
        self._last[kind] = now
        repeats = self._suppressed.pop(kind, 0)
        if repeats:
            message += f" (and {repeats} more like it in the last {self.interval_s:.0f} s)"
        self.logger.log(level, message, *args)
