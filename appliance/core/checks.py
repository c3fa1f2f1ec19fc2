"""Checks of the services the appliance depends on, for `appliance doctor` and `/readyz`.

Each plugin that talks to a server contributes a `Check` through the `register_checks`
hook; the core adds its own (the data directory). A check says in one line what it found,
or raises `CheckFailed` with what is wrong and how to fix it: an operator reads that line
and knows which setting or server to look at. Messages never carry a password.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from appliance.core.stores import call


class CheckFailed(Exception):
    """A check found a problem: `problem` says what, `fix` what to do about it."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.fix = fix


@dataclass(frozen=True)
class Check:
    """One service to check.

    `run(timeout_s)` returns a one-line description of what it found, or raises
    CheckFailed; it may be sync (run in a worker thread) or async, and must give up within
    about `timeout_s`. `essential` is False for a service the appliance works without,
    degraded (Redis): `/readyz` then stays 200 while it fails, `appliance doctor` still
    reports it as a failure.
    """

    name: str
    run: Callable[[float], Any]
    essential: bool = True


@dataclass(frozen=True)
class CheckResult:
    name: str
    ok: bool
    detail: str  # what was found, or the problem
    fix: str = ""
    essential: bool = True

    def line(self) -> str:
        """`ok    kafka     ...` or `FAIL  redis     problem -> fix`: one line, for people."""
        if self.ok:
            return f"ok    {self.name:<9} {self.detail}"
        return f"FAIL  {self.name:<9} {self.detail} -> fix: {self.fix}"


async def run_checks(checks: Sequence[Check], timeout_s: float) -> list[CheckResult]:
    """Run every check at once; each one is given up after `timeout_s` (plus a second)."""
    return list(await asyncio.gather(*(run_check(check, timeout_s) for check in checks)))


async def run_check(check: Check, timeout_s: float) -> CheckResult:
    try:
        detail = await asyncio.wait_for(call(check.run, timeout_s), timeout_s + 1)
    except CheckFailed as failed:
        return CheckResult(check.name, False, failed.problem, failed.fix, check.essential)
    except TimeoutError:
        return CheckResult(
            check.name,
            False,
            f"no answer within {timeout_s:g} s",
            "check that the server runs and that this host may reach it",
            check.essential,
        )
    except Exception as error:  # a check that broke is a failed check, not a crash
        first_line = (str(error).strip().splitlines() or [""])[0]
        return CheckResult(
            check.name,
            False,
            f"the check itself failed: {type(error).__name__}: {first_line}",
            "see the log; this is a bug in the check",
            check.essential,
        )
    return CheckResult(check.name, True, str(detail), "", check.essential)
