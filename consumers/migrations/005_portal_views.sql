-- What portals may read: schema "portal" holds views without per-student rows or raw records; the portal
-- role (alliance_portal, core/db_access.py) may read these views and nothing else. The views run with their
-- owner's rights, so the portal role needs no right on the tables underneath.
CREATE SCHEMA IF NOT EXISTS portal;

CREATE VIEW portal.postings AS
    SELECT posting_id, university, employer_id, employer_name, employer_type, industry, city, district, kind,
           degree_min, title, positions, salary_min, salary_max, deadline, posted_at, closed_at, close_reason,
           state, applications, offers, accepted, declined, hired
    FROM public.postings;

CREATE VIEW portal.fairs AS
    SELECT fair_id, university, name, host_university, city, venue, starts_at, ends_at, expected_booths,
           scheduled_at, closed_at, state, booths, checkins, onsite_offers
    FROM public.fairs;

CREATE VIEW portal.mentors AS
    SELECT mentor_id, university, expertise, industry, employer_type, registered_at, assigned, sessions,
           session_minutes, seekers_served
    FROM public.mentors;

-- the 1-1-3-1 guarantee per university: counts only, never a job seeker's own row
CREATE VIEW portal.service_guarantee AS
    SELECT university, count(*) AS seekers,
           count(*) FILTER (WHERE briefings >= 1) AS briefed,
           count(*) FILTER (WHERE counsellings >= 1) AS counselled,
           count(*) FILTER (WHERE recommendations >= 3) AS three_recommendations,
           count(*) FILTER (WHERE trainings >= 1) AS trained,
           count(*) FILTER (WHERE fully_served) AS fully_served
    FROM public.service_progress
    GROUP BY university;

CREATE VIEW portal.snapshots AS
    SELECT aggregate, key, dims, value, updated_at
    FROM public.agg_snapshot
    WHERE key NOT LIKE 'seeker:%';  -- per-student records are not for portals

CREATE VIEW portal.projector_positions AS
    SELECT group_id, topic, partition, next_offset, updated_at FROM public.consumer_offsets;

CREATE VIEW portal.projector_rejects AS  -- counts: the rejected records themselves may hold anything
    SELECT topic, reason, count(*) AS records, max(rejected_at) AS newest
    FROM public.projector_rejects
    GROUP BY topic, reason;
