"""What `appliance plugins` prints: every plugin found, loaded or not, and why."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from appliance import __version__
from appliance.core.plugins import BUILTIN_PLUGINS, ENTRY_POINT_GROUP, plugin_name

COLUMNS = ("name", "version", "status", "source", "hooks")


@dataclass(frozen=True)
class PluginRow:
    name: str
    version: str
    status: str  # enabled, blocked, not enabled, autoload off, name taken
    source: str  # builtin, entry point <distribution>, passed in
    hooks: tuple[str, ...]


def plugin_rows(appliance: Any) -> list[PluginRow]:
    """Loaded plugins with the hooks they implement, then the ones settings kept out."""
    settings = appliance.settings
    blocked = set(settings.get("plugins.blocked") or ())
    enabled = set(settings.get("plugins.enabled") or ())
    loaded = {plugin.name: plugin for plugin in appliance.plugins}
    rows = []
    for module_path in BUILTIN_PLUGINS:
        name = plugin_name(module_path)
        if name in loaded:
            rows.append(PluginRow(name, __version__, "enabled", "builtin", _hooks(appliance, name)))
        elif name in blocked:
            rows.append(PluginRow(name, __version__, "blocked", "builtin", ()))
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        name = entry_point.name
        version = entry_point.dist.version if entry_point.dist else "-"
        source = f"entry point {entry_point.dist.name}" if entry_point.dist else "entry point"
        if name in loaded and loaded[name].source.startswith("entry point"):
            rows.append(PluginRow(name, version, "enabled", source, _hooks(appliance, name)))
            continue
        if name in blocked:
            status = "blocked"
        elif not settings.get("plugins.autoload", True):
            status = "autoload off"
        elif enabled and name not in enabled:
            status = "not enabled"
        else:
            status = "name taken"
        rows.append(PluginRow(name, version, status, source, ()))
    for plugin in appliance.plugins:
        if plugin.source == "passed in":
            rows.append(
                PluginRow(plugin.name, "-", "enabled", "passed in", _hooks(appliance, plugin.name))
            )
    return rows


def _hooks(appliance: Any, name: str) -> tuple[str, ...]:
    callers = appliance.manager.get_hookcallers(appliance.manager.get_plugin(name)) or []
    return tuple(sorted(caller.name for caller in callers))


def format_rows(rows: list[PluginRow]) -> str:
    """An aligned table, one plugin per line (so `grep` finds a plugin with its hooks)."""
    cells = [COLUMNS] + [
        (row.name, row.version, row.status, row.source, ", ".join(row.hooks) or "-") for row in rows
    ]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True))
        + "  "
        + line[-1]
        for line in cells
    )
