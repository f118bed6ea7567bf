"""Zero amounts are real (card-verification authorisations are $0.00): `transactions.amount >= 0`;
alerts carry their model's name, like the alert messages (`fraudops.decision.ALERT_FIELDS`).

Negative amounts stay refused, by the schema and here: a refund is a REFUND transaction with a
positive amount.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE transactions DROP CONSTRAINT transactions_amount_check")
    op.execute("ALTER TABLE transactions ADD CONSTRAINT transactions_amount_check CHECK (amount >= 0)")
    op.execute("ALTER TABLE alerts ADD COLUMN model_name text")


def downgrade() -> None:
    op.execute("ALTER TABLE alerts DROP COLUMN model_name")
    # Fails while zero-amount rows exist: removing them is a decision for a person, not a migration.
    op.execute("ALTER TABLE transactions DROP CONSTRAINT transactions_amount_check")
    op.execute("ALTER TABLE transactions ADD CONSTRAINT transactions_amount_check CHECK (amount > 0)")
