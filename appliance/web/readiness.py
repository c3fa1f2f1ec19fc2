"""GET /readyz: can this process do its job right now? 503 naming what is not reachable.

It runs the doctor's checks (appliance/doctor.py), at most once per `max_age_s` and one run
at a time, so a probe storm costs the databases nothing more. The answer names failing
services only (`{"failing": ["postgres"]}`): the reason, with the host and the fix, goes to
the log when a check changes state, not to an unauthenticated page. A check that is not
essential (Redis: the appliance degrades without it) is listed as degraded and keeps 200.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from appliance.core.checks import Check, CheckResult, run_checks

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 2.0
READY_MAX_AGE_S = 1.0


class Readiness:
    def __init__(
        self,
        checks: Sequence[Check],
        timeout_s: float = READY_TIMEOUT_S,
        max_age_s: float = READY_MAX_AGE_S,
    ) -> None:
        self.checks = list(checks)
        self.timeout_s = timeout_s
        self.max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._results: list[CheckResult] = []
        self._checked_at = float("-inf")
        self._was_ok: dict[str, bool] = {}

    async def results(self) -> list[CheckResult]:
        async with self._lock:
            if time.monotonic() - self._checked_at >= self.max_age_s:
                self._results = await run_checks(self.checks, self.timeout_s)
                self._checked_at = time.monotonic()
                self._log_changes(self._results)
            return self._results

    def _log_changes(self, results: list[CheckResult]) -> None:
        for result in results:
            before = self._was_ok.get(result.name, True)
            if before and not result.ok:
                log.warning("readiness: %s failing: %s; fix: %s", result.name, result.detail,
                            result.fix)  # fmt: skip
            elif not before and result.ok:
                log.info("readiness: %s ok again: %s", result.name, result.detail)
            self._was_ok[result.name] = result.ok


async def readyz(request: Request) -> JSONResponse:
    results = await request.app.state.readiness.results()
    failing = [r.name for r in results if not r.ok and r.essential]
    degraded = [r.name for r in results if not r.ok and not r.essential]
    body = {
        "status": "not ready" if failing else "ready",
        "failing": failing,
        "degraded": degraded,
        "checks": {r.name: "ok" if r.ok else "failing" for r in results},
    }
    return JSONResponse(
        body, status_code=503 if failing else 200, headers={"cache-control": "no-store"}
    )


routes = [Route("/readyz", readyz, methods=["GET"])]
