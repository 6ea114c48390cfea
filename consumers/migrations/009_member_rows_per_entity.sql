-- A member row is keyed by its entity as well as by its own id (consumers.tables; docs/read-model.md). Before,
-- applications, offers, on-site offers and mentoring sessions were keyed by their id alone: a university that
-- used, on its own posting, fair or mentor, an id another university had used (by mistake or not) merged its
-- event into the other university's row, moving it to its own entity. The worker and the oracle always kept
-- them per entity.
ALTER TABLE applications DROP CONSTRAINT applications_pkey, ADD PRIMARY KEY (posting_id, application_id);
ALTER TABLE offers DROP CONSTRAINT offers_pkey, ADD PRIMARY KEY (posting_id, offer_id);
ALTER TABLE fair_offers DROP CONSTRAINT fair_offers_pkey, ADD PRIMARY KEY (fair_id, offer_id);
ALTER TABLE mentoring_sessions DROP CONSTRAINT mentoring_sessions_pkey, ADD PRIMARY KEY (mentor_id, session_id);
DROP INDEX applications_posting, offers_posting, fair_offers_fair, mentoring_sessions_mentor;  -- (the keys lead)

-- Entities whose rows the projector rebuilds from event_log at its next batch (consumers.store), then forgets.
CREATE TABLE pending_rebuilds (
    family  text NOT NULL,
    subject text NOT NULL,
    PRIMARY KEY (family, subject)
);
-- The entities to rebuild: every one that shares such an id with another (their rows were merged), and every one
-- with a standing event of those kinds whose row is not under it (moved to another entity, and deleted there when
-- that entity was rebuilt).
WITH kinds (type, kind, field) AS (VALUES
    ('recruitment.application_submitted', 'applications', 'application_id'),
    ('recruitment.offer_made', 'offers', 'offer_id'), ('recruitment.offer_accepted', 'offers', 'offer_id'),
    ('recruitment.offer_declined', 'offers', 'offer_id'), ('recruitment.hired', 'offers', 'offer_id'),
    ('jobfair.onsite_offer_made', 'fair_offers', 'offer_id'),
    ('mentoring.session_held', 'mentoring_sessions', 'session_id')),
members AS (
    SELECT l.family, l.subject, k.kind, l.payload->'data'->>k.field AS id
    FROM event_log l JOIN kinds k ON l.type = k.type
    WHERE l.payload IS NOT NULL),
shared AS (
    SELECT kind, id FROM members GROUP BY kind, id HAVING count(DISTINCT subject) > 1)
INSERT INTO pending_rebuilds (family, subject)
SELECT family, subject FROM members m JOIN shared s USING (kind, id)
UNION
SELECT family, subject FROM members m WHERE NOT CASE kind
    WHEN 'applications' THEN EXISTS (SELECT 1 FROM applications r WHERE r.posting_id = m.subject
                                                                   AND r.application_id = m.id)
    WHEN 'offers' THEN EXISTS (SELECT 1 FROM offers r WHERE r.posting_id = m.subject AND r.offer_id = m.id)
    WHEN 'fair_offers' THEN EXISTS (SELECT 1 FROM fair_offers r WHERE r.fair_id = m.subject AND r.offer_id = m.id)
    ELSE EXISTS (SELECT 1 FROM mentoring_sessions r WHERE r.mentor_id = m.subject AND r.session_id = m.id) END
ON CONFLICT DO NOTHING;
