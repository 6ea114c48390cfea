"""Realistic sample events for tests, and the generator of the committed sample files in tests/data/.

``python -m tests.data.samples`` rewrites the files (deterministic: fixed seed, fixed ids, fixed key):
  events-<university>.jsonl   a semester of one university's employment work: every event type
  mixed-scu.jsonl             good lines interleaved with bad ones; mixed-scu.expected.json lists the bad
  mixed-cqu.csv               the same idea as CSV;                  mixed-cqu.expected.json
"""

from __future__ import annotations

import copy
import json
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events.privacy import named_seekers, pseudonymise
from events.reference import UNIVERSITIES

DATA_DIR = Path(__file__).resolve().parent
SAMPLE_UNIVERSITIES = ("scu", "cqu", "uestc")
TEST_KEY = "test-pseudonym-key-0123456789abcdef"
_CST = "+08:00"

EMPLOYERS = [
    ("emp-boe-cd", "京东方（成都）光电科技有限公司", "state_owned", "electronics", "chengdu"),
    ("emp-tencent-cd", "腾讯科技（成都）有限公司", "private", "it_software", "chengdu"),
    ("emp-changan", "重庆长安汽车股份有限公司", "state_owned", "automotive", "chongqing"),
    ("emp-cqrcb", "重庆农村商业银行", "state_owned", "finance", "chongqing"),
    ("emp-intel-cd", "英特尔产品（成都）有限公司", "foreign", "electronics", "chengdu"),
    ("emp-wchscu", "四川大学华西医院", "public_institution", "healthcare", "chengdu"),
    ("emp-mianyang-tech", "绵阳科技城新创科技", "startup", "it_software", "mianyang"),
    ("emp-cq-court", "重庆市渝中区人民法院", "government", "legal", "chongqing"),
]
TITLES = {
    "electronics": ["显示面板工艺工程师", "硬件测试工程师"],
    "it_software": ["后端开发工程师", "数据分析师", "测试开发工程师"],
    "automotive": ["整车电控工程师", "智能驾驶算法实习生"],
    "finance": ["柜员储备生", "风险管理专员"],
    "healthcare": ["临床研究协调员"],
    "legal": ["法官助理"],
}


def seeker(university: str, n: int) -> str:
    return pseudonymise(university, f"2021{n:06d}", TEST_KEY)


class _Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def tick(self, rng: random.Random, max_minutes: int = 600) -> str:
        self.now += timedelta(minutes=rng.randint(1, max_minutes))
        return self.now.strftime("%Y-%m-%dT%H:%M:%S") + _CST


def _ev(university: str, n: int, etype: str, at: str, data: dict[str, Any]) -> dict[str, Any]:
    eid = uuid.uuid5(uuid.NAMESPACE_URL, f"alliance-sample/{university}/{n}")
    return {"event_id": str(eid), "type": etype, "source": university, "occurred_at": at,
            "schema_version": 1, "data": data}


