"""Apply or roll back the database schema with alembic, from code (no alembic.ini needed)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def sqlalchemy_url(db_url: str) -> str:
    """alembic speaks SQLAlchemy URLs; we keep libpq URLs everywhere else and use the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if db_url.startswith(prefix):
            return "postgresql+psycopg://" + db_url[len(prefix) :]
    return db_url


def _config(db_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sqlalchemy_url(db_url).replace("%", "%%"))
    return config


def upgrade(db_url: str, revision: str = "head") -> None:
    command.upgrade(_config(db_url), revision)


def downgrade(db_url: str, revision: str = "base") -> None:
    command.downgrade(_config(db_url), revision)


def current_revision(db_url: str) -> str | None:
    engine = create_engine(sqlalchemy_url(db_url))
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()
