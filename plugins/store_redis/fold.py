"""Fold a flush's events into the JSON plans apply.lua executes: one per site, plus the
appliance-wide part (offsets, coverage).

Keys are listed once per plan and referenced by index, so a cluster routes the call by them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

from appliance.core.aggregation import HOUR, MINUTE, bucket_start
from appliance.core.event import PAGEVIEW, Event
from appliance.core.transport import Position
from plugins.store_redis.keys import HOUR_KIND, MINUTE_KIND, Keys, guard_field

DIRECT = "Direct / None"  # the referrer source of an event without one
PFADD_CHUNK = 500  # members per PFADD call (Lua's unpack has a stack limit)

_TS = attrgetter("ts")
_VISITOR = attrgetter("visitor_id")
_SESSION = attrgetter("session_id")
_REFERRER_SOURCE = attrgetter("referrer_source")


@dataclass(frozen=True, slots=True)
class Retention:
    minute_ttl_s: int
    hour_ttl_s: int


@dataclass(slots=True)
class KeyList:
    """KEYS of one script call, each listed once; `ref` gives a key's 1-based index."""

    keys: list[str] = field(default_factory=list)
    _index: dict[str, int] = field(default_factory=dict)

    def ref(self, key: str) -> int:
        index = self._index.get(key)
        if index is None:
            self.keys.append(key)
            index = self._index[key] = len(self.keys)
        return index


@dataclass(slots=True)
class SitePlan:
    site_id: int
    keys: KeyList
    plan: dict[str, Any]


def group_by_site(events: Sequence[Event]) -> dict[int, list[Event]]:
    groups: defaultdict[int, list[Event]] = defaultdict(list)
    for event in events:
        groups[event.site_id].append(event)
    return groups


@dataclass(slots=True)
class _Bucket:
    """One site's minute or hour, folded from events (sets and counters, no key strings)."""

    pageviews: int = 0
    events: int = 0
    names: Counter[str] = field(default_factory=Counter)
    visitors: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    paths: Counter[str] = field(default_factory=Counter)
    referrers: Counter[str] = field(default_factory=Counter)
    path_visitors: dict[str, set[str]] = field(default_factory=dict)

    def merge(self, other: _Bucket) -> None:
        """Add a minute into its hour (per-path visitors are kept per minute only)."""
        self.pageviews += other.pageviews
        self.events += other.events
        self.names.update(other.names)
        self.visitors |= other.visitors
        self.sessions |= other.sessions
        self.paths.update(other.paths)
        self.referrers.update(other.referrers)


