"""What the receiver gets: the batch's rollups as JSON, its id, and an HMAC signature."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

from appliance.core.aggregation import Batch, Counters, RollupKey
from appliance.core.transport import Position

SIGNATURE_HEADER = "X-Appliance-Signature"
BATCH_HEADER = "X-Appliance-Batch"


def batch_id(positions: list[Position]) -> str:
    """Stable across redeliveries of the same positions: receivers may dedupe on it."""
    text = ";".join(f"{p.topic}/{p.partition}/{p.first}-{p.last}" for p in positions)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _rollups(rollups: dict[RollupKey, Counters], domains: Mapping[int, str]) -> list[Any]:
    return [
        {
            "site_id": site_id,
            "domain": domains.get(site_id, ""),
            "bucket": bucket,
            "path": path,
            "pageviews": counters.pageviews,
            "events": counters.events,
            "visitors": len(counters.visitors),
            "sessions": len(counters.sessions),
        }
        for (site_id, bucket, path), counters in sorted(rollups.items())
    ]


def encode(batch: Batch, domains: Mapping[int, str]) -> bytes:
    """Counts only: visitor and session ids never leave the appliance."""
    document = {
        "batch_id": batch_id(batch.positions),
        "positions": [
            {"topic": p.topic, "partition": p.partition, "first": p.first, "last": p.last}
            for p in batch.positions
        ],
        "event_count": len(batch.events),
        "minute": _rollups(batch.minute, domains),
        "hour": _rollups(batch.hour, domains),
        "custom_events": [
            {
                "site_id": site_id,
                "domain": domains.get(site_id, ""),
                "bucket": bucket,
                "name": name,
                "count": count,
            }
            for (site_id, bucket, name), count in sorted(batch.custom_events.items())
        ],
    }
    return json.dumps(document, separators=(",", ":")).encode()
