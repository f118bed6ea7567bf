"""The state rows PostgreSQL compresses are compressed with lz4, where the server has it (PostgreSQL 14+
built with lz4, as Debian's and the official images are): a customer's ~3.8 KB feature state and the
entity-state component's queue of open-epoch events. pglz took four times as long as lz4 on a
checkpoint of 16,000 customers (2.3 s against 0.5 s), on the cores the stream shares with the database;
lz4's rows are ~10% larger (887 bytes against 800 a customer). The published entity deltas are not
compressed at all, as the snapshots are not.

Only rows written from now on are compressed with lz4; older ones stay readable as they are. The
checkpoint's staging table follows the column (`fraudops.statestore.save_customers`).

Revision ID: 0006
"""

from alembic import op

revision = "0006"
down_revision = "0005"

COLUMNS = (
    ("customer_feature_state", "state"),
    ("entity_component_state", "queue"),
)


def upgrade() -> None:
    # Published deltas are the snapshots' rows (migration 0004): stored as they are, not compressed. A
    # minute of 2,000 tx/s changes ~50,000 rows (~15 MB): compressing them would delay the epoch's publish
    # and every scorer's read of it, where a read a minute late is the latency of the stream.
    op.execute("ALTER TABLE entity_table_deltas ALTER COLUMN body SET STORAGE EXTERNAL")
    op.execute(
        f"""DO $$
            BEGIN
                IF 'lz4' = ANY (SELECT unnest(enumvals) FROM pg_settings
                                WHERE name = 'default_toast_compression') THEN
                    {" ".join(f"ALTER TABLE {t} ALTER COLUMN {c} SET COMPRESSION lz4;" for t, c in COLUMNS)}
                END IF;
            END $$"""
    )


def downgrade() -> None:
    op.execute("ALTER TABLE entity_table_deltas ALTER COLUMN body SET STORAGE EXTENDED")
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION default")
