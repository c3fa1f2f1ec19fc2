"""One connection pool per database, shared by the account and analytics stores.

Every use goes through `connection()`, which turns "the server is not there" (refused,
restarted, pool exhausted while it is away) into StoreUnavailable with a message that names
the server, never the password; the web layer answers 503 with it and the processor retries.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from appliance.core.stores import StoreUnavailable
from plugins.store_postgres.config import PostgresSettings

UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)


class Database:
    """Opened by each store that uses it; the pool lives while at least one has it open."""

    def __init__(self, settings: PostgresSettings) -> None:
        self.settings = settings
        self._pool: ConnectionPool | None = None
        self._users = 0
        self._lock = threading.Lock()

    def open(self) -> None:
        with self._lock:
            if self._pool is None:
                pool = ConnectionPool(
                    self.settings.dsn,
                    kwargs=self.settings.connection_kwargs(),
                    min_size=self.settings.pool_min,
                    max_size=self.settings.pool_max,
                    timeout=self.settings.pool_timeout_s,
                    # A connection that died with a restarted server is replaced, not used.
                    check=ConnectionPool.check_connection,
                    name="appliance",
                    open=False,
                )
                try:
                    pool.open(wait=True, timeout=self.settings.connect_timeout_s)
                except UNREACHABLE as error:
                    pool.close()
                    raise self.unavailable(self._why_no_connection()) from error
                self._pool = pool
            self._users += 1

    def close(self) -> None:
        with self._lock:
            self._users = max(0, self._users - 1)
            if self._users == 0 and self._pool is not None:
                self._pool.close()
                self._pool = None

    @contextmanager
    def connection(self, setup: bytes = b"") -> Iterator[psycopg.Connection]:
        """A pooled connection in a transaction, committed on success, rolled back on error.

        `setup` runs first: `SET LOCAL` statements, which end with the transaction (so they
        work through a transaction-mode pooler too).
        """
        if self._pool is None:
            raise RuntimeError("postgres store is not open")
        try:
            with self._pool.connection() as conn:
                if setup:
                    conn.execute(setup)
                yield conn
        except PoolTimeout as error:
            raise self.unavailable(self._why_no_connection()) from error
        except UNREACHABLE as error:
            raise self.unavailable(error) from error

    def unavailable(self, error: Exception | str) -> StoreUnavailable:
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0]
        reason = reason.removeprefix("connection failed: ")
        return StoreUnavailable(f"postgres at {self.settings.where()} is unavailable: {reason}")

    def _why_no_connection(self) -> str:
        """The pool only says it waited; one direct attempt says why (refused, auth...)."""
        kwargs = self.settings.connection_kwargs() | {"connect_timeout": 2}
        try:
            psycopg.connect(self.settings.dsn, **kwargs).close()
        except UNREACHABLE as error:
            return str(error)
        return (
            f"all {self.settings.pool_max} pooled connections stayed busy for"
            f" {self.settings.pool_timeout_s:g} s (raise POSTGRES.POOL_MAX)"
        )
