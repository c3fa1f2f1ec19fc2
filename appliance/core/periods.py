"""Turn `period=7d` or `from=...&to=...` into an exact, bucket-aligned time range."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from appliance.core.aggregation import DAY, HOUR, MINUTE

INTERVALS = {"minute": MINUTE, "hour": HOUR, "day": DAY}
PERIODS = ("realtime", "today", "24h", "7d", "30d")
DEFAULT_INTERVAL = {"realtime": "minute", "today": "hour", "24h": "hour", "7d": "day", "30d": "day"}
MAX_POINTS = 1500
MAX_SPAN_S = 400 * DAY


class PeriodError(ValueError):
    """A period, from/to or interval parameter is unusable; the message names it."""


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: int  # inclusive, epoch seconds, minute-aligned
    end: int  # exclusive, epoch seconds, minute-aligned
    interval: int  # bucket width in seconds for time series

    def previous(self) -> TimeRange:
        """The range of the same length just before this one (for comparisons)."""
        span = self.end - self.start
        return TimeRange(self.start - span, self.start, self.interval)

    def buckets(self) -> list[int]:
        return list(range(self.start, self.end, self.interval))


def _floor(ts: float, width: int) -> int:
    return int(ts // width) * width


def _ceil(ts: float, width: int) -> int:
    return int(math.ceil(ts / width)) * width


def _parse_time(name: str, raw: str) -> float:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise PeriodError(f"{name}: {raw!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def parse_range(
    period: str | None,
    start: str | None = None,
    end: str | None = None,
    interval: str | None = None,
    now: float | None = None,
) -> TimeRange:
    now_ts = datetime.now(UTC).timestamp() if now is None else now
    # One minute past now, so events of the current second are always inside the range.
    ceiling = _ceil(now_ts + 1, MINUTE)
    if start or end:
        if not (start and end):
            raise PeriodError("from/to: give both, as ISO 8601 times")
        low = _floor(_parse_time("from", start), MINUTE)
        high = _ceil(_parse_time("to", end), MINUTE)
        if high <= low:
            raise PeriodError("to: must be after from")
        if high - low > MAX_SPAN_S:
            raise PeriodError(f"from/to: the range may span at most {MAX_SPAN_S // DAY} days")
        span = high - low
        default = "minute" if span <= 2 * HOUR else "hour" if span <= 3 * DAY else "day"
    else:
        name = period or "today"
        if name == "realtime":
            low, high = ceiling - 30 * MINUTE, ceiling
        elif name == "today":
            low, high = _floor(now_ts, DAY), ceiling
        elif name == "24h":
            low, high = _floor(now_ts, HOUR) - 23 * HOUR, ceiling
        elif name in ("7d", "30d"):
            days = int(name[:-1])
            low, high = _floor(now_ts, DAY) - (days - 1) * DAY, ceiling
        else:
            raise PeriodError(f"period: {name!r} is not one of {', '.join(PERIODS)}")
        default = DEFAULT_INTERVAL[name]
    chosen = interval or default
    if chosen not in INTERVALS:
        raise PeriodError(f"interval: {chosen!r} is not one of {', '.join(INTERVALS)}")
    width = INTERVALS[chosen]
    if (high - low) / width > MAX_POINTS:
        raise PeriodError(f"interval: {chosen} gives more than {MAX_POINTS} points for this range")
    return TimeRange(low, high, width)
