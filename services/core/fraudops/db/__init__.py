"""PostgreSQL access: connection pools (the one way a service gets a connection) and schema migrations.

A pool reconnects after an outage by itself: a connection that broke (the server restarted, a backend
was terminated) is dropped by the pool when it comes back and replaced in the background, so a caller
sees at most one `OperationalError` per broken connection. Sizes come from DB_POOL_MIN_SIZE /
DB_POOL_MAX_SIZE (`pool_from_settings`). Async pool connections are in autocommit mode: a unit of work
that needs a transaction opens one (`conn.transaction()`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg_pool import AsyncConnectionPool, ConnectionPool

if TYPE_CHECKING:
    from fraudops.config import Settings

#: How long one connection attempt may take (libpq's connect_timeout): an unreachable server fails the
#: attempt, and the pool tries again.
CONNECT_TIMEOUT_S = 3
#: How long the pool keeps trying to replace a lost connection before it reports the failure; it tries
#: again whenever a caller then waits for a connection.
RECONNECT_TIMEOUT_S = 60.0


def _connection_options(autocommit: bool = True) -> dict[str, Any]:
    return {"autocommit": autocommit, "connect_timeout": CONNECT_TIMEOUT_S}


def create_pool(
    db_url: str,
    min_size: int = 1,
    max_size: int = 8,
    name: str = "fraudops",
    *,
    wait: bool = True,
    autocommit: bool = False,
) -> ConnectionPool:
    """A psycopg 3 connection pool. With `wait`, opened and waited on so that a bad URL fails here, loudly;
    without, it fills in the background (a service that must start while the database is down)."""
    pool = ConnectionPool(
        db_url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs=_connection_options(autocommit),
    )
    pool.open(wait=wait, timeout=10)
    return pool


def pool_from_settings(
    settings: Settings, name: str, *, wait: bool = True, autocommit: bool = False
) -> ConnectionPool:
    """`create_pool` for DB_URL, sized by DB_POOL_MIN_SIZE / DB_POOL_MAX_SIZE."""
    return create_pool(
        settings.db_url,
        settings.db_pool_min_size,
        settings.db_pool_max_size,
        name,
        wait=wait,
        autocommit=autocommit,
    )


def async_pool(
    db_url: str, min_size: int = 1, max_size: int = 8, name: str = "fraudops"
) -> AsyncConnectionPool:
    """An asyncio pool of autocommit connections, not yet open (`await pool.open()` on the event loop).

    Opened without waiting, a service starts while PostgreSQL is away and the pool connects when
    it is back; each `pool.connection(timeout=…)` says how long its caller can wait.
    """
    return AsyncConnectionPool(
        db_url,
        min_size=min_size,
        max_size=max_size,
        name=name,
        open=False,
        kwargs=_connection_options(),
        reconnect_timeout=RECONNECT_TIMEOUT_S,
    )


async def create_async_pool(
    db_url: str, min_size: int = 1, max_size: int = 8, name: str = "fraudops"
) -> AsyncConnectionPool:
    """`async_pool`, opened and waited on so that a bad URL fails here, loudly."""
    pool = async_pool(db_url, min_size, max_size, name)
    await pool.open(wait=True, timeout=10)
    return pool
