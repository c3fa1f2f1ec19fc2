"""The store the processor writes to: skip what was delivered, POST the rest, then record it."""

from __future__ import annotations

import asyncio
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from appliance.core.aggregation import Batch
from appliance.core.stores import call
from appliance.core.transport import NOTHING_APPLIED

from appliance_webhook_sink.offsets import AppliedOffsets
from appliance_webhook_sink.payload import BATCH_HEADER, SIGNATURE_HEADER, batch_id, encode, sign

log = logging.getLogger(__name__)

USER_AGENT = "appliance-webhook-sink/0.1.0"
# 408 and 429 are the receiver asking for patience; any other 4xx will not improve by retrying
# at once (the processor still retries the whole batch later: nothing is skipped).
RETRY_4XX = (408, 429)


class WebhookFailed(RuntimeError):
    """The receiver did not accept the batch; the processor keeps it and retries later."""


@dataclass(frozen=True)
class WebhookConfig:
    url: str
    secret: str
    timeout_s: float
    attempts: int
    backoff_s: float

    @property
    def shown_url(self) -> str:
        """The URL without credentials or query, fit for a log line."""
        parts = urlsplit(self.url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would replay a redirected POST as a GET without the body and call that success.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_opener = urllib.request.build_opener(_NoRedirects())


def post_once(config: WebhookConfig, body: bytes, headers: dict[str, str]) -> int:
    """One POST; returns the status. Blocking: the sink runs it in a worker thread."""
    request = urllib.request.Request(config.url, body, headers, method="POST")  # noqa: S310 (scheme checked in settings)
    try:
        with _opener.open(request, timeout=config.timeout_s) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        with error:
            return int(error.code)


class WebhookSink:
    name = "webhook"
    role = "sink"  # receives batches, answers no queries

    def __init__(self, config: WebhookConfig, offsets_path: Path, accounts: Any) -> None:
        self.config = config
        self.offsets_path = offsets_path
        self.accounts = accounts
        self._offsets: AppliedOffsets | None = None
        self._domains: dict[int, str] = {}

    def open(self) -> None:
        self._offsets = AppliedOffsets(self.offsets_path)

    def close(self) -> None:
        if self._offsets is not None:
            self._offsets.close()
            self._offsets = None

    @property
    def offsets(self) -> AppliedOffsets:
        if self._offsets is None:
            raise RuntimeError("webhook sink is not open")
        return self._offsets

    def applied_positions(self, topic: str) -> dict[str, int]:
        """What this sink delivered, so the processor sends it only what it lacks."""
        return self.offsets.of_topic(topic)

    async def write_batch(self, batch: Batch) -> bool:
        """POST the part of the batch not delivered yet; False when all of it was."""
        lacking = await asyncio.to_thread(self._lacking_part, batch)
        if lacking is None:
            return False
        body = encode(lacking, await self._domains_for({key[0] for key in lacking.minute}))
        await self._deliver(body, batch_id(lacking.positions))
        await asyncio.to_thread(self.offsets.record, lacking.positions)
        return True

    def _lacking_part(self, batch: Batch) -> Batch | None:
        """The batch, its part past the delivered offsets, or None when it was all delivered.

        The processor already sends only what `applied_positions` says is missing; checking
        again here keeps a direct or stale redelivery from reaching the receiver twice.
        """
        delivered = self.offsets.of_positions(batch.positions)
        last = {p: delivered.get((p.topic, p.partition), NOTHING_APPLIED) for p in batch.positions}
        if all(last[p] < p.first for p in batch.positions):
            return batch
        if all(last[p] >= p.last for p in batch.positions):
            return None
        return batch.unapplied(delivered)  # re-folded from the events past the offsets

    async def _domains_for(self, site_ids: set[int]) -> dict[int, str]:
        if not site_ids <= self._domains.keys():
            sites = await call(self.accounts.all_sites)
            self._domains = {site.id: site.domain for site in sites}
        return self._domains

    async def _deliver(self, body: bytes, batch: str) -> None:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            BATCH_HEADER: batch,
            SIGNATURE_HEADER: sign(self.config.secret, body),
        }
        problem = ""
        for attempt in range(1, self.config.attempts + 1):
            try:
                status = await asyncio.to_thread(post_once, self.config, body, headers)
            except OSError as error:  # refused, reset, DNS, timeout
                problem = f"failed: {error}"
            else:
                if 200 <= status < 300:
                    return
                problem = f"answered {status}"
                if 400 <= status < 500 and status not in RETRY_4XX:
                    break
            if attempt < self.config.attempts:
                log.warning(
                    "webhook: POST %s %s (batch %s, attempt %d of %d)",
                    self.config.shown_url, problem, batch, attempt, self.config.attempts,
                )  # fmt: skip
                await asyncio.sleep(self.config.backoff_s * 2 ** (attempt - 1))
        raise WebhookFailed(
            f"webhook: POST {self.config.shown_url} {problem} (batch {batch}); "
            "not recorded as delivered, the processor will retry it"
        )
