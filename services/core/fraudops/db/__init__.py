"""PostgreSQL access: connection pools and schema migrations (alembic)."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool, ConnectionPool


def create_pool(db_url: str, min_size: int = 1, max_size: int = 8, name: str = "fraudops") -> ConnectionPool:
    """A psycopg 3 connection pool; opened and waited on so that a bad URL fails here, loudly."""
    pool = ConnectionPool(db_url, min_size=min_size, max_size=max_size, name=name, open=False)
    pool.open(wait=True, timeout=10)
    return pool


async def create_async_pool(
    db_url: str, min_size: int = 1, max_size: int = 8, name: str = "fraudops"
) -> AsyncConnectionPool:
    pool = AsyncConnectionPool(db_url, min_size=min_size, max_size=max_size, name=name, open=False)
    await pool.open(wait=True, timeout=10)
    return pool
