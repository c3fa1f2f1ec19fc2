"""The KPI panel: visitors, pageviews, sessions, bounce rate and visit duration.

No settings. The full dashboard's panels arrive as plugins of the same shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.accounts import Site
from appliance.core.panels import Panel
from appliance.core.periods import TimeRange


async def kpi_data(appliance: Any, site: Site, time_range: TimeRange) -> dict[str, Any]:
    return {"kpis": await appliance.query.kpis(site.id, time_range)}


@hookimpl
def register_panels(appliance: Any) -> list[Panel]:
    return [Panel(id="kpis", title="Today", order=10, template="panels/kpis.html", data=kpi_data)]


@hookimpl
def template_dirs() -> list[str]:
    return [str(Path(__file__).parent / "templates")]
