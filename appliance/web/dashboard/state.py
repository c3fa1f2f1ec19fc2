"""The dashboard's state lives in its URL: site, period, custom range, filters, comparison.

Every link the dashboard draws (period picker, filter chips, clickable rows, CSV export)
is this state with one change, so any view can be bookmarked and shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from starlette.requests import Request

from appliance.core.accounts import Membership
from appliance.core.filters import Filter, FilterError, parse_filters
from appliance.core.panels import PanelView
from appliance.core.periods import PERIODS, PeriodError, parse_range

PERIOD_LABELS = {
    "realtime": "Realtime",
    "today": "Today",
    "24h": "Last 24 hours",
    "7d": "Last 7 days",
    "30d": "Last 30 days",
}


class BadDashboardState(ValueError):
    """A query parameter is unusable; the message names it."""


@dataclass(frozen=True)
class DashboardState:
    domain: str
    period: str  # one of PERIODS, or "custom"
    start: str  # custom range, as given ("" otherwise)
    end: str
    filters: tuple[Filter, ...]
    compare: bool

    @classmethod
    def from_request(cls, request: Request, domain: str) -> DashboardState:
        params = request.query_params
        start, end = params.get("from", ""), params.get("to", "")
        period = "custom" if (start or end) else params.get("period", "today")
        try:
            filters = parse_filters(params.get("filters"))
        except FilterError as error:
            raise BadDashboardState(str(error)) from None
        compare = params.get("compare", "") in ("1", "true", "on")
        return cls(domain, period, start[:40], end[:40], filters, compare)

    def view(self, appliance: object, membership: Membership) -> PanelView:
        try:
            time_range = parse_range(
                None if self.period == "custom" else self.period,
                self.start or None,
                self.end or None,
                tz=membership.site.timezone,
            )
        except PeriodError as error:
            raise BadDashboardState(str(error)) from None
        return PanelView(
            appliance, membership.site, time_range, self.filters, self.compare, self.period
        )

    # --- links -----------------------------------------------------------------------

    def params(self, **changes: object) -> dict[str, str]:
        state = {
            "period": self.period if self.period != "custom" else "",
            "from": self.start,
            "to": self.end,
            "filters": ";".join(f"{f.property}{f.operator}{f.value}" for f in self.filters),
            "compare": "1" if self.compare else "",
        }
        state.update({key: str(value) for key, value in changes.items()})
        return {key: value for key, value in state.items() if value}

    def url(self, path: str = "", **changes: object) -> str:
        query = urlencode(self.params(**changes))
        base = f"/sites/{quote(self.domain)}{path}"
        return f"{base}?{query}" if query else base

    def period_url(self, period: str) -> str:
        return self.url(period=period, **{"from": "", "to": ""})

    def with_filter(self, prop: str, value: str, operator: str = "==") -> str:
        kept = [f for f in self.filters if f.property != prop]
        return self._with_filters((*kept, Filter(prop, operator, value)))

    def without_filter(self, index: int) -> str:
        return self._with_filters(self.filters[:index] + self.filters[index + 1 :])

    def _with_filters(self, filters: tuple[Filter, ...]) -> str:
        joined = ";".join(f"{f.property}{f.operator}{f.value}" for f in filters)
        return self.url(filters=joined)

    @property
    def period_choices(self) -> list[tuple[str, str]]:
        return [(period, PERIOD_LABELS[period]) for period in PERIODS]
