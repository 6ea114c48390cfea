-- A flag on a shared employer is the flagging university's own judgement (events.ownership): one row per
-- employer and university instead of one alliance-wide flag that any single member could set. Flags
-- projected before this migration did not keep their university; replaying alliance.events.recruitment
-- into a fresh read model (docs/operations.md) fills employer_flags for them.
CREATE TABLE employer_flags (
    employer_id text NOT NULL,
    university text NOT NULL,
    severity text,
    reason text,
    postings_affected integer,
    flagged_at timestamptz,
    PRIMARY KEY (employer_id, university)
);
ALTER TABLE employers DROP COLUMN flag_severity, DROP COLUMN flag_reason, DROP COLUMN postings_affected,
    DROP COLUMN flagged_at;
