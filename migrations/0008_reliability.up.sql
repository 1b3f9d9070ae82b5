-- Leadership with a deadline (the outbox dispatcher): a holder renews its lease every few
-- seconds; one that stops renewing (hung, cut off) loses it when it expires. Times are the
-- database's clock, so the processes' clocks never matter.
CREATE TABLE leases (
    name       text        PRIMARY KEY,
    holder     text        NOT NULL,
    expires_at timestamptz NOT NULL
);

-- A transition that can never reach its workflow (the workflow is gone) is resolved in the
-- read model and counted, never dropped silently.
ALTER TABLE outbox ADD COLUMN undeliverable boolean NOT NULL DEFAULT false;
CREATE INDEX outbox_undeliverable_idx ON outbox (id) WHERE undeliverable;

-- When the API could hear enclosures: listen_at is when it began listening after its last
-- outage, alive_at its last renewal (every few seconds by any serve process). The fleet monitor
-- judges silence only over time the API was listening.
CREATE TABLE api_listening (
    name      text        PRIMARY KEY,
    listen_at timestamptz NOT NULL,
    alive_at  timestamptz NOT NULL
);
