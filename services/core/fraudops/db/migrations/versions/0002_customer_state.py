"""Per-customer online feature state (consumer writes, gateway reads); transactions.account_opened_at.

Revision ID: 0002
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE customer_feature_state (
            customer_id      text PRIMARY KEY,
            topic            text NOT NULL,
            partition        integer NOT NULL,
            feature_version  integer NOT NULL,
            state            bytea NOT NULL,
            updated_at       timestamptz NOT NULL DEFAULT now()
        );
        -- Restoring a partition on assignment reads all of its customers.
        CREATE INDEX customer_feature_state_partition ON customer_feature_state (topic, partition);
        ALTER TABLE customer_feature_state SET (fillfactor = 80);  -- room for HOT updates on re-checkpoints
        ALTER TABLE transactions ADD COLUMN account_opened_at timestamptz;
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE IF EXISTS customer_feature_state")
    op.execute("ALTER TABLE transactions DROP COLUMN IF EXISTS account_opened_at")
