"""Turn `period=7d` or `from=...&to=...` into an exact time range in the site's time zone.

"Today" and day buckets follow the site's local midnights (so a day can last 23 or 25 hours
around daylight-saving changes); minute and hour buckets are fixed widths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from appliance.core.aggregation import DAY, HOUR, MINUTE

INTERVALS = {"minute": MINUTE, "hour": HOUR, "day": DAY}
PERIODS = ("realtime", "today", "24h", "7d", "30d")
DEFAULT_INTERVAL = {"realtime": "minute", "today": "hour", "24h": "hour", "7d": "day", "30d": "day"}
MAX_POINTS = 1500
MAX_SPAN_S = 400 * DAY


class PeriodError(ValueError):
    """A period, from/to or interval parameter is unusable; the message names it."""


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise PeriodError(f"timezone: {name!r} is not a known time zone") from None


def local_midnight(day: date, tz: ZoneInfo) -> int:
    return int(datetime.combine(day, time(0), tzinfo=tz).timestamp())


@dataclass(frozen=True, slots=True)
class TimeRange:
    start: int  # inclusive, epoch seconds
    end: int  # exclusive, epoch seconds
    interval: int  # bucket width in seconds for time series (DAY: local days)
    tz: str = "UTC"

    def previous(self) -> TimeRange:
        """The range of the same length just before this one (for comparisons)."""
        span = self.end - self.start
        return TimeRange(self.start - span, self.start, self.interval, self.tz)

    def buckets(self) -> list[int]:
        """Start of every time-series bucket; the last one ends at `end`."""
        if self.interval < DAY:
            return list(range(self.start, self.end, self.interval))
        tz = zone(self.tz)
        day = datetime.fromtimestamp(self.start, tz).date()
        starts = []
        while (midnight := local_midnight(day, tz)) < self.end:
            starts.append(max(midnight, self.start))
            day += timedelta(days=1)
        return starts


def _ceil(ts: float, width: int) -> int:
    return int(math.ceil(ts / width)) * width


def _parse_time(name: str, raw: str, tz: ZoneInfo) -> float:
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise PeriodError(f"{name}: {raw!r} is not an ISO 8601 date or time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)  # a bare date or time means the site's local time
    return moment.timestamp()


def parse_range(
    period: str | None,
    start: str | None = None,
    end: str | None = None,
    interval: str | None = None,
    now: float | None = None,
    tz: str = "UTC",
) -> TimeRange:
    local = zone(tz)
    now_ts = datetime.now(local).timestamp() if now is None else now
    today = datetime.fromtimestamp(now_ts, local).date()
    # One minute past now, so events of the current second are always inside the range.
    ceiling = _ceil(now_ts + 1, MINUTE)
    if start or end:
        if not (start and end):
            raise PeriodError("from/to: give both, as ISO 8601 dates or times")
        low = int(_parse_time("from", start, local)) // MINUTE * MINUTE
        high = _ceil(_parse_time("to", end, local), MINUTE)
        if len(end) == 10:  # a bare date "to=2026-11-30" includes that whole day
            high = local_midnight(date.fromisoformat(end) + timedelta(days=1), local)
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
            low, high = local_midnight(today, local), ceiling
        elif name == "24h":
            this_hour = datetime.fromtimestamp(now_ts, local).replace(minute=0, second=0)
            low, high = int(this_hour.timestamp()) - 23 * HOUR, ceiling
        elif name in ("7d", "30d"):
            days = int(name[:-1])
            low, high = local_midnight(today - timedelta(days=days - 1), local), ceiling
        else:
            raise PeriodError(f"period: {name!r} is not one of {', '.join(PERIODS)}")
        default = DEFAULT_INTERVAL[name]
    chosen = interval or default
    if chosen not in INTERVALS:
        raise PeriodError(f"interval: {chosen!r} is not one of {', '.join(INTERVALS)}")
    width = INTERVALS[chosen]
    if (high - low) / width > MAX_POINTS:
        raise PeriodError(f"interval: {chosen} gives more than {MAX_POINTS} points for this range")
    return TimeRange(low, high, width, tz)
