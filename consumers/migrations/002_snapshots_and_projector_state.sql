-- Aggregated compacted topics (alliance.agg.<name>), stored generically; newest updated_at wins.
CREATE TABLE agg_snapshot (
    aggregate  text NOT NULL,
    key        text NOT NULL,
    dims       jsonb NOT NULL,
    value      jsonb NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (aggregate, key)
);

-- The projector's position, written in the same transaction as the rows it produced.
CREATE TABLE consumer_offsets (
    group_id    text NOT NULL,
    topic       text NOT NULL,
    partition   integer NOT NULL,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Records the projector could not decode: kept with the reason, never silently skipped.
CREATE TABLE projector_rejects (
    topic       text NOT NULL,
    partition   integer NOT NULL,
    "offset"    bigint NOT NULL,
    group_id    text NOT NULL,
    key         bytea,
    value       bytea,
    reason      text NOT NULL,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition, "offset")
);
