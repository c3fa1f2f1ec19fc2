"""The ingest's domain lookup: an in-memory map refreshed when sites change, never per event."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from appliance.core.accounts import Site, normalize_domain
from appliance.core.stores import call

log = logging.getLogger(__name__)


class SiteCache:
    def __init__(self, accounts: Any, refresh_interval_s: float = 1.0) -> None:
        self.accounts = accounts
        self.refresh_interval_s = refresh_interval_s
        self._by_domain: dict[str, Site] = {}
        self._version: Any = None
        self._task: asyncio.Task[None] | None = None

    def lookup(self, domain: str) -> Site | None:
        site = self._by_domain.get(domain)
        if site is None:
            # Tracker domains arrive as typed by the site owner: "WWW.Example.com".
            try:
                site = self._by_domain.get(normalize_domain(domain))
            except ValueError:
                return None
        return site

    async def refresh(self, force: bool = False) -> None:
        """Reload the map when the store says sites changed (or always, when forced)."""
        version = await call(self.accounts.sites_version)
        if force or version != self._version:
            sites = await call(self.accounts.all_sites)
            self._by_domain = {site.domain: site for site in sites}
            self._version = version

    async def start(self) -> None:
        await self.refresh(force=True)
        self._task = asyncio.create_task(self._refresh_forever(), name="site-cache")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _refresh_forever(self) -> None:
        # Other processes (the CLI, other app instances) change sites too.
        while True:
            await asyncio.sleep(self.refresh_interval_s)
            try:
                await self.refresh()
            except Exception:
                log.exception("refreshing the site cache failed; keeping the previous one")
