"""The dashboard-panel contract."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

# data(appliance, site, period) -> template context for the panel
PanelData = Callable[[Any, Any, Any], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class Panel:
    id: str
    title: str
    order: int
    template: str
    data: PanelData
