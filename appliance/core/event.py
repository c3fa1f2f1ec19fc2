"""The event schema: what tracker.js sends, and the enriched event the pipeline carries.

Validation is msgspec's: types, lengths and counts are declared once here and the decoder
enforces them, naming the offending field (``$.path``, ``$[3].props``) in its message.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

MAX_PROPS = 30

Text = Annotated[str, Meta(max_length=2048)]
PropValue = Annotated[str, Meta(max_length=512)] | int | float | bool
PropKey = Annotated[str, Meta(min_length=1, max_length=64)]


class Viewport(msgspec.Struct):
    width: Annotated[int, Meta(ge=0, le=100_000)]
    height: Annotated[int, Meta(ge=0, le=100_000)]


class IncomingEvent(msgspec.Struct):
    """One event as the tracker POSTs it (the seed's fields plus url, title, name, props).

    Unknown fields are ignored, so a newer tracker keeps working against an older server.
    """

    domain: Annotated[str, Meta(min_length=1, max_length=253)]
    path: Annotated[str, Meta(min_length=1, max_length=2048)]
    referrer: Text | None = None
    sessionId: Annotated[str, Meta(max_length=128)] | None = None  # noqa: N815 (wire name)
    viewport: Viewport | None = None
    url: Annotated[str, Meta(max_length=4096)] | None = None
    title: Annotated[str, Meta(max_length=512)] | None = None
    name: Annotated[str, Meta(min_length=1, max_length=120)] = "pageview"
    props: Annotated[dict[PropKey, PropValue], Meta(max_length=MAX_PROPS)] | None = None


PAGEVIEW = "pageview"


class Event(msgspec.Struct, kw_only=True, gc=False, omit_defaults=True):
    """An accepted, enriched event. Enrichers fill the optional fields; nothing here is an IP.

    Not tracked by the garbage collector (it holds only strings, numbers and a flat dict, so
    it can be in no reference cycle): a processor holds tens of thousands per flush, and
    tracking them made each one cost twice as much to decode.

    Encoded without the fields left at their defaults (empty UTM fields, region, props...):
    a decoder fills those in, so either form reads the same, and a processor decoding it
    has fewer keys to match and bytes to read.
    """

    event_id: str
    ts: float  # server clock, seconds since the epoch (UTC)
    site_id: int
    name: str
    path: str
    visitor_id: str = ""
    session_id: str = ""
    referrer: str = ""
    referrer_source: str = ""  # "Google", "example.org", "Direct / None"
    referrer_medium: str = ""  # "search", "social", "email", "ai", "referral", "(none)"
    url: str = ""
    title: str = ""
    utm_source: str = ""
    utm_medium: str = ""
    utm_campaign: str = ""
    utm_term: str = ""
    utm_content: str = ""
    browser: str = ""
    os: str = ""
    device: str = ""
    country: str = ""  # ISO 3166 alpha-2
    region: str = ""  # ISO 3166-2, when the country data has it
    screen_width: int = 0
    screen_height: int = 0
    props: dict[str, str | int | float | bool] = {}

    @property
    def is_pageview(self) -> bool:
        return self.name == PAGEVIEW


class EventDecodeError(ValueError):
    """The body is not a valid event or batch; the message names the field."""


def make_decoder(max_batch_events: int) -> msgspec.json.Decoder:
    batch = Annotated[list[IncomingEvent], Meta(min_length=1, max_length=max_batch_events)]
    return msgspec.json.Decoder(IncomingEvent | batch)


def decode_events(decoder: msgspec.json.Decoder, body: bytes) -> list[IncomingEvent]:
    try:
        decoded = decoder.decode(body)
    except msgspec.ValidationError as error:
        raise EventDecodeError(str(error)) from None
    except msgspec.DecodeError as error:
        raise EventDecodeError(f"body is not valid JSON: {error}") from None
    events = decoded if isinstance(decoded, list) else [decoded]
    if b"\\u0000" in body:  # JSON can carry NUL only escaped: rare, so checked only then
        _refuse_nul(events, batch=isinstance(decoded, list))
    return events


def _refuse_nul(events: list[IncomingEvent], batch: bool) -> None:
    """Text with NUL cannot be stored (PostgreSQL refuses it in text); name the field."""
    for index, event in enumerate(events):
        where = f"$[{index}]" if batch else "$"
        for field in ("domain", "path", "referrer", "sessionId", "url", "title", "name"):
            if "\x00" in (getattr(event, field) or ""):
                raise EventDecodeError(f"NUL characters are not allowed - at `{where}.{field}`")
        for key, value in (event.props or {}).items():
            if "\x00" in key or isinstance(value, str) and "\x00" in value:
                raise EventDecodeError(f"NUL characters are not allowed - at `{where}.props`")


event_encoder = msgspec.msgpack.Encoder()
event_list_decoder = msgspec.msgpack.Decoder(list[Event])
