"""The bytes of one event on the topic: msgpack of ``[version, event]``.

The version lets a newer appliance change the format while older messages are still on the
topic; adding an Event field with a default needs no new version (msgspec fills defaults
and ignores fields it does not know). Fields left at their default are left out of the
message (Event's omit_defaults), so a default is part of the format: changing one needs a
new version (tests/test_kafka.py pins them).
"""

from __future__ import annotations

import msgspec

from appliance.core.event import Event, event_encoder

VERSION = 1

_current_decoder = msgspec.msgpack.Decoder(tuple[int, Event])  # one pass, the usual case
_envelope_decoder = msgspec.msgpack.Decoder(tuple[int, msgspec.Raw])
_event_decoder = msgspec.msgpack.Decoder(Event)


class EnvelopeError(ValueError):
    """A message that is not an event this appliance can read; the text says why."""


def encode(event: Event) -> bytes:
    return event_encoder.encode((VERSION, event))


def decode(data: bytes | None) -> Event:
    if not data:
        raise EnvelopeError("empty message")
    try:
        version, event = _current_decoder.decode(data)
        if version == VERSION:
            return event
    except msgspec.DecodeError:
        pass  # another version, or not an event: the two steps below say which
    try:
        version, body = _envelope_decoder.decode(data)
    except msgspec.DecodeError as error:
        raise EnvelopeError(f"not an event envelope: {error}") from None
    if version != VERSION:
        raise EnvelopeError(f"unsupported envelope version {version} (this reads {VERSION})")
    try:
        return _event_decoder.decode(body)
    except msgspec.DecodeError as error:
        raise EnvelopeError(f"not a valid event: {error}") from None
