"""alembic migrations of the fraudops schema."""
