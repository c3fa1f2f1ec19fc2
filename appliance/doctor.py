"""`appliance doctor`: check every service the settings point at, one line each, with a fix.

The checks are the plugins' (`register_checks`: Kafka metadata, Redis PING with its
credentials, Postgres connection and migration level) plus the core's own: the data
directory must be writable. `/readyz` runs the same checks (appliance/web/readiness.py).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from appliance.core.checks import Check, CheckFailed, CheckResult, run_checks
from appliance.core.plugins import flatten

DOCTOR_TIMEOUT_S = 5.0


def data_dir_check(settings: Any) -> Check:
    """The data directory exists (or can be made) and takes a file: SQLite and the secret
    key live there."""
    path = Path(str(settings.data_dir)).expanduser().resolve()

    def run(timeout_s: float) -> str:
        try:
            path.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=path, prefix=".doctor-") as probe:
                probe.write(b"ok")
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as error:
            raise CheckFailed(
                f"{path} is not writable ({error.strerror or error})",
                f"make it writable by uid {os.getuid()}, or point APPLIANCE_DATA_DIR elsewhere"
                " (Docker: mount a volume at /data)",
            ) from None
        free_gib = shutil.disk_usage(path).free / 2**30
        return f"{path} is writable ({free_gib:.1f} GiB free)"

    return Check("data_dir", run)


def collect_checks(appliance: Any) -> list[Check]:
    """The core's check, then every plugin's (in the plugin manager's order)."""
    plugin_checks = flatten(appliance.manager.hook.register_checks(appliance=appliance))
    return [data_dir_check(appliance.settings), *plugin_checks]


def diagnose(appliance: Any, timeout_s: float = DOCTOR_TIMEOUT_S) -> list[CheckResult]:
    return asyncio.run(run_checks(collect_checks(appliance), timeout_s))


def data_dir_only(settings: Any) -> list[CheckResult]:
    """When the appliance cannot even be built because its data directory is unusable."""
    return asyncio.run(run_checks([data_dir_check(settings)], DOCTOR_TIMEOUT_S))


def report(results: list[CheckResult]) -> tuple[list[str], int]:
    """The lines to print and how many checks failed."""
    return [result.line() for result in results], sum(not result.ok for result in results)
