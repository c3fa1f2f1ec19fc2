"""Turn a request body into accepted, enriched events handed to the transport.

Nothing here reads a database: the domain comes from the in-memory site cache, enrichers
are pure functions, and the transport's publish never blocks. The only awaits are a shared
rate limiter (from memory, except a lease from Redis now and then) and, with Kafka, the
broker's acknowledgement.
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from appliance.core.accounts import Site
from appliance.core.enrich import EnrichContext, Enricher
from appliance.core.event import Event, IncomingEvent, decode_events, make_decoder
from appliance.core.ratelimit import RateLimited, RateLimiter
from appliance.core.sites import SiteCache
from appliance.core.transport import Transport, TransportUnavailable


class UnknownDomain(LookupError):
    def __init__(self, domain: str) -> None:
        super().__init__(f"domain: {domain!r} is not a registered site")


@dataclass(slots=True)
class IngestStats:
    accepted: int = 0
    filtered: int = 0
    rejected: int = 0
    overloaded: int = 0
    rate_limited: int = 0


@dataclass(frozen=True, slots=True)
class IngestResult:
    accepted: int
    filtered: int


class IngestPipeline:
    def __init__(
        self,
        sites: SiteCache,
        enrichers: Sequence[Enricher],
        transport: Transport,
        max_batch_events: int,
        address_pseudonym: Callable[[str], str],
        per_ip: RateLimiter | None = None,
        per_site: RateLimiter | None = None,
    ) -> None:
        self.sites = sites
        self.per_ip = per_ip
        self.per_site = per_site
        self.address_pseudonym = address_pseudonym
        self.enrichers = sorted(enrichers, key=lambda enricher: enricher.order)
        self.transport = transport
        self.decoder = make_decoder(max_batch_events)
        self.stats = IngestStats()

    async def accept(self, body: bytes, client_ip: str, user_agent: str) -> IngestResult:
        """Validate the whole body first: a request is taken entirely or not at all.

        Raises EventDecodeError, UnknownDomain or RateLimited (nothing published), or
        TransportFull / TransportUnavailable (the transport did not take the events). Returns
        only once the transport holds the events durably.
        """
        incoming = decode_events(self.decoder, body)
        if self.per_ip is not None:
            key = self.address_pseudonym(client_ip)
            await self._limit(self.per_ip, key, len(incoming), "address")
        sites = []
        for item in incoming:
            site = self.sites.lookup(item.domain)
            if site is None:
                raise UnknownDomain(item.domain)
            sites.append(site)
        if self.per_site is not None:
            await self._limit_sites(sites)
        now = time.time()
        events = []
        filtered = 0
        for item, site in zip(incoming, sites, strict=True):
            context = EnrichContext(item, client_ip, user_agent, site.domain)
            event = self._enrich(_new_event(item, site.id, now), context)
            if event is None:
                filtered += 1
            else:
                events.append(event)
        if events:
            acknowledgement = self.transport.publish(events)
            if acknowledgement is not None and (problem := await acknowledgement):
                self.stats.overloaded += 1
                raise TransportUnavailable(f"transport: the events were not taken ({problem})")
        self.stats.accepted += len(events)
        self.stats.filtered += filtered
        return IngestResult(accepted=len(events), filtered=filtered)

    async def _limit_sites(self, sites: list[Site]) -> None:
        """One spend per site the request names (usually one), costing its event count."""
        assert self.per_site is not None
        counts: dict[int, int] = {}
        for site in sites:
            counts[site.id] = counts.get(site.id, 0) + 1
        for site_id, count in counts.items():
            await self._limit(self.per_site, str(site_id), count, "site")

    async def _limit(self, limiter: RateLimiter, key: str, cost: int, scope: str) -> None:
        wait = await limiter.acquire(key, cost)
        if wait:
            self.stats.rate_limited += 1
            raise RateLimited(scope, retry_after_s=max(1, round(wait + 0.5)))

    def _enrich(self, event: Event, context: EnrichContext) -> Event | None:
        for enricher in self.enrichers:
            result = enricher.enrich(event, context)
            if result is None:
                return None
            event = result
        return event


class EventIds:
    """Unique event ids without a system call per event (os.urandom was one per request).

    64 random bits per process (drawn again in a forked child) then a 64-bit counter: as
    unique across the serve processes of a deployment as uuid4, sequential within one.
    """

    def __init__(self) -> None:
        self.reseed()
        os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self._prefix = os.urandom(8).hex()
        self._counter = itertools.count()

    def next(self) -> str:
        return f"{self._prefix}{next(self._counter):016x}"


new_event_id = EventIds().next


def _new_event(item: IncomingEvent, site_id: int, now: float) -> Event:
    viewport = item.viewport
    return Event(
        event_id=new_event_id(),
        ts=now,
        site_id=site_id,
        name=item.name,
        path=item.path,
        session_id=item.sessionId or "",
        referrer=item.referrer or "",
        url=item.url or "",
        title=item.title or "",
        screen_width=viewport.width if viewport else 0,
        screen_height=viewport.height if viewport else 0,
        props=dict(item.props) if item.props else {},
    )
