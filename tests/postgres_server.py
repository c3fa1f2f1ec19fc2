"""The real PostgreSQL 15 the Postgres tests use, and a fresh database for each test.

`make test` starts it (`make services`). When it does not answer, the tests are skipped
with that advice, except in CI (CI=true), where a missing server is a failure. Each test
gets its own database, copied from a template made once per run from `appliance_test`
(which has the `hll` extension; the test role may not create it), or from `template0` for
the exact-count profile of servers without hll.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest

from plugins.store_postgres.config import PostgresSettings
from plugins.store_postgres.db import Database

SERVER = "postgresql://appliance:appliance@127.0.0.1:5432"
ADMIN_DSN = f"{SERVER}/postgres"
HLL_SOURCE = "appliance_test"
_state: dict[str, str | None] = {}  # "problem": why not (or None), "template": its name


def require_postgres() -> None:
    """Skip (fail in CI) when the server does not answer."""
    if "problem" not in _state:
        try:
            with psycopg.connect(ADMIN_DSN, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _state["problem"] = None
        except psycopg.OperationalError as error:
            first_line = str(error).strip().splitlines()[0]
            _state["problem"] = (
                f"no PostgreSQL answers at 127.0.0.1:5432 as role appliance ({first_line});"
                " start it with `make services` (or `bash services/up.sh postgres`)"
            )
    problem = _state["problem"]
    if problem is not None:
        _unavailable(problem)


def _unavailable(reason: str) -> None:
    """Skip with advice; in CI (CI=true) what the suite needs must be there: fail."""
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"{reason} (CI=true)")
    pytest.skip(reason)


def _admin() -> psycopg.Connection:
    return psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=10)


def _create(name: str, template: str) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            with _admin() as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
            return
        except psycopg.errors.ObjectInUse:  # someone is connected to the template
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def drop(name: str) -> None:
    """Drop, waiting out a moment of autovacuum (FORCE may not stop a superuser's worker)."""
    deadline = time.monotonic() + 10
    while True:
        try:
            with _admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg.errors.ObjectInUse, psycopg.errors.InsufficientPrivilege):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def hll_template() -> str:
    """A copy of appliance_test made once per run: nobody else connects to it."""
    if "template" not in _state:
        with psycopg.connect(f"{SERVER}/{HLL_SOURCE}", connect_timeout=3) as conn:
            if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'hll'").fetchone() is None:
                _unavailable(
                    f"the hll extension is not in {HLL_SOURCE} (services/up.sh installs"
                    " postgresql-15-hll when apt has it); the sketch tests need it"
                )
        name = f"appliance_tpl_{uuid.uuid4().hex[:10]}"
        _create(name, HLL_SOURCE)
        _state["template"] = name
        atexit.register(drop_template)
    return str(_state["template"])


def drop_template() -> None:
    if _state.get("template"):
        with contextlib.suppress(psycopg.Error):
            drop(str(_state.pop("template")))


@contextmanager
def fresh_database(sketches: bool = True) -> Iterator[str]:
    """A new, empty database (hll available or not); yields its DSN, dropped afterwards."""
    require_postgres()
    name = f"appliance_t_{uuid.uuid4().hex[:12]}"
    _create(name, hll_template() if sketches else "template0")
    try:
        yield f"{SERVER}/{name}"
    finally:
        drop(name)


def settings_for(dsn: str, **changes: object) -> PostgresSettings:
    values: dict[str, object] = {
        "dsn": dsn, "sslmode": "", "pool_min": 1, "pool_max": 4, "pool_timeout_s": 2,
        "connect_timeout_s": 2, "prepared_statements": True, "retention_days": 0,
    }  # fmt: skip
    return PostgresSettings(**(values | changes))  # type: ignore[arg-type]


def database(dsn: str, **changes: object) -> Database:
    return Database(settings_for(dsn, **changes))
