-- Talent flow (alliance.agg.talent-flow, docs/read-model.md): where hired graduates go. An offer keeps the
-- seeker's university (from the pseudonym; it survives an erasure, which renames only seeker_id) and, from
-- the newest Hired (recruitment.hired v2), when and where: hire_place = 'work_city|degree' (empty parts in v1).
ALTER TABLE offers ADD COLUMN seeker_university text, ADD COLUMN hire_at timestamptz, ADD COLUMN hire_place text;

-- the provinces of the circle's cities and of the member universities, kept equal to events/reference.py by
-- every run of `python -m consumers migrate` (consumers.migrate.sync_reference)
CREATE TABLE reference_cities (city text PRIMARY KEY, province text NOT NULL);
CREATE TABLE reference_universities (code text PRIMARY KEY, province text NOT NULL);

-- hires (the newest Hired: its month, work city or else the posting's city, degree) and accepted offers (the
-- newest answer is an acceptance: its month, the posting's city, degree unknown), per seeker university
CREATE VIEW portal.talent_flow AS
    SELECT coalesce(f.seeker_university, 'unknown') AS university,
           coalesce(u.province, 'unknown') AS origin,
           CASE WHEN f.work_city = 'outside_circle' THEN 'outside_circle' ELSE w.province END AS destination,
           p.industry,
           coalesce(nullif(f.degree, ''), 'unknown') AS degree,
           to_char(f.at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month,
           (count(*) FILTER (WHERE f.metric = 'hires'))::int AS hires,
           (count(*) FILTER (WHERE f.metric = 'accepted_offers'))::int AS accepted_offers
    FROM (SELECT 'hires' AS metric, posting_id, seeker_university, hire_at AS at,
                 split_part(hire_place, '|', 1) AS work_city, split_part(hire_place, '|', 2) AS degree
          FROM public.offers WHERE hire_at IS NOT NULL
          UNION ALL
          SELECT 'accepted_offers', posting_id, seeker_university, answered_at, '', ''
          FROM public.offers WHERE answer = 'accepted') f
    JOIN public.postings p ON p.posting_id = f.posting_id AND p.posted_at IS NOT NULL
    LEFT JOIN public.reference_universities u ON u.code = f.seeker_university
    LEFT JOIN public.reference_cities w ON w.city = coalesce(nullif(f.work_city, ''), p.city)
    GROUP BY 1, 2, 3, 4, 5, 6;
