"""Periods in the site's time zone: local midnights, DST-length days, custom ranges."""

from __future__ import annotations

from datetime import datetime

import pytest

from appliance.core.aggregation import DAY, HOUR, MINUTE
from appliance.core.periods import PeriodError, parse_range


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


NOW = ts("2026-03-30T10:15:30+00:00")  # the Monday after Europe's spring-forward Sunday


def iso(value: int, tz: str = "UTC") -> str:
    from zoneinfo import ZoneInfo

    return datetime.fromtimestamp(value, ZoneInfo(tz)).isoformat()


def test_utc_periods() -> None:
    today = parse_range("today", now=NOW)
    assert (iso(today.start), today.interval) == ("2026-03-30T00:00:00+00:00", HOUR)
    assert today.end == ts("2026-03-30T10:16:00+00:00")  # past now, minute-aligned
    realtime = parse_range("realtime", now=NOW)
    assert (realtime.end - realtime.start, realtime.interval) == (30 * MINUTE, MINUTE)
    assert len(parse_range("24h", now=NOW).buckets()) == 24
    week = parse_range("7d", now=NOW)
    assert iso(week.start) == "2026-03-24T00:00:00+00:00" and len(week.buckets()) == 7


def test_local_today_and_dst_days() -> None:
    today = parse_range("today", now=NOW, tz="Europe/Berlin")
    assert iso(today.start, "Europe/Berlin") == "2026-03-30T00:00:00+02:00"
    week = parse_range("7d", now=NOW, tz="Europe/Berlin")
    starts = week.buckets()
    assert [iso(s, "Europe/Berlin")[:10] for s in starts] == [
        "2026-03-24", "2026-03-25", "2026-03-26", "2026-03-27", "2026-03-28", "2026-03-29",
        "2026-03-30",
    ]  # fmt: skip
    lengths = [b - a for a, b in zip(starts, starts[1:], strict=False)]
    assert lengths.count(23 * HOUR) == 1 and lengths.count(DAY) == 5  # 29 March had 23 hours
    assert parse_range("today", now=NOW, tz="Asia/Kolkata").start == ts("2026-03-29T18:30:00+00:00")


def test_custom_dates_are_whole_local_days() -> None:
    custom = parse_range(None, "2026-03-01", "2026-03-03", "day", now=NOW, tz="America/New_York")
    assert iso(custom.start, "America/New_York") == "2026-03-01T00:00:00-05:00"
    assert iso(custom.end, "America/New_York") == "2026-03-04T00:00:00-05:00"
    assert custom.interval == DAY and len(custom.buckets()) == 3
    exact = parse_range(None, "2026-03-01T10:00:00Z", "2026-03-01T11:00:00Z", now=NOW)
    assert (exact.interval, len(exact.buckets())) == (MINUTE, 60)
    assert exact.previous().end == exact.start


def test_errors_name_the_parameter() -> None:
    with pytest.raises(PeriodError, match="timezone"):
        parse_range("today", tz="Mars/Olympus")
    with pytest.raises(PeriodError, match="^period"):
        parse_range("yesterday")
