"""The live fair board in a real headless Chromium (Debian's package), at a phone's size, against a real
worker, projector and portal API: the page shows a fair's booths, distinct check-ins and on-site offers and
the host university's 1-1-3-1 progress; when more events are published the numbers change without a
reload; the stream needs the token; a screenshot is saved (ALLIANCE_SCREENSHOT_OUT: also there, which is how
docs/images/fair-board.png was made)."""

from __future__ import annotations

import asyncio
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from consumers.migrate import migrate
from core.kafka_access import ADMIN
from core.settings import Settings
from core.topic_admin import provision
from events.base import Event
from events.codec import encode, from_dict
from events.simulator import Record
from events.simulator.publish import publish
from events.topics import ingest_topic
from infra.browser import Browser
from infra.processes import free_ports, portal_api, projector, worker
from tests.data.samples import seeker

pytestmark = pytest.mark.integration
NOW = datetime.now(UTC)


def _event(etype: str, data: dict[str, Any], minutes_ago: float) -> Event:
    return from_dict({"event_id": str(uuid.uuid4()), "type": etype, "source": "scu", "schema_version": 1,
                      "occurred_at": (NOW - timedelta(minutes=minutes_ago)).isoformat(), "data": data})


def _publish(settings: Settings, suffix: str, events: list[Event]) -> None:
    assert publish([Record(ingest_topic(e.source) + suffix, e.key, encode(e), "valid", e) for e in events],
                   settings.kafka) == len(events)


async def test_the_fair_board_updates_live_in_a_phone_sized_browser(settings: Settings, pg_dsn: str,
                                                                    unique: str) -> None:
    suffix, app_id = f".f{unique}", f"board-{unique}"
    provision(settings.kafka(ADMIN), suffix=suffix, app_id=app_id)
    await migrate(pg_dsn)
    token = f"board-token-{unique}"
    cfg = settings.model_copy(update={"topic_suffix": suffix, "app_id": app_id, "database_url": SecretStr(pg_dsn),
                                      "http_token": SecretStr(token)})
    log_dir = settings.local_dir / f"fair-board-{unique}"
    worker_port, projector_port, api_port, devtools_port = free_ports(4)
    w = worker(0, cfg.model_copy(update={"web_port": worker_port}), log_dir)
    p = projector(cfg, log_dir, projector_port)
    api = portal_api(cfg, log_dir, api_port)
    fair = f"scu-fair-board-{unique}"[:40]
    start = NOW - timedelta(hours=1)
    scheduled = _event("jobfair.scheduled", {
        "fair_id": fair, "name": "四川大学 2026 冬季双选会", "host_university": "scu", "city": "chengdu",
        "venue": "望江校区体育馆", "starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=6)).isoformat(),
        "expected_booths": 40}, 90)
    booths = [_event("jobfair.booth_registered", {
        "fair_id": fair, "booth_id": f"{fair}-b{b}", "employer_id": f"emp-{b}", "employer_name": f"成都科技 {b}",
        "employer_type": "private", "industry": "it_software", "positions_offered": 5}, 60 - b) for b in range(3)]
    students = [seeker("scu", 900 + i) for i in range(7)]
    checkins = [_event("jobfair.student_checked_in", {"fair_id": fair, "seeker_id": s, "booth_id": f"{fair}-b0"},
                       50 - i) for i, s in enumerate(students[:4])]
    offer = [_event("jobfair.onsite_offer_made", {"fair_id": fair, "booth_id": f"{fair}-b0",
                                                 "offer_id": f"{fair}-o0", "seeker_id": students[0]}, 40)]
    served = [_event("services.policy_briefing_delivered", {"seeker_id": s, "briefing_id": f"{fair}-brief",
                                                           "topic": "就业政策"}, 45) for s in students[:2]]
    try:
        w.start(cfg)
        p.start(cfg)
        api.start(cfg)
        for service, within in ((w, 120), (p, 60), (api, 60)):
            await asyncio.to_thread(service.wait_ready, within)
        _publish(settings, suffix, [scheduled, *booths, *checkins, *offer, *served])

        base = f"http://127.0.0.1:{api_port}"
        async with aiohttp.ClientSession() as http:  # the stream needs the token; the page holds no data
            async with http.get(f"{base}/fairs/{fair}/stream") as r:
                assert r.status == 401
            async with http.get(f"{base}/fairs/{fair}/stream", headers={"Authorization": "Bearer nope"}) as r:
                assert r.status == 403
            async with http.get(f"{base}/fairs/{fair}") as r:
                page = await r.text()
                assert r.status == 200 and "text/html" in r.headers["Content-Type"] and fair not in page
            async with http.get(f"{base}/fairs/NOT%20AN%20ID") as r:
                assert r.status == 404

        async with Browser(devtools_port, log_dir / "chromium.log") as browser:
            await browser.open(f"{base}/fairs/{fair}#token={token}")
            text = "document.getElementById('{}').textContent"
            await browser.wait_for(f"{text.format('checkins')} === '4' && {text.format('offers')} === '1' && "
                                   f"{text.format('booths')} === '3'", within=120)
            loaded = await browser.evaluate("window.boardLoadedAt")
            assert await browser.evaluate(text.format("name")) == "四川大学 2026 冬季双选会"
            assert await browser.evaluate(text.format("status")) == "进行中 open"
            await browser.wait_for(f"{text.format('host-seekers')} === '2' && "
                                   f"{text.format('host-briefed')}.startsWith('2 ')", within=60)
            # more students arrive, more offers, one re-sent check-in (counts once), another booth
            more = [_event("jobfair.student_checked_in", {"fair_id": fair, "seeker_id": s, "booth_id": None},
                           20 - i) for i, s in enumerate(students[3:])]
            more += [_event("jobfair.onsite_offer_made", {"fair_id": fair, "booth_id": f"{fair}-b1",
                                                         "offer_id": f"{fair}-o{i}", "seeker_id": students[i]}, 10)
                     for i in (1, 2)]
            _publish(settings, suffix, more)
            await browser.wait_for(f"{text.format('checkins')} === '7' && {text.format('offers')} === '3'",
                                   within=120)
            assert await browser.evaluate("window.boardLoadedAt") == loaded  # updated in place, never reloaded
            assert await browser.evaluate("window.boardUpdates") >= 2
            points = await browser.evaluate("document.getElementById('line-checkins').getAttribute('points')")
            assert len(points.split()) >= 2  # check-ins over time
            assert await browser.evaluate("document.documentElement.scrollWidth") <= 390  # fits a phone
            out = os.environ.get("ALLIANCE_SCREENSHOT_OUT")
            shot = await browser.screenshot(Path(out) if out else log_dir / "fair-board.png")
            assert shot.startswith(b"\x89PNG") and len(shot) > 10_000
        assert w.alive() and p.alive() and api.alive()
    finally:
        api.stop()
        p.stop()
        w.stop()
