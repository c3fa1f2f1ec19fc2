"""Build the plugin manager: built-in plugins first, then the `appliance` entry points."""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

import pluggy

from appliance.core import hookspecs
from appliance.core.plugin_errors import PluginError, name_failures

ENTRY_POINT_GROUP = "appliance"

# Built-ins use exactly the hooks an outside plugin would; settings may block any of them.
BUILTIN_PLUGINS = (
    "plugins.store_sqlite",
    "plugins.store_redis",
    "plugins.store_postgres",
    "plugins.postgres_check",
    "plugins.transport_memory",
    "plugins.transport_kafka",
    "plugins.auth_local",
    "plugins.auth_github",
    "plugins.auth_google",
    "plugins.enrich_bots",
    "plugins.enrich_user_agent",
    "plugins.enrich_country",
    "plugins.enrich_utm",
    "plugins.enrich_referrer",
    "plugins.enrich_visitor_id",
    "plugins.panels_core",
)


@dataclass(frozen=True)
class LoadedPlugin:
    name: str
    source: str  # "builtin" or "entry point <dist> <version>"
    module: str


def plugin_name(module_path: str) -> str:
    return module_path.rsplit(".", 1)[-1]


def build_plugin_manager(
    settings: Any, extra_plugins: tuple[Any, ...] = ()
) -> tuple[pluggy.PluginManager, list[LoadedPlugin]]:
    """Register built-ins, discovered entry points and `extra_plugins` (tests use these)."""
    manager = pluggy.PluginManager("appliance")
    manager.add_hookspecs(hookspecs)
    name_failures(manager)
    blocked = set(settings.get("plugins.blocked") or ())
    enabled = set(settings.get("plugins.enabled") or ())
    loaded: list[LoadedPlugin] = []

    for module_path in BUILTIN_PLUGINS:
        name = plugin_name(module_path)
        if name in blocked:
            continue
        manager.register(importlib.import_module(module_path), name=name)
        loaded.append(LoadedPlugin(name, "builtin", module_path))

    if settings.get("plugins.autoload", True):
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if entry_point.name in blocked or (enabled and entry_point.name not in enabled):
                continue
            if manager.get_plugin(entry_point.name) is not None:
                continue
            try:
                module = entry_point.load()
            except Exception as error:
                raise PluginError(entry_point.name, None, error) from error
            manager.register(module, name=entry_point.name)
            dist = entry_point.dist
            source = f"entry point of {dist.name} {dist.version}" if dist else "entry point"
            loaded.append(LoadedPlugin(entry_point.name, source, entry_point.value))

    for plugin in extra_plugins:
        name = getattr(plugin, "__name__", type(plugin).__name__)
        manager.register(plugin, name=name)
        loaded.append(LoadedPlugin(name, "passed in", _module_of(plugin)))
    return manager, loaded


def _module_of(plugin: Any) -> str:
    module = plugin if isinstance(plugin, ModuleType) else inspect.getmodule(plugin)
    return module.__name__ if module else repr(plugin)


def flatten(results: list[Any]) -> list[Any]:
    """Hook results are one list per plugin; None means "nothing from me"."""
    items: list[Any] = []
    for result in results:
        if result:
            items.extend(result)
    return items


async def await_me_maybe(value: Any) -> Any:
    """Let a hook implementation be sync or async."""
    if inspect.isawaitable(value):
        return await value
    return value