def semester(university: str, seed: int = 7, postings: int = 6, seekers: int = 12) -> list[dict[str, Any]]:
    """A realistic, valid sequence of one university's events covering every event type."""
    rng = random.Random(f"{university}-{seed}")
    clock = _Clock(datetime(2025, 3, 3, 8, 30, tzinfo=UTC) - timedelta(hours=8))
    out: list[dict[str, Any]] = []

    def add(etype: str, data: dict[str, Any], max_minutes: int = 600) -> None:
        out.append(_ev(university, len(out), etype, clock.tick(rng, max_minutes), data))

    people = [seeker(university, i) for i in range(seekers)]
    # recruitment
    for p in range(postings):
        emp_id, emp_name, emp_type, industry, city = EMPLOYERS[(p + len(university)) % len(EMPLOYERS)]
        pid = f"{university}-post-{p:04d}"
        low = rng.choice([6000, 8000, 10000, 12000])
        add("recruitment.job_posted", {
            "posting_id": pid, "employer_id": emp_id, "employer_name": emp_name, "employer_type": emp_type,
            "industry": industry, "city": city, "district": "高新区" if city == "chengdu" else None,
            "title": rng.choice(TITLES[industry]),
            "description": "负责产品研发与测试，欢迎应届毕业生投递简历。" if p % 2 else None,
            "kind": "internship" if p % 3 == 2 else "full_time", "positions": rng.randint(1, 20),
            "degree_min": rng.choice(["bachelor", "master"]), "salary_min": low, "salary_max": low + 4000,
            "deadline": "2025-06-30"})
        applicants = rng.sample(people, 3)
        for a, who in enumerate(applicants):
            add("recruitment.application_submitted", {
                "posting_id": pid, "application_id": f"{pid}-app-{a}", "seeker_id": who, "degree": "bachelor"})
        if p % 2 == 0:
            add("recruitment.job_posting_updated", {"posting_id": pid, "positions": 25, "salary_max": low + 6000})
        add("recruitment.offer_made", {"posting_id": pid, "offer_id": f"{pid}-offer-0",
                                       "application_id": f"{pid}-app-0", "seeker_id": applicants[0],
                                       "salary_monthly": low + 1000})
        if p % 3 == 1:
            add("recruitment.offer_declined", {"posting_id": pid, "offer_id": f"{pid}-offer-0",
                                               "seeker_id": applicants[0]})
        else:
            add("recruitment.offer_accepted", {"posting_id": pid, "offer_id": f"{pid}-offer-0",
                                               "seeker_id": applicants[0]})
            add("recruitment.hired", {"posting_id": pid, "offer_id": f"{pid}-offer-0",
                                      "seeker_id": applicants[0], "start_date": "2025-07-15"})
        if p % 2 == 1:
            add("recruitment.job_posting_closed", {"posting_id": pid, "reason": rng.choice(["filled", "expired"])})
    add("recruitment.employer_flagged", {"employer_id": "emp-fake-agency", "severity": "warning",
                                         "reason": "招聘信息与实际岗位不符，已收到多名学生投诉",
                                         "postings_affected": 2})
    # job fair
    fair = f"{university}-fair-2025-spring"
    home = UNIVERSITIES[university].city.value
    start = clock.now + timedelta(days=2)
    add("jobfair.scheduled", {
        "fair_id": fair, "name": f"{UNIVERSITIES[university].name} 2025 春季双选会", "host_university": university,
        "city": home, "venue": "学校体育馆", "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=7)).isoformat(), "expected_booths": 120})
    for b, (emp_id, emp_name, emp_type, industry, _) in enumerate(EMPLOYERS[:4]):
        add("jobfair.booth_registered", {"fair_id": fair, "booth_id": f"{fair}-b{b:03d}", "employer_id": emp_id,
                                         "employer_name": emp_name, "employer_type": emp_type,
                                         "industry": industry, "positions_offered": rng.randint(2, 30)},
            max_minutes=30)
    for i, who in enumerate(people[:6]):
        add("jobfair.student_checked_in", {"fair_id": fair, "seeker_id": who,
                                           "booth_id": None if i % 2 else f"{fair}-b{i % 4:03d}"}, max_minutes=5)
    add("jobfair.onsite_offer_made", {"fair_id": fair, "booth_id": f"{fair}-b000",
                                      "offer_id": f"{fair}-offer-0", "seeker_id": people[0]}, max_minutes=20)
    add("jobfair.closed", {"fair_id": fair}, max_minutes=60)
    # mentoring
    for m in range(2):
        mid = f"{university}-mentor-{m:03d}"
        add("mentoring.mentor_registered", {"mentor_id": mid, "university": university,
                                            "expertise": ["career_planning", "entrepreneurship"][m],
                                            "industry": "it_software", "employer_type": "private",
                                            "title": "高级工程师、校外就业导师"})
        add("mentoring.mentor_assigned", {"mentor_id": mid, "seeker_id": people[m]})
        add("mentoring.session_held", {"mentor_id": mid, "session_id": f"{mid}-s001",
                                       "topic": "interview_skills", "seeker_ids": people[m:m + 3],
                                       "duration_minutes": 90})
    # services: the 1-1-3-1 guarantee for the first seekers
    for i, who in enumerate(people[:4]):
        add("services.policy_briefing_delivered", {"seeker_id": who, "briefing_id": f"{university}-brief-{i}",
                                                   "topic": "2025年高校毕业生就业创业政策解读"})
        add("services.career_counselling_held", {"seeker_id": who, "counselling_id": f"{university}-cns-{i}",
                                                 "counsellor_id": f"{university}-counsellor-01"})
        for r in range(3):
            add("services.job_recommended", {"seeker_id": who, "recommendation_id": f"{university}-rec-{i}-{r}",
                                             "posting_id": f"{university}-post-{r:04d}"})
        add("services.training_or_internship_offered", {
            "seeker_id": who, "program_id": f"{university}-prog-{i}", "kind": ["training", "internship"][i % 2],
            "provider": "成渝地区双城经济圈就业创业训练营"})
    return out


def bulk(university: str, n: int) -> list[dict[str, Any]]:
    """``n`` valid events (for throughput runs): semesters with distinct ids, cycled."""
    out: list[dict[str, Any]] = []
    round_ = 0
    while len(out) < n:
        for ev in semester(university, seed=round_):
            ev = json.loads(json.dumps(ev))
            ev["event_id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"alliance-bulk/{university}/{len(out)}"))
            for k in list(ev["data"]):
                if k.endswith("_id") and isinstance(ev["data"][k], str) and not ev["data"][k].startswith("ps"):
                    ev["data"][k] = f"{ev['data'][k]}-r{round_}"
            out.append(ev)
            if len(out) == n:
                break
        round_ += 1
    return out


def one_of_each_type() -> dict[str, dict[str, Any]]:
    """A valid example (as a mapping) of every event type."""
    examples: dict[str, dict[str, Any]] = {}
    for ev in semester("scu"):
        examples.setdefault(ev["type"], ev)
    # not in a semester: what an erasure changes depends on when it arrives (tests/unit/test_erasure.py)
    served = examples["services.policy_briefing_delivered"]
    examples["services.seeker_erasure_requested"] = {
        **served, "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "alliance-sample/scu/erasure")),
        "type": "services.seeker_erasure_requested", "data": {"seeker_id": served["data"]["seeker_id"]}}
    # revisions of the sample posting (what they change depends on what came before: test_corrections.py)
    posted = examples["recruitment.job_posted"]
    later = posted["occurred_at"]
    examples["corrections.event_retracted"] = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "alliance-sample/scu/retraction")),
        "type": "corrections.event_retracted", "source": posted["source"], "occurred_at": later,
        "data": {"event_id": posted["event_id"], "type": posted["type"], "subject": posted["data"]["posting_id"],
                 "reason": "published by mistake"}}
    corrected = copy.deepcopy(posted)
    corrected["data"]["positions"] += 1
    examples["corrections.event_corrected"] = {
        "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "alliance-sample/scu/correction")),
        "type": "corrections.event_corrected", "source": posted["source"], "occurred_at": later,
        "data": {"corrected": corrected, "reason": "wrong number of positions"}}
    return examples


