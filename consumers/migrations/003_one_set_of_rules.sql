-- One set of rules for the topics and the read model (docs/read-model.md "One set of rules"):
-- an entity that only later events have named (a placeholder: no JobPosted / JobFairScheduled yet) is
-- 'pending', as on alliance.agg.posting-funnel and alliance.agg.fairs; a closed one stays 'closed'.
ALTER TABLE postings DROP COLUMN state;
ALTER TABLE postings ADD COLUMN state text GENERATED ALWAYS AS (
    CASE WHEN closed_at IS NOT NULL THEN 'closed' WHEN posted_at IS NOT NULL THEN 'open' ELSE 'pending' END) STORED;
ALTER TABLE fairs DROP COLUMN state;
ALTER TABLE fairs ADD COLUMN state text GENERATED ALWAYS AS (
    CASE WHEN closed_at IS NOT NULL THEN 'closed' WHEN scheduled_at IS NOT NULL THEN 'open' ELSE 'pending' END) STORED;
-- hired: distinct job seekers hired for the posting (one student hired through two offers is one hire);
-- recomputed for every posting by the projector's recount from here on.
UPDATE postings p SET hired = c.hired
FROM (SELECT posting_id, (count(DISTINCT seeker_id) FILTER (WHERE hired_at IS NOT NULL))::int AS hired
      FROM offers GROUP BY posting_id) c
WHERE p.posting_id = c.posting_id AND p.hired IS DISTINCT FROM c.hired;
