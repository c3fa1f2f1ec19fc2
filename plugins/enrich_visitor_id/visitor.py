"""The visitor-id enricher and the ring of daily salts it hashes with."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import time
from typing import Any

from appliance.core.enrich import EnrichContext
from appliance.core.event import Event
from appliance.core.stores import call

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _day_name(day_number: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(day_number * 86400))


def utc_day(ts: float) -> str:
    return _day_name(int(ts // 86400))


def visitor_id(salt: bytes, site_id: int, ip: str, user_agent: str) -> str:
    digest = hashlib.blake2b(digest_size=12, key=salt[:64])
    digest.update(f"{site_id}\x00{ip}\x00{user_agent}".encode())
    return digest.hexdigest()


class SaltRing:
    """Today's salt in memory; the account store keeps it so restarts and peers agree."""

    def __init__(self, accounts: Any) -> None:
        self.accounts = accounts
        self._salts: dict[str, bytes] = {}

    async def load(self, now: float | None = None) -> None:
        """Fetch (or create) the salts for today and tomorrow, off the hot path."""
        now = time.time() if now is None else now
        for ts in (now, now + 86400):
            day = utc_day(ts)
            stored = await call(self.accounts.salt_for_day, day, os.urandom(32))
            self._salts[day] = stored
        for day in list(self._salts):
            if day < utc_day(now - 86400):
                del self._salts[day]

    def salt(self, ts: float) -> bytes:
        day = utc_day(ts)
        salt = self._salts.get(day)
        if salt is None:
            # The hourly refresh keeps tomorrow's salt ready, so this means the clock jumped.
            # A salt of our own keeps ingest going; the next refresh replaces it.
            log.warning("no stored visitor salt for %s yet; using a temporary one", day)
            salt = self._salts[day] = os.urandom(32)
        return salt

    async def refresh_forever(self, interval_s: float = 3600) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.load()
            except Exception:
                log.exception("refreshing visitor salts failed")


class VisitorIdEnricher:
    name = "visitor_id"
    order = 900

    def __init__(self, salts: SaltRing) -> None:
        self.salts = salts

    def enrich(self, event: Event, context: EnrichContext) -> Event:
        event.visitor_id = visitor_id(
            self.salts.salt(event.ts), event.site_id, context.client_ip, context.user_agent
        )
        if not event.session_id:
            event.session_id = event.visitor_id
        return event
