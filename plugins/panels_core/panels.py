"""Panel definitions and their data functions (all data through the query layer)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from appliance.core.panels import Panel, PanelView
from appliance.core.stores import Kpis
from appliance.web.dashboard.chart import build_chart

ROWS = 10


@dataclass(frozen=True)
class Card:
    label: str
    value: str
    change: float | None  # percent against the previous period
    better_when_lower: bool = False


def _change(now: float, before: float) -> float | None:
    if before == 0:
        return None
    return round((now - before) / before * 100, 1)


def _duration(seconds: float) -> str:
    minutes, rest = divmod(int(round(seconds)), 60)
    return f"{minutes}m {rest:02d}s" if minutes else f"{rest}s"


def _cards(now: Kpis, before: Kpis | None) -> list[Card]:
    def per_visit(k: Kpis) -> float:
        return k.pageviews / k.sessions if k.sessions else 0.0

    rows = [
        ("Unique visitors", now.visitors, f"{now.visitors:,}", lambda k: k.visitors, False),
        ("Pageviews", now.pageviews, f"{now.pageviews:,}", lambda k: k.pageviews, False),
        ("Views per visit", per_visit(now), f"{per_visit(now):.2f}", per_visit, False),
        ("Bounce rate", now.bounce_rate, f"{now.bounce_rate:.0%}", lambda k: k.bounce_rate, True),
        ("Visit duration", now.avg_duration_s, _duration(now.avg_duration_s),
         lambda k: k.avg_duration_s, False),
    ]  # fmt: skip
    return [
        Card(label, shown, _change(value, metric(before)) if before else None, lower)
        for label, value, shown, metric, lower in rows
    ]


def kpis_panel(order: int) -> Panel:
    async def data(view: PanelView) -> dict[str, Any]:
        now = await view.query.kpis(view.site.id, view.time_range, view.filters)
        before = (
            await view.query.kpis(view.site.id, view.previous, view.filters)
            if view.compare
            else None
        )
        return {"cards": _cards(now, before), "compare": view.compare}

    return Panel("kpis", "Overview", order, "panels/kpis.html", data, width="full")


def timeseries_panel(order: int) -> Panel:
    async def data(view: PanelView) -> dict[str, Any]:
        points = await view.query.timeseries(view.site.id, view.time_range, view.filters)
        return {"chart": build_chart(points, view.time_range.interval, view.time_range.tz)}

    return Panel(
        "timeseries", "Visitors and pageviews", order, "panels/timeseries.html", data, "full"
    )


def _bar_rows(rows: list[Any]) -> list[dict[str, Any]]:
    top = max((row.visitors for row in rows), default=0) or 1
    return [{"row": row, "share": round(row.visitors / top * 100, 1)} for row in rows]


def breakdown_panel(panel_id: str, title: str, prop: str, order: int) -> Panel:
    async def data(view: PanelView) -> dict[str, Any]:
        rows = await view.query.breakdown(view.site.id, view.time_range, prop, ROWS, view.filters)
        return {"rows": _bar_rows(rows), "metric": "pageviews" if prop != "event" else "events"}

    return Panel(panel_id, title, order, "panels/breakdown.html", data, property=prop)


def events_panel(order: int) -> Panel:
    """Custom events; with an event filter set, that event's properties too."""

    async def data(view: PanelView) -> dict[str, Any]:
        site, period, filters = view.site.id, view.time_range, view.filters
        rows = await view.query.breakdown(site, period, "event", ROWS, filters)
        chosen = next(
            (f.value for f in filters if f.property == "event" and f.operator == "=="), None
        )
        props = (
            await view.query.event_properties(site, period, chosen, ROWS, filters) if chosen else []
        )
        return {
            "rows": _bar_rows(rows),
            "metric": "events",
            "event": chosen,
            "props": _bar_rows(props),
        }

    return Panel("events", "Custom events", order, "panels/breakdown.html", data, property="event")
