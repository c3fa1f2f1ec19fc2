"""Every hook the appliance calls, grouped by family.

Hooks are called at start-up (or on a lifecycle event), never per event: `register_*`
hooks return objects the hot path then calls directly. A hook may be a plain function or a
coroutine function; the caller awaits the result when needed. Implementations must not give
their arguments default values (pluggy would not pass them).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from prometheus_client.registry import Collector

    from appliance.core.accounts import AccountStore
    from appliance.core.auth import AuthProvider
    from appliance.core.checks import Check
    from appliance.core.enrich import Enricher
    from appliance.core.panels import Panel
    from appliance.core.ratelimit import RateLimiter
    from appliance.core.runtime import Appliance
    from appliance.core.stores import Store
    from appliance.core.transport import Transport

hookspec = pluggy.HookspecMarker("appliance")


# --- settings -------------------------------------------------------------------------


@hookspec
def settings_defaults() -> dict[str, Any]:
    """Declare a plugin's settings and their default values.

    Called once, before settings are validated. Returns a mapping of top-level keys (or
    sections, as nested mappings) to defaults; values the user configured always win.
    Every plugin's result is applied.
    """


@hookspec
def validate_settings(settings: Any) -> list[str]:
    """Check the settings a plugin reads.

    Called once at start-up, after defaults are applied, with the Dynaconf settings object.
    Returns a list of problems, each one line naming the key (``"REDIS.URL: missing"``);
    any problem stops start-up with that line. Every plugin's result is collected.
    """


# --- stores and sinks -----------------------------------------------------------------


@hookspec(firstresult=True)
def register_account_store(appliance: Appliance) -> AccountStore | None:
    """Provide the store of users, sites, memberships, API keys and login sessions.

    Called once at start-up. Return an object implementing
    :class:`appliance.core.accounts.AccountStore` when ``settings.account_store`` names
    this plugin's store, else None. Stops at the first non-None result.
    """


@hookspec
def register_stores(appliance: Appliance) -> list[Store]:
    """Provide analytics stores (sinks that may also answer queries).

    Called once at start-up, after the account store exists. Return the stores this
    plugin contributes when ``settings.stores`` names them (an empty list otherwise).
    Each store implements :class:`appliance.core.stores.Store`: an idempotent
    ``write_batch`` and, optionally, queries with a watermark. Every plugin's stores are
    collected; the processor writes to them in this order.
    """


# --- transport ------------------------------------------------------------------------


@hookspec(firstresult=True)
def register_transport(appliance: Appliance) -> Transport | None:
    """Provide the transport between ingest and the processor.

    Called once at start-up. Return a :class:`appliance.core.transport.Transport` when
    ``settings.transport`` names this plugin's transport, else None. Stops at the first
    non-None result; exactly one transport must answer.
    """


@hookspec(firstresult=True)
def register_rate_limiter(
    appliance: Appliance, scope: str, rate: float, burst: float
) -> RateLimiter | None:
    """Provide token buckets shared by every appliance instance for one limit on /api/events.

    Called once at start-up per limit that is on: ``scope`` is "address" (keys are keyed
    pseudonyms of client addresses, never the address) or "site" (keys are site ids),
    ``rate`` tokens per second refill each bucket up to ``burst``. Return a
    :class:`appliance.core.ratelimit.RateLimiter` (awaited per request: answer from memory
    when you can), or None to leave the limit to this process's own buckets. Stops at the
    first non-None result.
    """


# --- enrichment -----------------------------------------------------------------------


@hookspec
def register_enrichers(appliance: Appliance) -> list[Enricher]:
    """Provide event enrichers.

    Called once at start-up. Return :class:`appliance.core.enrich.Enricher` objects; the
    ingest path runs all enrichers of all plugins sorted by their ``order`` (lower first)
    on every accepted event. An enricher may modify the event or drop it. Every plugin's
    enrichers are collected.
    """


# --- auth -----------------------------------------------------------------------------


@hookspec
def register_auth_providers(appliance: Appliance) -> list[AuthProvider]:
    """Provide ways to log in (password, OAuth providers).

    Called once at start-up. Return :class:`appliance.core.auth.AuthProvider` objects; the
    login page shows each one's button or form, ordered by ``order``. The provider's
    routes come with it. Every plugin's providers are collected.
    """


# --- dashboard ------------------------------------------------------------------------


@hookspec
def register_panels(appliance: Appliance) -> list[Panel]:
    """Provide dashboard panels.

    Called once at start-up. Return :class:`appliance.core.panels.Panel` objects (id,
    title, order, template and an async data function); the dashboard renders them sorted
    by ``order``. Every plugin's panels are collected.
    """


# --- operations -----------------------------------------------------------------------


@hookspec
def register_checks(appliance: Appliance) -> list[Check]:
    """Provide checks of the servers a plugin talks to (broker, database, cache...).

    Called by ``appliance doctor`` and once when ``serve`` (or ``process``) builds its
    ``/readyz``, before anything is started. Return :class:`appliance.core.checks.Check`
    objects, only for what the settings make this plugin use (an empty list otherwise);
    each one's ``run`` connects on its own, says in one line what it found, or raises
    ``CheckFailed(problem, fix)``. Every plugin's checks are collected.
    """


@hookspec
def register_metrics(appliance: Appliance) -> list[Collector]:
    """Provide Prometheus collectors for ``/metrics``.

    Called once per appliance when its metrics registry is built (``serve``, or ``process``
    with ``metrics.port``). Return ``prometheus_client`` collectors (metric objects created
    with ``registry=None``, or objects with a ``collect()`` method read at scrape time);
    they are registered in the appliance's own registry. Name metrics ``appliance_<plugin>_``
    and keep label values few. Every plugin's collectors are collected.
    """


# --- web ------------------------------------------------------------------------------


@hookspec
def register_routes(appliance: Appliance) -> list[Any]:
    """Add HTTP routes to the application.

    Called once while the app is built. Return a list of Starlette routes (``Route``,
    ``Mount``); they are added before the core's pages, so a plugin cannot be shadowed
    by them. Every plugin's routes are collected.
    """


@hookspec
def template_dirs() -> list[str]:
    """Add Jinja2 template directories.

    Called once while the app is built. Return directory paths; templates found there are
    used when the core's own directory lacks them. Every plugin's directories are
    collected.
    """


# --- lifecycle ------------------------------------------------------------------------


@hookspec
def startup(appliance: Appliance) -> None:
    """React to the appliance having started.

    Called once after every registered object exists and the stores are open, before the
    first request is served (or the first event processed), with the Appliance (settings,
    stores, transport...). May be async; every implementation is awaited in turn. Returns
    nothing.
    """


@hookspec
def shutdown(appliance: Appliance) -> None:
    """React to the appliance stopping.

    Called once after the processor has flushed everything and before stores close, with
    the Appliance. May be async; every implementation is awaited. Returns nothing.
    """
