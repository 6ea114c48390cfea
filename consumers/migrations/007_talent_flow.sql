-- Talent flow (alliance.agg.talent-flow, docs/read-model.md): where hired graduates go. An offer keeps the
-- seeker's university (from the pseudonym; it survives an erasure, which renames only seeker_id) and, from
-- the newest Hired (recruitment.hired v2), when and where: hire_place = 'work_city|degree' (empty parts in v1).
ALTER TABLE offers ADD COLUMN seeker_university text, ADD COLUMN hire_at timestamptz, ADD COLUMN hire_place text;

-- the provinces of the circle's cities and of the member universities, kept equal to events/reference.py by
-- every run of `python -m consumers migrate` (consumers.migrate.sync_reference)
CREATE TABLE reference_cities (city text PRIMARY KEY, province text NOT NULL);
CREATE TABLE reference_universities (code text PRIMARY KEY, province text NOT NULL);

CREATE VIEW portal.talent_flow AS
    SELECT coalesce(o.seeker_university, 'unknown') AS university,
           coalesce(u.province, 'unknown') AS origin,
           CASE WHEN split_part(o.hire_place, '|', 1) = 'outside_circle' THEN 'outside_circle'
                ELSE w.province END AS destination,
           p.industry,
           coalesce(nullif(split_part(o.hire_place, '|', 2), ''), 'unknown') AS degree,
           to_char(o.hire_at AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM') AS month,
           count(*)::int AS hires
    FROM public.offers o
    JOIN public.postings p ON p.posting_id = o.posting_id AND p.posted_at IS NOT NULL
    LEFT JOIN public.reference_universities u ON u.code = o.seeker_university
    LEFT JOIN public.reference_cities w ON w.city = coalesce(nullif(split_part(o.hire_place, '|', 1), ''), p.city)
    WHERE o.hire_at IS NOT NULL
    GROUP BY 1, 2, 3, 4, 5, 6;
