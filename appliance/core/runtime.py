"""The running appliance: settings, plugins and the objects they registered, wired once."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from appliance.core.auth import AuthProvider
from appliance.core.enrich import Enricher
from appliance.core.ingest import IngestPipeline
from appliance.core.panels import Panel
from appliance.core.plugins import await_me_maybe, build_plugin_manager, flatten
from appliance.core.privacy import address_pseudonym
from appliance.core.processor import Processor
from appliance.core.query import QueryLayer
from appliance.core.ratelimit import RateLimiter, TokenBuckets
from appliance.core.settings import (
    SettingsError,
    apply_defaults,
    core_problems,
    load_settings,
    secret_key,
)
from appliance.core.sites import SiteCache
from appliance.core.stores import Store, call

log = logging.getLogger(__name__)


class Appliance:
    """Build with `Appliance.create()`; `start()`/`stop()` bracket serving or processing."""

    def __init__(self, settings: Any, extra_plugins: tuple[Any, ...] = ()) -> None:
        self.settings = settings
        self.manager, self.plugins = build_plugin_manager(settings, extra_plugins)
        hook = self.manager.hook
        for defaults in hook.settings_defaults():
            apply_defaults(settings, defaults)
        problems = core_problems(settings) + flatten(hook.validate_settings(settings=settings))
        if problems:
            raise SettingsError(problems[0])
        self.secret_key = secret_key(settings)
        self.address_pseudonym = address_pseudonym(self.secret_key)

        self.accounts = hook.register_account_store(appliance=self)
        if self.accounts is None:
            raise SettingsError(
                f"ACCOUNT_STORE: no enabled plugin provides {settings.account_store!r}"
            )
        self.stores: list[Store] = flatten(hook.register_stores(appliance=self))
        missing = set(settings.stores) - {store.name for store in self.stores}
        if missing:
            raise SettingsError(f"STORES: no enabled plugin provides {', '.join(sorted(missing))}")
        self.transport = hook.register_transport(appliance=self)
        if self.transport is None:
            raise SettingsError(f"TRANSPORT: no enabled plugin provides {settings.transport!r}")
        self.enrichers: list[Enricher] = sorted(
            flatten(hook.register_enrichers(appliance=self)), key=lambda e: e.order
        )
        self.auth_providers: list[AuthProvider] = sorted(
            flatten(hook.register_auth_providers(appliance=self)), key=lambda p: p.order
        )
        self.panels: list[Panel] = sorted(
            flatten(hook.register_panels(appliance=self)), key=lambda p: p.order
        )
        self.sites = SiteCache(self.accounts)
        limits = settings.ingest
        self.ingest = IngestPipeline(
            self.sites,
            self.enrichers,
            self.transport,
            limits.max_batch_events,
            per_ip=self._rate_limiter("address", limits.rate_limit_per_ip, limits.burst_per_ip),
            per_site=self._rate_limiter("site", limits.rate_limit_per_site, limits.burst_per_site),
            address_pseudonym=self.address_pseudonym,
        )
        self.query = QueryLayer(self.stores)
        self.processor = Processor(
            self.transport,
            self.stores,
            flush_interval_s=settings.processor.flush_interval_ms / 1000,
            max_batch_events=settings.processor.max_batch_events,
        )
        self._tasks: list[asyncio.Task[Any]] = []
        self._processor_task: asyncio.Task[None] | None = None

    def _rate_limiter(self, scope: str, rate: float, burst: float) -> RateLimiter | None:
        """None when the limit is off; a plugin's shared limiter, else this process's own."""
        if rate <= 0:
            return None
        shared = self.manager.hook.register_rate_limiter(
            appliance=self, scope=scope, rate=rate, burst=burst
        )
        return shared if shared is not None else TokenBuckets(rate, burst)

    @classmethod
    def create(cls, extra_plugins: tuple[Any, ...] = (), **overrides: Any) -> Appliance:
        return cls(load_settings(**overrides), extra_plugins)

    async def open_stores(self) -> None:
        """Open (and migrate) the account store and every analytics store; when one fails,
        close those already opened before the error goes on."""
        opened: list[Any] = []
        try:
            for store in [self.accounts, *self.stores]:
                await call(store.open)
                opened.append(store)
        except BaseException:
            for store in reversed(opened):
                try:
                    await call(store.close)
                except Exception:
                    log.exception("closing a store after another failed to open")
            raise

    async def close_stores(self) -> None:
        for store in self.stores:
            await call(store.close)
        await call(self.accounts.close)

    async def start(self, serve: bool = True, process: bool | None = None) -> None:
        """Open stores, start the transport, the site cache and (if asked) the processor.

        Whether `serve` also processes is `processor.embedded`; a shared transport's profile
        (Kafka) turns it off and runs `appliance process` instead.
        """
        await self.open_stores()
        try:
            await self.transport.start()
            if serve:
                await self.sites.start()
            if process is None:
                process = self.settings.processor.embedded
            if process:
                # TransportUnavailable if the broker never answers
                await self.processor.subscribe()
                self._processor_task = asyncio.create_task(self.processor.run(), name="processor")
            for result in self.manager.hook.startup(appliance=self):
                await await_me_maybe(result)
        except BaseException:
            # Nobody calls stop() after a failed start: release what it had opened (a
            # store's connections, the SQLite writer process) before the error goes on.
            await self._abandon_start()
            raise

    async def _abandon_start(self) -> None:
        # The processor, and what the startup hooks that ran had started.
        processor = [self._processor_task] if self._processor_task else []
        await _cancel([*processor, *self._tasks])
        self._processor_task = None
        self._tasks.clear()
        for release in (self.transport.close, self.sites.stop, self.close_stores):
            try:
                await release()
            except Exception:
                log.exception("releasing what a failed start had opened")

    async def stop(self) -> None:
        """Flush everything accepted, then close; the order matters for 'lose nothing'."""
        await self.transport.stop()
        if self._processor_task is not None:
            self.processor.stop()
            await self._processor_task
            self._processor_task = None
        await self.transport.close()  # after the processor's last commit
        for result in self.manager.hook.shutdown(appliance=self):
            await await_me_maybe(result)
        await self.sites.stop()
        await _cancel(self._tasks)
        self._tasks.clear()
        await self.close_stores()

    def background(self, coroutine: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a plugin's long-lived task; it is cancelled when the appliance stops."""
        self._tasks.append(asyncio.create_task(coroutine, name=name))


async def _cancel(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel the tasks and wait for them; one that had failed is logged, not raised (what
    comes after, closing the stores, must still run)."""
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.exception("background task %s had failed", task.get_name())
