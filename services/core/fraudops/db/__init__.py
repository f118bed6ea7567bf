"""PostgreSQL access: connection pools and schema migrations (alembic).

A pool is the one way the platform gets connections: it reconnects after an outage by itself (a
broken connection is dropped when it comes back), and its size comes from DB_POOL_MIN_SIZE /
DB_POOL_MAX_SIZE (`pool_from_settings`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from psycopg_pool import AsyncConnectionPool, ConnectionPool

if TYPE_CHECKING:
    from fraudops.config import Settings

#: Seconds a new connection may take: an unreachable server fails the attempt, and the pool tries again.
CONNECT_TIMEOUT_S = 3


def create_pool(db_url: str, min_size: int = 1, max_size: int = 8, name: str = "fraudops", *, wait: bool = True,
                autocommit: bool = False) -> ConnectionPool:
    """A psycopg 3 connection pool. With `wait`, opened and waited on so that a bad URL fails here, loudly;
    without, it fills in the background (a service that must start while the database is down)."""
    pool = ConnectionPool(db_url, min_size=min_size, max_size=max_size, name=name, open=False,
                          kwargs={"autocommit": autocommit, "connect_timeout": CONNECT_TIMEOUT_S})
    pool.open(wait=wait, timeout=10)
    return pool


def pool_from_settings(settings: Settings, name: str, *, wait: bool = True, autocommit: bool = False) -> ConnectionPool:
    """`create_pool` for DB_URL, sized by DB_POOL_MIN_SIZE / DB_POOL_MAX_SIZE."""
    return create_pool(settings.db_url, settings.db_pool_min_size, settings.db_pool_max_size, name, wait=wait,
                       autocommit=autocommit)


async def create_async_pool(db_url: str, min_size: int = 1, max_size: int = 8,
                            name: str = "fraudops") -> AsyncConnectionPool:
    pool = AsyncConnectionPool(db_url, min_size=min_size, max_size=max_size, name=name, open=False)
    await pool.open(wait=True, timeout=10)
    return pool
