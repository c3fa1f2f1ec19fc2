"""The dashboard-panel contract: what a panel plugin registers and what its data gets."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from appliance.core.accounts import Site
from appliance.core.filters import Filter
from appliance.core.periods import TimeRange


@dataclass(frozen=True, slots=True)
class PanelView:
    """What the dashboard shows right now: one site, a period, filters. Panels read the
    stats only through `appliance.query` (the layer behind /api/analytics/*), never SQL."""

    appliance: Any
    site: Site
    time_range: TimeRange
    filters: tuple[Filter, ...]
    compare: bool  # show changes against the previous period of the same length
    period: str  # "realtime", "today", ... or "custom"

    @property
    def query(self) -> Any:
        return self.appliance.query

    @property
    def previous(self) -> TimeRange:
        return self.time_range.previous()


# data(view) -> the panel template's context
PanelData = Callable[[PanelView], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    order: int  # lower first
    template: str  # Jinja2 template name, rendered with the data's context plus `panel`, `view`
    data: PanelData
    width: str = "half"  # "half" or "full" (of the dashboard's grid)
    # The breakdown property behind the rows, if any: enables click-to-filter and CSV export.
    property: str | None = None
