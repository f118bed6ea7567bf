"""The initial schema: transactions, decisions, alerts, feedback labels, model registry, feature checkpoints.

Revision ID: 0001
"""

from alembic import op

revision = "0001"
down_revision = None

UPGRADE = """
CREATE TABLE transactions (
    transaction_id       text PRIMARY KEY,
    event_time           timestamptz NOT NULL,
    customer_id          text,
    account_id           text,
    card_id              text,
    merchant_id          text,
    merchant_category    text NOT NULL,
    terminal_id          text,
    amount               numeric(14, 2) NOT NULL CHECK (amount > 0),
    currency             char(3) NOT NULL,
    channel              text NOT NULL,
    transaction_type     text NOT NULL,
    auth_result          text,
    is_international     boolean NOT NULL,
    country              char(2),
    latitude             double precision,
    longitude            double precision,
    device_id            text,
    ip_address           text,
    beneficiary_id       text,
    credential_change_at timestamptz,
    hour_of_day          smallint,
    source               text NOT NULL DEFAULT 'stream',   -- stream | api
    kafka_partition      integer,
    kafka_offset         bigint,
    ingested_at          timestamptz NOT NULL DEFAULT now()
);
-- A customer's history, newest first (investigation screens, state rebuilds).
CREATE INDEX transactions_customer_time ON transactions (customer_id, event_time DESC);
-- Append-mostly time column: BRIN is tiny and keeps the insert path fast.
CREATE INDEX transactions_event_time_brin ON transactions USING brin (event_time);

-- One deciding row per transaction, plus one row per shadow variant that scored it.
CREATE TABLE decisions (
    transaction_id  text NOT NULL,
    variant         text NOT NULL,                 -- stable | canary | challenger
    model_name      text NOT NULL,
    model_version   text NOT NULL,
    shadow          boolean NOT NULL DEFAULT false, -- shadow decisions are recorded, never acted on
    score           real NOT NULL CHECK (score >= 0 AND score <= 1),
    threshold       real NOT NULL,
    is_fraud        boolean NOT NULL,
    reasons         jsonb NOT NULL DEFAULT '[]',
    latency_ms      real,
    source          text NOT NULL DEFAULT 'stream',
    decided_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (transaction_id, variant)
);
CREATE UNIQUE INDEX decisions_one_deciding_row ON decisions (transaction_id) WHERE NOT shadow;
CREATE INDEX decisions_decided_at_brin ON decisions USING brin (decided_at);
-- Rollout analysis: per variant over a recent window.
CREATE INDEX decisions_variant_time ON decisions (model_name, variant, decided_at);

CREATE TABLE alerts (
    transaction_id  text PRIMARY KEY,
    customer_id     text,
    score           real NOT NULL,
    threshold       real NOT NULL,
    model_version   text NOT NULL,
    variant         text NOT NULL,
    reasons         jsonb NOT NULL DEFAULT '[]',
    status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'confirmed', 'dismissed')),
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alerts_open_by_time ON alerts (created_at) WHERE status = 'open';

-- Confirmed labels (chargebacks, analyst verdicts) with the time they became known:
-- point-in-time training and precision analysis must only see labels known at the time.
CREATE TABLE feedback_labels (
    transaction_id  text PRIMARY KEY,
    is_fraud        boolean NOT NULL,
    label_known_at  timestamptz NOT NULL,
    source          text NOT NULL DEFAULT 'api',
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX feedback_labels_known_at ON feedback_labels (label_known_at);

CREATE TABLE model_versions (
    name             text NOT NULL,
    version          text NOT NULL,
    uri              text NOT NULL,
    status           text NOT NULL DEFAULT 'candidate'
                     CHECK (status IN ('candidate', 'canary', 'stable', 'retired')),
    threshold        real,
    feature_version  integer,
    metrics          jsonb NOT NULL DEFAULT '{}',
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (name, version)
);
CREATE INDEX model_versions_by_status ON model_versions (name, status);

-- Per-partition snapshots of the online feature state, taken on revoke and periodically;
-- restored on assign, then the records after `next_offset` are replayed.
CREATE TABLE feature_checkpoints (
    consumer_group   text NOT NULL,
    topic            text NOT NULL,
    partition        integer NOT NULL,
    next_offset      bigint NOT NULL,
    feature_version  integer NOT NULL,
    entities         integer NOT NULL,
    state            bytea NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
"""

DOWNGRADE = """
DROP TABLE IF EXISTS feature_checkpoints;
DROP TABLE IF EXISTS model_versions;
DROP TABLE IF EXISTS feedback_labels;
DROP TABLE IF EXISTS alerts;
DROP TABLE IF EXISTS decisions;
DROP TABLE IF EXISTS transactions;
"""


def upgrade() -> None:
    op.execute(UPGRADE)


def downgrade() -> None:
    op.execute(DOWNGRADE)
