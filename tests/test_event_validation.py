"""Every field's limits, as enforced by the msgspec schema."""

from __future__ import annotations

import json
from typing import Any

import pytest

from appliance.core.event import MAX_PROPS, EventDecodeError, decode_events, make_decoder

pytestmark = pytest.mark.security

decoder = make_decoder(max_batch_events=50)


def decode(payload: Any) -> list[Any]:
    return decode_events(decoder, json.dumps(payload).encode())


def base(**fields: Any) -> dict[str, Any]:
    return {"domain": "example.com", "path": "/"} | fields


def test_minimal_event_defaults_to_a_pageview() -> None:
    [event] = decode(base())
    assert (event.domain, event.path, event.name, event.props) == (
        "example.com",
        "/",
        "pageview",
        None,
    )


def test_all_fields_round_trip() -> None:
    payload = base(
        referrer="https://google.com/",
        sessionId="abc",
        viewport={"width": 1280, "height": 720},
        url="https://example.com/?utm_source=x",
        title="Home",
        name="Signup",
        props={"plan": "pro", "seats": 3, "ratio": 0.5, "trial": True},
    )
    [event] = decode(payload)
    assert event.viewport.width == 1280
    assert event.props == {"plan": "pro", "seats": 3, "ratio": 0.5, "trial": True}


def test_unknown_fields_are_ignored_for_newer_trackers() -> None:
    [event] = decode(base(future_field="x"))
    assert event.path == "/"


@pytest.mark.parametrize(
    ("fields", "field_name"),
    [
        ({"domain": ""}, "$.domain"),
        ({"domain": "x" * 254}, "$.domain"),
        ({"domain": 5}, "$.domain"),
        ({"path": ""}, "$.path"),
        ({"path": "/" + "a" * 2048}, "$.path"),
        ({"referrer": "r" * 2049}, "$.referrer"),
        ({"sessionId": "s" * 129}, "$.sessionId"),
        ({"viewport": {"width": -1, "height": 1}}, "$.viewport.width"),
        ({"viewport": {"width": 1, "height": 100_001}}, "$.viewport.height"),
        ({"viewport": {"width": "wide", "height": 1}}, "$.viewport.width"),
        ({"viewport": [1, 2]}, "$.viewport"),
        ({"url": "u" * 4097}, "$.url"),
        ({"title": "t" * 513}, "$.title"),
        ({"name": ""}, "$.name"),
        ({"name": "n" * 121}, "$.name"),
        ({"props": {"k": "v" * 513}}, "$.props[...]"),
        ({"props": {"k" * 65: "v"}}, "$.props"),
        ({"props": {"": "v"}}, "$.props"),
        ({"props": {"nested": {"a": 1}}}, "$.props[...]"),
        ({"props": {"list": [1]}}, "$.props[...]"),
        ({"props": {f"k{i}": i for i in range(MAX_PROPS + 1)}}, "$.props"),
        ({"props": "not an object"}, "$.props"),
    ],
)
def test_field_limits_name_the_field(fields: dict[str, Any], field_name: str) -> None:
    with pytest.raises(EventDecodeError) as raised:
        decode(base(**fields))
    assert field_name in str(raised.value)


def test_required_fields() -> None:
    for missing in ("domain", "path"):
        payload = base()
        del payload[missing]
        with pytest.raises(EventDecodeError, match=f"missing required field `{missing}`"):
            decode(payload)


def test_exactly_max_props_is_fine() -> None:
    [event] = decode(base(props={f"k{i}": i for i in range(MAX_PROPS)}))
    assert len(event.props) == MAX_PROPS


def test_batches() -> None:
    assert len(decode([base(path=f"/{i}") for i in range(50)])) == 50
    with pytest.raises(EventDecodeError, match="length <= 50"):
        decode([base()] * 51)
    with pytest.raises(EventDecodeError, match="length >= 1"):
        decode([])
    with pytest.raises(EventDecodeError, match=r"\$\[1\]\.path"):
        decode([base(), base(path="")])


@pytest.mark.parametrize("body", [b"", b"{", b"null", b"42", b'"text"', b"\xff\xfe"])
def test_garbage_bodies(body: bytes) -> None:
    with pytest.raises(EventDecodeError):
        decode_events(decoder, body)
