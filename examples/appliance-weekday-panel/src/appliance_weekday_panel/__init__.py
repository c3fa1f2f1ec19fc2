"""Weekday panel: a heatmap of pageviews per page (rows) and weekday (columns).

Settings: ``weekday_panel.weeks`` and ``weekday_panel.pages`` (see the README). Shows how a
panel plugin ships a template (``template_dirs``) and a static file (``register_routes``
mounting its ``static/`` directory at ``/plugins/weekday_panel/static``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance import hookimpl
from appliance.core.panels import Panel
from appliance.core.settings import is_int, require
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from appliance_weekday_panel.heatmap import WeekdayHeatmap

PLUGIN = "weekday_panel"
HERE = Path(__file__).parent
STATIC_URL = f"/plugins/{PLUGIN}/static"


@hookimpl
def settings_defaults() -> dict[str, Any]:
    return {PLUGIN: {"weeks": 4, "pages": 8}}


@hookimpl
def validate_settings(settings: Any) -> list[str]:
    problems = [
        require(settings, f"{PLUGIN}.weeks", is_int(1, 12)),
        require(settings, f"{PLUGIN}.pages", is_int(1, 50)),
    ]
    return [problem for problem in problems if problem]


@hookimpl
def register_panels(appliance: Any) -> list[Panel]:
    section = appliance.settings.weekday_panel
    heatmap = WeekdayHeatmap(weeks=int(section.weeks), pages=int(section.pages))
    return [
        Panel(
            id="weekday",
            title="Pages per weekday",
            order=35,  # after the built-in page lists (30-32)
            template="weekday_panel/heatmap.html",
            data=heatmap.data,
            width="full",  # seven columns need the room
        )
    ]


@hookimpl
def template_dirs() -> list[str]:
    # Templates live under templates/weekday_panel/ so their names cannot clash with others'.
    return [str(HERE / "templates")]


@hookimpl
def register_routes(appliance: Any) -> list[Mount]:
    static = StaticFiles(directory=str(HERE / "static"))
    return [Mount(STATIC_URL, app=static, name=f"{PLUGIN}_static")]
