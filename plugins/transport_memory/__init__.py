"""In-process transport: a bounded queue inside the web process (the embedded default).

Settings: ``transport = "memory"``; ``ingest.queue_size`` bounds the events held (queued
plus being written); beyond it ingest answers 503 with Retry-After.
"""

from __future__ import annotations

from typing import Any

from appliance import hookimpl
from plugins.transport_memory.transport import MemoryTransport


@hookimpl(trylast=True)
def register_transport(appliance: Any) -> MemoryTransport | None:
    settings = appliance.settings
    if settings.transport != MemoryTransport.name:
        return None
    return MemoryTransport(capacity=settings.ingest.queue_size)
