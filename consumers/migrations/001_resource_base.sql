-- The shared employment-information resource base of the alliance (read model).
-- Every fact table is keyed by its natural id so that applying the same event twice changes nothing.
-- Columns named *_at are the occurred_at of the event that set the fields next to them: newer events win
-- ("newest") except where noted ("earliest": first close, first check-in, first hire).

CREATE TABLE employers (
    employer_id       text PRIMARY KEY,
    name              text,
    employer_type     text,
    industry          text,
    seen_at           timestamptz,          -- newest JobPosted/BoothRegistered naming the employer
    flag_severity     text,
    flag_reason       text,
    postings_affected integer,
    flagged_at        timestamptz           -- newest EmployerFlagged
);

CREATE TABLE postings (
    posting_id     text PRIMARY KEY,
    university     text,                    -- envelope source of JobPosted
    employer_id    text,
    employer_name  text,
    employer_type  text,
    industry       text,
    city           text,
    district       text,
    kind           text,
    degree_min     text,
    description    text,
    posted_at      timestamptz,             -- NULL: only later events seen so far (placeholder)
    title          text,
    title_at       timestamptz,
    positions      integer,
    positions_at   timestamptz,
    salary_min     integer,
    salary_min_at  timestamptz,
    salary_max     integer,
    salary_max_at  timestamptz,
    deadline       date,
    deadline_at    timestamptz,
    closed_at      timestamptz,             -- earliest close; a closed posting stays closed
    close_reason   text,
    state          text GENERATED ALWAYS AS (CASE WHEN closed_at IS NULL THEN 'open' ELSE 'closed' END) STORED,
    applications   integer NOT NULL DEFAULT 0,
    offers         integer NOT NULL DEFAULT 0,
    accepted       integer NOT NULL DEFAULT 0,
    declined       integer NOT NULL DEFAULT 0,
    hired          integer NOT NULL DEFAULT 0
);
CREATE INDEX postings_segment ON postings (industry, city, employer_type) WHERE closed_at IS NULL;
CREATE INDEX postings_university ON postings (university);

CREATE TABLE applications (
    application_id text PRIMARY KEY,
    posting_id     text NOT NULL,
    seeker_id      text NOT NULL,
    degree         text,
    university     text,
    submitted_at   timestamptz
);
CREATE INDEX applications_posting ON applications (posting_id);

CREATE TABLE offers (
    offer_id       text PRIMARY KEY,
    posting_id     text NOT NULL,
    seeker_id      text NOT NULL,
    seen_at        timestamptz,             -- earliest event about the offer
    application_id text,
    salary_monthly integer,
    university     text,
    made_at        timestamptz,             -- NULL while only the answer has arrived
    answer         text CHECK (answer IN ('accepted', 'declined')),
    answered_at    timestamptz,             -- newest answer wins
    start_date     date,
    hired_at       timestamptz              -- earliest Hired
);
CREATE INDEX offers_posting ON offers (posting_id);

CREATE TABLE fairs (
    fair_id         text PRIMARY KEY,
    university      text,
    name            text,
    host_university text,
    city            text,
    venue           text,
    starts_at       timestamptz,
    ends_at         timestamptz,
    expected_booths integer,
    scheduled_at    timestamptz,            -- NULL: placeholder, the schedule event has not arrived
    closed_at       timestamptz,
    state           text GENERATED ALWAYS AS (CASE WHEN closed_at IS NULL THEN 'open' ELSE 'closed' END) STORED,
    booths          integer NOT NULL DEFAULT 0,
    checkins        integer NOT NULL DEFAULT 0,   -- distinct job seekers
    onsite_offers   integer NOT NULL DEFAULT 0
);

CREATE TABLE booths (
    fair_id           text NOT NULL,
    booth_id          text NOT NULL,
    employer_id       text,
    employer_name     text,
    employer_type     text,
    industry          text,
    positions_offered integer,
    registered_at     timestamptz,
    PRIMARY KEY (fair_id, booth_id)
);

CREATE TABLE fair_checkins (
    fair_id   text NOT NULL,
    seeker_id text NOT NULL,
    first_at  timestamptz,
    PRIMARY KEY (fair_id, seeker_id)
);

CREATE TABLE fair_offers (
    offer_id  text PRIMARY KEY,
    fair_id   text NOT NULL,
    booth_id  text,
    seeker_id text,
    made_at   timestamptz
);
CREATE INDEX fair_offers_fair ON fair_offers (fair_id);

CREATE TABLE mentors (
    mentor_id       text PRIMARY KEY,
    university      text,
    expertise       text,
    industry        text,
    employer_type   text,
    title           text,
    registered_at   timestamptz,
    assigned        integer NOT NULL DEFAULT 0,
    sessions        integer NOT NULL DEFAULT 0,
    session_minutes integer NOT NULL DEFAULT 0,
    seekers_served  integer NOT NULL DEFAULT 0   -- distinct seekers over all sessions
);

CREATE TABLE mentor_assignments (
    mentor_id   text NOT NULL,
    seeker_id   text NOT NULL,
    assigned_at timestamptz,
    PRIMARY KEY (mentor_id, seeker_id)
);

CREATE TABLE mentoring_sessions (
    session_id       text PRIMARY KEY,
    mentor_id        text NOT NULL,
    topic            text,
    seeker_ids       text[],
    duration_minutes integer,
    held_at          timestamptz
);
CREATE INDEX mentoring_sessions_mentor ON mentoring_sessions (mentor_id);

-- One row per service delivered; kind in briefing, counselling, recommendation, training.
-- ref: the recommended posting (recommendations count distinct postings) or the program kind.
CREATE TABLE service_items (
    seeker_id   text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('briefing', 'counselling', 'recommendation', 'training')),
    item_id     text NOT NULL,
    ref         text,
    university  text,
    occurred_at timestamptz,
    PRIMARY KEY (seeker_id, kind, item_id)
);

-- The 1 briefing, 1 counselling, 3 recommendations, 1 training/internship guarantee, per job seeker.
CREATE TABLE service_progress (
    seeker_id       text PRIMARY KEY,
    university      text,
    briefings       integer NOT NULL DEFAULT 0,
    counsellings    integer NOT NULL DEFAULT 0,
    recommendations integer NOT NULL DEFAULT 0,   -- distinct recommended postings
    trainings       integer NOT NULL DEFAULT 0,
    fully_served    boolean GENERATED ALWAYS AS (
        briefings >= 1 AND counsellings >= 1 AND recommendations >= 3 AND trainings >= 1) STORED,
    updated_at      timestamptz
);
CREATE INDEX service_progress_university ON service_progress (university);
