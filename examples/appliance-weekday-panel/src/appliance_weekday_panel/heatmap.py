"""The panel's data: pageviews per (page, weekday) over the last few weeks.

It asks the query layer (so any store that answers queries works) for each day's top pages,
in the site's time zone and with the dashboard's filters. Days that are over never change,
so their answers are cached; only today is asked again when the dashboard refreshes.
"""

from __future__ import annotations

import time
from collections import OrderedDict, defaultdict
from datetime import date, datetime, timedelta
from typing import Any

from appliance.core.aggregation import DAY, MINUTE
from appliance.core.panels import PanelView
from appliance.core.periods import TimeRange, local_midnight, zone
from appliance.core.stores import PageRow

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
LEVELS = 4  # shades of the heatmap, besides "none"
# Each day contributes its top pages; a page outside every day's top list is not shown.
PAGES_PER_DAY = 100
# A day is final once its last flush can no longer be in flight.
SETTLED_S = 5 * MINUTE
CACHED_DAYS = 4096


def level(count: int, peak: int) -> int:
    return 0 if count == 0 or peak == 0 else max(1, round(LEVELS * count / peak))


class WeekdayHeatmap:
    def __init__(self, weeks: int, pages: int) -> None:
        self.weeks = weeks
        self.pages = pages
        self._finished_days: OrderedDict[tuple[Any, ...], list[PageRow]] = OrderedDict()

    async def data(self, view: PanelView) -> dict[str, Any]:
        """Template context. The dashboard's period is not used: weekdays need whole weeks."""
        now = time.time()
        today = datetime.fromtimestamp(now, zone(view.time_range.tz)).date()
        views: dict[str, list[int]] = defaultdict(lambda: [0] * 7)
        for back in range(self.weeks * 7):
            day = today - timedelta(days=back)
            for row in await self._day(view, day, now):
                views[row.path][day.weekday()] += row.pageviews
        top = sorted(views.items(), key=lambda item: (-sum(item[1]), item[0]))[: self.pages]
        peak = max((max(counts) for _, counts in top), default=0)
        rows = [
            {
                "path": path,
                "total": sum(counts),
                "cells": [{"count": count, "level": level(count, peak)} for count in counts],
            }
            for path, counts in top
        ]
        return {"weekdays": WEEKDAYS, "rows": rows, "weeks": self.weeks}

    async def _day(self, view: PanelView, day: date, now: float) -> list[PageRow]:
        tz = view.time_range.tz
        key = (view.site.id, tz, day, view.filters)
        if key in self._finished_days:
            return self._finished_days[key]
        start = local_midnight(day, zone(tz))
        end = local_midnight(day + timedelta(days=1), zone(tz))
        ceiling = (int(now // MINUTE) + 1) * MINUTE  # events of this very second included
        rows = await view.query.top_pages(
            view.site.id, TimeRange(start, min(end, ceiling), DAY, tz), PAGES_PER_DAY, view.filters
        )
        if end + SETTLED_S < now:
            self._finished_days[key] = rows
            if len(self._finished_days) > CACHED_DAYS:
                self._finished_days.popitem(last=False)
        return rows