# -- mixed files ------------------------------------------------------------------------------------

def _mixed_jsonl() -> tuple[list[str], dict[int, list[str]]]:
    good = semester("scu", seed=11, postings=3, seekers=6)
    posted = next(e for e in good if e["type"] == "recruitment.job_posted")

    counter = iter(range(1000))

    def fresh_id() -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_URL, f"alliance-mixed/scu/{next(counter)}"))

    def variant(**changes: Any) -> dict[str, Any]:
        ev = json.loads(json.dumps(posted))
        ev["event_id"] = fresh_id()
        for path, value in changes.items():
            node = ev
            parts = path.split("__")
            for part in parts[:-1]:
                node = node[part]
            if value is _DELETE:
                del node[parts[-1]]
            else:
                node[parts[-1]] = value
        return ev

    checked_in = next(e for e in good if e["type"] == "jobfair.student_checked_in")
    bad: list[tuple[str, list[str]]] = [
        ('{"type": "recruitment.job_posted", "source": "scu", ', ["event"]),
        (json.dumps(variant(data__salary_currency="CNY")), ["data.salary_currency"]),
        (json.dumps(variant(data__positions="3")), ["data.positions"]),
        (json.dumps(variant(data__industry="mining", data__city="beijing", data__degree_min="phd",
                            data__employer_type="family_business")),
         ["data.employer_type", "data.industry", "data.city", "data.degree_min"]),
        (json.dumps(variant(data__deadline="2025-01-01")), ["data.deadline"]),
        (json.dumps(variant(occurred_at="1900-03-01T09:00:00+08:00")), ["occurred_at"]),
        (json.dumps(variant(data__deadline="2026-02-30")), ["data.deadline"]),
        (json.dumps(variant(data__description="有意者请联系张老师 138 1234 5678")), ["data.description"]),
        (json.dumps(variant(data__title="岗" * 201)), ["data.title"]),
        (json.dumps(variant(data__description="很长的描述" * 3000)), ["event"]),
        (json.dumps({**checked_in, "event_id": fresh_id(),
                     "data": {**checked_in["data"], "seeker_id": "2021141460123"}}), ["data.seeker_id"]),
        (json.dumps(variant(type="recruitment.job_teleported")), ["type"]),
        (json.dumps(variant(source="pku")), ["source"]),
        (json.dumps(variant(source="cqu")), ["source"]),
        (json.dumps(variant(subject="scu-post-9999")), ["subject"]),
        (json.dumps(variant(data__title=_DELETE, priority="high")), ["data.title", "priority"]),
        (json.dumps(variant(data__salary_min=20000, data__salary_max=9000)), ["data.salary_min"]),
        ("[1, 2, 3]", ["event"]),
        (json.dumps(posted), ["event_id"]),  # the same event_id as an earlier good line
    ]
    lines: list[str] = []
    expected: dict[int, list[str]] = {}
    for i, ev in enumerate(good):
        lines.append(json.dumps(ev, ensure_ascii=False))
        if i % 2 == 1 and bad:
            text, fields = bad.pop(0)
            lines.append(text)
            expected[len(lines)] = fields
    if bad:
        raise AssertionError("not enough good lines to interleave every bad one")
    lines.insert(5, "")  # a blank line is skipped, and shifts every following line number
    expected = {(n + 1 if n > 5 else n): f for n, f in expected.items()}
    return lines, expected


