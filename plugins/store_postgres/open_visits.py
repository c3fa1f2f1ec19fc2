"""The open visits of the sites this process writes, kept in memory between flushes.

Looking up each session's open visit on every flush was the largest cost of a flush once
the visits outgrew Postgres's buffers (random index and heap reads for every session). A
site is owned by one processor at a time (its events share a partition), so that processor
can remember what it wrote. It must notice when someone else wrote the site meanwhile (a
rebalance moved the partition, a site was deleted): every flush that writes a site's
visits gives it a new random token in `visit_tokens`, in the same transaction. A flush
locks the tokens of its sites and reads the open visits again of each site whose token is
not the one this process wrote last. The memory is changed only after the commit, so a
failed flush leaves it as it was; a commit whose answer was lost leaves a token that no
longer matches, so the next flush reads again. A site this process has not written for an
hour is forgotten (a quiet site, or a partition a rebalance moved away): if it comes back,
its open visits are read again, as for any stale token.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import psycopg

from plugins.store_postgres.visits import OpenVisit, SessionKey

# (site_id, session_id, visit_id) of a visit the flush closed
Closed = tuple[int, str, int]
FORGET_AFTER_S = 3600.0  # sites not written this long leave the memory
PRUNE_EVERY_S = 60.0


@dataclass(slots=True)
class VisitsWritten:
    """What a committed flush changed: applied to the memory by `OpenVisits.committed`."""

    token: int
    sites: list[int]
    latest: dict[SessionKey, OpenVisit]  # each touched session's latest visit, as stored
    closed: list[Closed]


class OpenVisits:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._tokens: dict[int, int] = {}
        self._sessions: dict[int, dict[str, OpenVisit]] = {}  # site -> session -> visit
        self._written_at: dict[int, float] = {}  # site -> when a flush last claimed it
        self._clock = clock
        self._pruned_at = clock()

    def remembers(self, site: int) -> bool:
        return site in self._sessions

    def claim(
        self, conn: psycopg.Connection, sites: list[int]
    ) -> Mapping[int, Mapping[str, OpenVisit]]:
        """Lock the sites' tokens until commit; their open visits, by site and session."""
        conn.execute(
            "INSERT INTO visit_tokens (site_id, token)"
            " SELECT site_id, (random() * 9e18)::bigint FROM unnest(%s::bigint[]) AS site_id"
            " ORDER BY site_id ON CONFLICT DO NOTHING",
            (sites,),
        )
        rows = conn.execute(
            "SELECT site_id, token FROM visit_tokens WHERE site_id = ANY(%s)"
            " ORDER BY site_id FOR UPDATE",
            (sites,),
        ).fetchall()
        tokens = dict(rows)
        now = self._clock()
        for site in sites:
            self._written_at[site] = now
        stale = [site for site in sites if self._tokens.get(site) != tokens.get(site)]
        if stale:
            # Read under the lock, so this is the sites' state at their current token
            # (whether or not this flush commits).
            loaded = _read(conn, stale)
            for site in stale:
                self._sessions[site] = loaded.get(site, {})
                self._tokens[site] = tokens.get(site, -1)
        return {site: self._sessions[site] for site in sites}

    def stamp(self, conn: psycopg.Connection, sites: list[int]) -> int:
        """Give the sites a new token (in the flush's transaction); returns it."""
        token = secrets.randbits(63)
        conn.execute("UPDATE visit_tokens SET token = %s WHERE site_id = ANY(%s)", (token, sites))
        return token

    def committed(self, written: VisitsWritten) -> None:
        """Remember what a flush wrote, once its transaction committed."""
        for (site, session), visit in written.latest.items():
            self._sessions.setdefault(site, {})[session] = visit
        for site, session, visit_id in written.closed:
            sessions = self._sessions.get(site, {})
            if (visit := sessions.get(session)) is not None and visit[0] == visit_id:
                del sessions[session]
        for site in written.sites:
            self._tokens[site] = written.token
        now = self._clock()
        if now - self._pruned_at > PRUNE_EVERY_S:
            self._forget_idle(now)

    def _forget_idle(self, now: float) -> None:
        self._pruned_at = now
        idle = [site for site, at in self._written_at.items() if now - at > FORGET_AFTER_S]
        for site in idle:
            del self._written_at[site]
            self._sessions.pop(site, None)
            self._tokens.pop(site, None)


def _read(conn: psycopg.Connection, sites: list[int]) -> dict[int, dict[str, OpenVisit]]:
    """Each session's latest open visit (a straggler may have left an older one open)."""
    rows = conn.execute(
        "SELECT DISTINCT ON (site_id, session_id) site_id, session_id, visit_id, first_ts,"
        " last_ts FROM visits WHERE site_id = ANY(%s) AND NOT closed"
        " ORDER BY site_id, session_id, last_ts DESC",
        (sites,),
    ).fetchall()
    found: dict[int, dict[str, OpenVisit]] = {}
    for site, session, visit_id, first_ts, last_ts in rows:
        found.setdefault(site, {})[session] = (visit_id, first_ts, last_ts)
    return found
