"""Transactions keep their extra fields (`fraudops.extras`): a bank's own columns, as received, in jsonb.

Stored with the transaction so that what a model was given survives it: a replay of the stream
writes the same values (idempotently, they come with the record), and a retraining on stored
transactions reads them back and encodes them as the first training did. NULL: none were sent.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.execute("ALTER TABLE transactions ADD COLUMN extras jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE transactions DROP COLUMN extras")
