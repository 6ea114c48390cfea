-- PIPL erasure (docs/security.md, "Erasing a student"): an erasure renames the seeker in every row to an
-- anonymous token (consumers.store) and leaves one marker per canonical (family, partition) it was read
-- from, so that an event naming the seeker that arrives later on that partition is not projected. The
-- marker keeps a SHA-256 of the pseudonym, never the pseudonym, and no link to the token.
CREATE TABLE erased_seekers (
    digest    text NOT NULL,
    family    text NOT NULL,
    partition integer NOT NULL,
    erased_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (digest, family, partition)
);
