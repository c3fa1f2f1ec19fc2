"""What a visit is, the same in every store: where one ends, its id, its screen class.

A visit is a session id's run of events with no gap longer than VISIT_GAP_S; it takes its
attributes from its first event. Stores keep visits their own way, but these rules must not
differ between them (the Postgres and SQLite stores are tested to give the same numbers).
"""

from __future__ import annotations

import hashlib
import operator

from appliance.core.event import Event

VISIT_GAP_S = 1800  # a gap this long ends a visit (README, "Visits")
# What a visit takes from its first event (filterable, and a breakdown each).
ATTRIBUTES = (
    "source", "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "country", "browser", "os", "device", "screen",
)  # fmt: skip

# Viewport widths below each bound, in order; wider is "Desktop", 0 is unknown ("").
SCREEN_CLASSES = ((576, "Mobile"), (992, "Tablet"), (1440, "Laptop"))


def screen_class(width: int) -> str:
    if width == 0:
        return ""
    for bound, name in SCREEN_CLASSES:  # a loop, not next(genexpr): once per new visit
        if width < bound:
            return name
    return "Desktop"


# The event fields behind ATTRIBUTES but the last (screen, a class of the viewport width).
_EVENT_FIELDS = operator.attrgetter(
    "referrer_source", "referrer", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "country", "browser", "os", "device",
)  # fmt: skip


def first_event_attributes(event: Event) -> tuple[str, ...]:
    """The ATTRIBUTES a visit takes from `event`, in that order."""
    return (*_EVENT_FIELDS(event), screen_class(event.screen_width))


def screen_class_sql(column: str) -> str:
    """`screen_class` as an SQL CASE over `column` (for queries over raw events)."""
    bounds = " ".join(f"WHEN {column} < {bound} THEN '{name}'" for bound, name in SCREEN_CLASSES)
    return f"CASE WHEN {column} = 0 THEN '' {bounds} ELSE 'Desktop' END"


def visit_id_for(site_id: int, session_id: str, first_event_id: str) -> int:
    """A visit's id from its first event: 63 bits, never negative, the same on a retried
    flush (no sequence round trip)."""
    key = f"{site_id}\x00{session_id}\x00{first_event_id}".encode()
    return int.from_bytes(hashlib.blake2b(key, digest_size=8).digest(), "big") >> 1