def _fold_minutes(events: Sequence[Event]) -> tuple[dict[int, _Bucket], float]:
    """The events' minutes. Each minute's events are gathered first and then folded with
    `map`, `set` and `Counter` over attribute getters, which loop in C: a Python loop over
    every event and each of its counters was most of a Redis write's time in the processor."""
    by_minute: defaultdict[float, list[Event]] = defaultdict(list)
    for event in events:
        by_minute[event.ts // MINUTE].append(event)
    minutes = {int(minute) * MINUTE: _fold_minute(part) for minute, part in by_minute.items()}
    return minutes, max(map(_TS, events), default=0.0)


def _fold_minute(events: list[Event]) -> _Bucket:
    pageviews = [event for event in events if event.name == PAGEVIEW]
    visitors_by_path: defaultdict[str, list[str]] = defaultdict(list)
    for event in pageviews:
        visitors_by_path[event.path].append(event.visitor_id)
    referrers = Counter(map(_REFERRER_SOURCE, pageviews))
    if "" in referrers:
        referrers[DIRECT] += referrers.pop("")
    return _Bucket(
        pageviews=len(pageviews),
        events=len(events) - len(pageviews),
        names=Counter(event.name for event in events if event.name != PAGEVIEW),
        visitors=set(map(_VISITOR, events)),
        sessions=set(map(_SESSION, events)),
        paths=Counter({path: len(seen) for path, seen in visitors_by_path.items()}),
        referrers=referrers,
        path_visitors={path: set(seen) for path, seen in visitors_by_path.items()},
    )


def site_plan(
    keys: Keys,
    keylist: KeyList,
    site_id: int,
    events: Sequence[Event],
    positions: Sequence[Position],
    retention: Retention,
) -> dict[str, Any]:
    """The plan that adds `events` (all of one site) to its buckets, guarded by `positions`."""
    minutes, newest = _fold_minutes(events)
    hours: dict[int, _Bucket] = {}
    for start, minute in minutes.items():
        hours.setdefault(bucket_start(start, HOUR), _Bucket()).merge(minute)
    ops = _Ops(keylist)
    for kind, width, ttl, buckets in (
        (MINUTE_KIND, MINUTE, retention.minute_ttl_s, minutes),
        (HOUR_KIND, HOUR, retention.hour_ttl_s, hours),
    ):
        for start, bucket in buckets.items():
            expires_at = start + width + ttl
            ops.bucket(keys, site_id, kind, start, bucket, expires_at)
            if kind == MINUTE_KIND:
                for path, seen in bucket.path_visitors.items():
                    ops.pfadd(keys.path_visitors(site_id, start, path), seen, expires_at)
    return {
        "guard": keylist.ref(keys.site_guard(site_id)),
        "latest": keylist.ref(keys.latest(site_id)),
        "ts": repr(newest),
        "guard_ttl": retention.hour_ttl_s,
        "pos": [[guard_field(p.topic, p.partition), str(p.first), str(p.last)] for p in positions],
        "hincr": ops.hincr,
        "pfadd": ops.pfadds,
        "zincr": ops.zincr,
        "expire": ops.expire,
    }


class _Ops:
    """apply.lua's operation lists, with keys turned into indices once per key."""

    def __init__(self, keylist: KeyList) -> None:
        self.keylist = keylist
        self.hincr: list[list[Any]] = []
        self.pfadds: list[list[Any]] = []
        self.zincr: list[list[Any]] = []
        self.expire: list[list[Any]] = []

    def bucket(
        self, keys: Keys, site: int, kind: str, start: int, bucket: _Bucket, expires_at: int
    ) -> None:
        counts = self._key(keys.counts(site, kind, start), expires_at)
        if bucket.pageviews:
            self.hincr.append([counts, "pageviews", bucket.pageviews])
        if bucket.events:
            self.hincr.append([counts, "events", bucket.events])
        for name, count in bucket.names.items():
            self.hincr.append([counts, f"e:{name}", count])
        self.pfadd(keys.visitors(site, kind, start), bucket.visitors, expires_at)
        self.pfadd(keys.sessions(site, kind, start), bucket.sessions, expires_at)
        for key, counter in (
            (keys.paths(site, kind, start), bucket.paths),
            (keys.referrers(site, kind, start), bucket.referrers),
        ):
            if counter:
                ref = self._key(key, expires_at)
                self.zincr.extend([ref, member, n] for member, n in counter.items())

    def pfadd(self, key: str, members: set[str], expires_at: int) -> None:
        ref = self._key(key, expires_at)
        ordered = list(members)
        for i in range(0, len(ordered), PFADD_CHUNK):
            self.pfadds.append([ref, ordered[i : i + PFADD_CHUNK]])

    def _key(self, key: str, expires_at: int) -> int:
        ref = self.keylist.ref(key)
        self.expire.append([ref, expires_at])
        return ref


def global_plan(
    keys: Keys, keylist: KeyList, events: Sequence[Event], positions: Sequence[Position]
) -> dict[str, Any]:
    """Advance the appliance-wide offsets and coverage once every site holds the batch."""
    last: dict[tuple[str, str], int] = {}
    for p in positions:
        last[(p.topic, p.partition)] = max(last.get((p.topic, p.partition), -1), p.last)
    plan: dict[str, Any] = {
        "offsets": [
            [keylist.ref(keys.offsets(topic)), partition, str(offset)]
            for (topic, partition), offset in last.items()
        ],
        "meta": keylist.ref(keys.meta()),
    }
    if events:
        plan["watermark"] = repr(max(map(_TS, events)))
        # The oldest event's minute may hold events Redis never got: complete from the next.
        plan["since"] = str(bucket_start(min(map(_TS, events)), MINUTE) + MINUTE)
    return plan
