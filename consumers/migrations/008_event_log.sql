-- Corrections and retractions (events.corrections; docs/read-model.md "Corrections and retractions"): every
-- projected event is kept, as it stands now, so that a revision can rebuild its entity's rows from the events
-- left standing. payload is NULL once the event is retracted; a correction replaces it. An erasure renames
-- the seeker inside the payloads of its (family, partition) like in every other row (consumers.store).
CREATE TABLE event_log (
    source      text NOT NULL,
    event_id    uuid NOT NULL,
    family      text NOT NULL,
    partition   integer NOT NULL,
    subject     text NOT NULL,
    type        text NOT NULL,
    employer_id text,                       -- postings and booths name a shared employer row
    payload     jsonb,                      -- NULL: retracted
    revised_at  timestamptz,
    PRIMARY KEY (source, event_id)
);
CREATE INDEX event_log_entity ON event_log (family, subject);
CREATE INDEX event_log_employer ON event_log (employer_id) WHERE employer_id IS NOT NULL;
CREATE INDEX event_log_partition ON event_log (family, partition);
