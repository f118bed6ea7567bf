"""PostgreSQL access: connection pools (the one way a service gets a connection) and schema migrations.

Pool connections are in autocommit mode: a unit of work that needs a transaction opens one
(`conn.transaction()`), everything else commits statement by statement. A connection that broke
(the server restarted, a backend was terminated) is dropped by the pool when it comes back and
replaced in the background, so a caller sees at most one `OperationalError` per broken connection.
"""

from __future__ import annotations

from typing import Any

from psycopg_pool import AsyncConnectionPool, ConnectionPool

#: How long one connection attempt may take (libpq's connect_timeout).
CONNECT_TIMEOUT_S = 3
#: How long the pool keeps trying to replace a lost connection before it reports the failure; it tries
#: again whenever a caller then waits for a connection.
RECONNECT_TIMEOUT_S = 60.0


def _connection_options() -> dict[str, Any]:
    return {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}


def create_pool(db_url: str, min_size: int = 1, max_size: int = 8, name: str = "fraudops") -> ConnectionPool:
    """A psycopg 3 connection pool; opened and waited on so that a bad URL fails here, loudly."""
    pool = ConnectionPool(db_url, min_size=min_size, max_size=max_size, name=name, open=False)
    pool.open(wait=True, timeout=10)
    return pool


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
