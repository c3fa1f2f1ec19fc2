"""Breakdown properties and `filters=browser==Firefox;country!=DE` parsing.

Filters select visits (a segment): a visit is kept when it matches every filter, and all
metrics are then computed over the kept visits. Visit properties come from the visit's first
event (its source, browser, country...) or its first/last pageview (entry/exit page);
`page` and `event` match when any pageview/event of the visit matches.
"""

from __future__ import annotations

from dataclasses import dataclass

from appliance.core.visits import ATTRIBUTES

VISIT_PROPERTIES = ("entry_page", "exit_page", *ATTRIBUTES)
EVENT_PROPERTIES = ("page", "event")
PROPERTIES = EVENT_PROPERTIES + VISIT_PROPERTIES
OPERATORS = ("==", "!=")
MAX_FILTERS = 10


class FilterError(ValueError):
    """A filter or property parameter is unusable; the message names it."""


@dataclass(frozen=True, slots=True)
class Filter:
    property: str
    operator: str  # "==" or "!="
    value: str


def check_property(name: str, parameter: str = "property") -> str:
    if name not in PROPERTIES:
        raise FilterError(f"{parameter}: {name!r} is not one of {', '.join(PROPERTIES)}")
    return name


def parse_filters(raw: str | None) -> tuple[Filter, ...]:
    if not raw:
        return ()
    filters = []
    for part in raw.split(";"):
        if not part:
            continue
        operator = next((op for op in OPERATORS if op in part), None)
        if operator is None:
            raise FilterError(f"filters: {part!r} needs == or != (e.g. browser==Firefox)")
        name, value = part.split(operator, 1)
        check_property(name.strip(), "filters")
        if len(value) > 2048:
            raise FilterError("filters: a value may be at most 2048 characters")
        if "\x00" in value:  # no stored value has one (ingest refuses them); Postgres can't
            raise FilterError("filters: a value may not contain the NUL character")
        filters.append(Filter(name.strip(), operator, value))
    if len(filters) > MAX_FILTERS:
        raise FilterError(f"filters: at most {MAX_FILTERS}")
    return tuple(filters)
