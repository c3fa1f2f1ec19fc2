"""Fold a flush's events into the JSON plans apply.lua executes: one per site, plus the
appliance-wide part (offsets, coverage).

Keys are listed once per plan and referenced by index, so a cluster routes the call by them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from appliance.core.aggregation import HOUR, MINUTE, bucket_start
from appliance.core.event import PAGEVIEW, Event
from appliance.core.transport import Position
from plugins.store_redis.keys import HOUR_KIND, MINUTE_KIND, Keys, guard_field

DIRECT = "Direct / None"  # the referrer source of an event without one
PFADD_CHUNK = 500  # members per PFADD call (Lua's unpack has a stack limit)


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


@dataclass(slots=True)
class _Gathered:
    """One site's minute while its events are read: sets, and lists counted at the end."""

    newest: float = 0.0
    visitors: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    path_visitors: dict[str, list[str]] = field(default_factory=dict)  # one per pageview
    referrers: list[str] = field(default_factory=list)  # one per pageview
    names: list[str] = field(default_factory=list)  # one per custom event

    def bucket(self) -> _Bucket:
        referrers = Counter(self.referrers)
        if "" in referrers:
            referrers[DIRECT] += referrers.pop("")
        return _Bucket(
            pageviews=len(self.referrers),
            events=len(self.names),
            names=Counter(self.names),
            visitors=self.visitors,
            sessions=self.sessions,
            paths=Counter({path: len(seen) for path, seen in self.path_visitors.items()}),
            referrers=referrers,
            path_visitors={path: set(seen) for path, seen in self.path_visitors.items()},
        )


@dataclass(slots=True)
class SiteFold:
    """One site's events of a flush, folded per minute (start -> bucket)."""

    minutes: dict[int, _Bucket] = field(default_factory=dict)
    newest: float = 0.0  # the newest event's time


def fold_sites(events: Iterable[Event]) -> dict[int, SiteFold]:
    """Each site's events folded per minute, in one pass that reads each event once: the
    processor hands a flush's events over long after decoding them, out of the CPU's caches,
    and a pass per counter cost a cache miss per event each."""
    sites: dict[int, dict[float, _Gathered]] = {}
    for event in events:
        minutes = sites.get(event.site_id)
        if minutes is None:
            minutes = sites[event.site_id] = {}
        ts = event.ts
        gathered = minutes.get(ts // MINUTE)
        if gathered is None:
            gathered = minutes[ts // MINUTE] = _Gathered()
        if ts > gathered.newest:
            gathered.newest = ts
        visitor = event.visitor_id
        gathered.visitors.add(visitor)
        gathered.sessions.add(event.session_id)
        if event.name == PAGEVIEW:
            seen = gathered.path_visitors.get(event.path)
            if seen is None:
                gathered.path_visitors[event.path] = [visitor]
            else:
                seen.append(visitor)
            gathered.referrers.append(event.referrer_source)
        else:
            gathered.names.append(event.name)
    return {
        site: SiteFold(
            {int(minute) * MINUTE: part.bucket() for minute, part in minutes.items()},
            max(part.newest for part in minutes.values()),
        )
        for site, minutes in sites.items()
    }


def site_plan(
    keys: Keys,
    keylist: KeyList,
    site_id: int,
    fold: SiteFold,
    positions: Sequence[Position],
    retention: Retention,
) -> dict[str, Any]:
    """The plan that adds a site's folded events to its buckets, guarded by `positions`."""
    hours: dict[int, _Bucket] = {}
    for start, minute in fold.minutes.items():
        hours.setdefault(bucket_start(start, HOUR), _Bucket()).merge(minute)
    ops = _Ops(keylist)
    for kind, width, ttl, buckets in (
        (MINUTE_KIND, MINUTE, retention.minute_ttl_s, fold.minutes),
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
        "ts": repr(fold.newest),
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
    keys: Keys, keylist: KeyList, folds: Iterable[SiteFold], positions: Sequence[Position]
) -> dict[str, Any]:
    """Advance the appliance-wide offsets and coverage once every site holds the batch
    (`folds`: every site's fold of the whole batch)."""
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
    folds = [fold for fold in folds if fold.minutes]
    if folds:
        plan["watermark"] = repr(max(fold.newest for fold in folds))
        # The oldest event's minute may hold events Redis never got: complete from the next.
        plan["since"] = str(min(min(fold.minutes) for fold in folds) + MINUTE)
    return plan