_DELETE = object()

CSV_HEADER = ["type", "occurred_at", "event_id", "data.posting_id", "data.employer_id", "data.employer_name",
              "data.employer_type", "data.industry", "data.city", "data.title", "data.positions",
              "data.degree_min", "data.salary_min", "data.salary_max", "data.deadline", "data.mentor_id",
              "data.session_id", "data.topic", "data.seeker_ids", "data.duration_minutes"]


def _mixed_csv() -> tuple[list[list[str]], dict[int, list[str]]]:
    s = [seeker("cqu", i) for i in range(3)]

    def posting(n: int, **over: str) -> list[str]:
        row = {"type": "recruitment.job_posted", "occurred_at": f"2025-04-0{1 + n % 8}T10:00:00+08:00",
               "event_id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"alliance-csv/cqu/{n}")),
               "data.posting_id": f"cqu-post-{n:04d}", "data.employer_id": "emp-changan",
               "data.employer_name": "重庆长安汽车股份有限公司", "data.employer_type": "state_owned",
               "data.industry": "automotive", "data.city": "chongqing", "data.title": "整车电控工程师",
               "data.positions": "5", "data.degree_min": "bachelor", "data.salary_min": "9000",
               "data.salary_max": "14000", "data.deadline": "2025-07-31", **over}
        return [row.get(c, "") for c in CSV_HEADER]

    def session(n: int, **over: str) -> list[str]:
        row = {"type": "mentoring.session_held", "occurred_at": "2025-04-10T15:00:00+08:00",
               "data.mentor_id": "cqu-mentor-001", "data.session_id": f"cqu-mentor-001-s{n:03d}",
               "data.topic": "career_planning", "data.seeker_ids": ";".join(s), "data.duration_minutes": "60",
               **over}
        return [row.get(c, "") for c in CSV_HEADER]

    rows: list[tuple[list[str], list[str] | None]] = [
        (posting(0), None),
        (posting(1, **{"data.positions": "3.5"}), ["data.positions"]),
        (session(1), None),
        (posting(2, **{"data.industry": "mining", "data.salary_min": "lots"}), ["data.industry", "data.salary_min"]),
        (session(2, **{"data.seeker_ids": "ps_1234;2021000001"}),
         ["data.seeker_ids.0", "data.seeker_ids.1"]),
        (posting(3), None),
        ([*posting(4), "surplus"], ["line"]),
        (session(3, type="mentoring.session_hijacked"), ["type"]),
        (session(4), None),
        (posting(5, occurred_at="2025-04-01 10:00"), ["occurred_at"]),
        (posting(6), None),
    ]
    expected = {i + 2: fields for i, (_, fields) in enumerate(rows) if fields is not None}
    return [CSV_HEADER] + [r for r, _ in rows], expected


def _write_expected(path: Path, expected: dict[int, list[str]]) -> None:
    """line number -> sorted fields with a problem, as JSON."""
    path.write_text(json.dumps({n: sorted(f) for n, f in expected.items()}, indent=1) + "\n", encoding="utf-8")


def write_files(directory: Path = DATA_DIR) -> list[Path]:
    import csv

    written = []
    for u in SAMPLE_UNIVERSITIES:
        path = directory / f"events-{u}.jsonl"
        path.write_text("".join(json.dumps(e, ensure_ascii=False) + "\n" for e in semester(u)), encoding="utf-8")
        written.append(path)
    lines, expected = _mixed_jsonl()
    (directory / "mixed-scu.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    _write_expected(directory / "mixed-scu.expected.json", expected)
    rows, expected_csv = _mixed_csv()
    with (directory / "mixed-cqu.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    _write_expected(directory / "mixed-cqu.expected.json", expected_csv)
    written += [directory / n for n in ("mixed-scu.jsonl", "mixed-scu.expected.json", "mixed-cqu.csv",
                                        "mixed-cqu.expected.json")]
    return written


if __name__ == "__main__":
    for p in write_files():
        print(p.relative_to(DATA_DIR.parent.parent))


def most_active_seekers(events: Iterable[Any], n: int) -> list[str]:
    """The ``n`` seekers named by the most event types (check-ins, offers, assignments, services...): the
    ones an erasure test should erase."""
    types: dict[str, set[str]] = {}
    for e in events:
        for s in named_seekers(e.data):
            types.setdefault(s, set()).add(e.type)
    return sorted(types, key=lambda s: (-len(types[s]), s))[:n]
