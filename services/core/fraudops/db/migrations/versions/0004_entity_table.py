"""The published entity table: per-epoch deltas, snapshots, and the entity-state component's position
(`fraudops.entitystore`, docs/entity-features.md).

Revision ID: 0004
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.execute(
        """CREATE TABLE entity_table_deltas (
               topic text NOT NULL,
               epoch bigint NOT NULL,
               body bytea NOT NULL,
               created_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (topic, epoch))"""
    )
    op.execute(
        """CREATE TABLE entity_table_snapshots (
               topic text NOT NULL,
               epoch bigint NOT NULL,
               body bytea NOT NULL,
               created_at timestamptz NOT NULL DEFAULT now(),
               PRIMARY KEY (topic, epoch))"""
    )
    op.execute(
        """CREATE TABLE entity_component_state (
               topic text PRIMARY KEY,
               feature_version integer NOT NULL,
               epoch bigint NOT NULL,
               offsets jsonb NOT NULL,
               labels_cursor timestamptz,
               queue bytea NOT NULL,
               feature_config jsonb NOT NULL,
               updated_at timestamptz NOT NULL DEFAULT now())"""
    )
    # Snapshots of a million entities are ~300 MB: stored out of line, not compressed (they barely compress).
    op.execute("ALTER TABLE entity_table_snapshots ALTER COLUMN body SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute("DROP TABLE entity_component_state")
    op.execute("DROP TABLE entity_table_snapshots")
    op.execute("DROP TABLE entity_table_deltas")
