"""The dashboard's built-in panels: KPIs, the time series and every breakdown.

No settings. Each panel is registered through the same `register_panels` hook a
third-party panel uses; block this plugin (``plugins.blocked = ["panels_core"]``) to start
from an empty dashboard.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.panels import Panel
from plugins.panels_core.panels import breakdown_panel, events_panel, kpis_panel, timeseries_panel

BREAKDOWNS = (
    ("pages", "Top pages", "page", 30),
    ("entry_pages", "Entry pages", "entry_page", 31),
    ("exit_pages", "Exit pages", "exit_page", 32),
    ("sources", "Sources", "source", 40),
    ("campaigns", "Campaigns", "utm_campaign", 41),
    ("countries", "Countries", "country", 50),
    ("browsers", "Browsers", "browser", 60),
    ("operating_systems", "Operating systems", "os", 61),
    ("devices", "Devices", "device", 62),
    ("screens", "Screen sizes", "screen", 63),
)


@hookimpl
def register_panels(appliance: Any) -> list[Panel]:
    panels = [kpis_panel(order=10), timeseries_panel(order=20), events_panel(order=70)]
    panels += [breakdown_panel(*spec) for spec in BREAKDOWNS]
    return panels


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
