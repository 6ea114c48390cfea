"""``python -m consumers <command>``: the PostgreSQL read model of the alliance.

Commands:
  migrate   apply the numbered SQL migrations (consumers/migrations/NNN_*.sql) that are not applied yet
  run       project the canonical and aggregated topics into the read model (effectively once)
  query     run a portal query and print it as a table or JSON
  api       serve the portal queries as a JSON HTTP API
  offsets   show the positions stored by projector groups, and the rejected-record count

Connection settings come from ALLIANCE_KAFKA_BOOTSTRAP_SERVERS and ALLIANCE_DATABASE_URL (unset = the local
services of ``python -m infra up``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Sequence

import asyncpg

from consumers.migrate import migrate
from consumers.projector import DEFAULT_GROUP, Projector, ProjectorConfig
from consumers.queries import QUERIES, format_table, run_query
from core.db_access import OWNER, READER, WRITER
from core.errors import AllianceError
from core.kafka_access import PORTAL, PROJECTOR
from core.settings import load_settings
from events.reference import UNIVERSITIES
from events.topics import AGGREGATES, Family, agg_topic, family_topic


def _cmd_migrate(_: argparse.Namespace) -> int:
    applied = asyncio.run(migrate(load_settings().dsn_for(OWNER)))
    for m in applied:
        print(f"applied {m.path.name}")
    print(f"{len(applied)} migration(s) applied" if applied else "schema is up to date")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    settings = load_settings()
    if args.migrate:
        asyncio.run(migrate(settings.dsn_for(OWNER)))
    config = ProjectorConfig(
        kafka=settings.kafka(PROJECTOR), dsn=settings.dsn_for(WRITER), group=args.group,
        event_topics=tuple(args.events_topic or [settings.topic(family_topic(f)) for f in Family]),
        agg_topics=tuple(args.agg_topic or [settings.topic(agg_topic(n)) for n in AGGREGATES]),
        batch_size=args.batch_size, batch_timeout_ms=args.batch_timeout_ms, pause_ms=args.pause_ms,
        metrics_port=settings.metrics_port if args.metrics_port is None else args.metrics_port,
    )

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        projector = Projector(config)
        await projector.run(stop)
        logging.getLogger("consumers").info("stopped after %d batches", projector.batches)

    asyncio.run(main())
    return 0


async def _query(args: argparse.Namespace) -> int:
    conn = await asyncpg.connect(load_settings().dsn_for(READER), timeout=10)
    try:
        rows = await run_query(conn, args.name, args.university, args.limit)
    finally:
        await conn.close()
    print(json.dumps(rows, indent=2, ensure_ascii=False) if args.format == "json" else format_table(rows))
    return 0


def _cmd_api(args: argparse.Namespace) -> int:
    from aiohttp import web

    from consumers.api import build_api
    from consumers.feed import FairFeed

    settings = load_settings()
    feed = None if args.no_fair_board else FairFeed(settings.kafka(PORTAL), settings.topic(agg_topic("fairs")))
    web.run_app(build_api(settings.dsn_for(READER), settings.http_token, feed), host=args.host or settings.http_bind,
                port=args.port, access_log=None)
    return 0


# A seeker's last recorded activity in the read model, per pseudonym (erased seekers carry tokens: not listed).
_DUE_FOR_ERASURE = """
SELECT seeker_id, max(at) AS last_activity FROM (
    SELECT seeker_id, occurred_at AS at FROM service_items
    UNION ALL SELECT seeker_id, submitted_at FROM applications
    UNION ALL SELECT seeker_id, seen_at FROM offers WHERE seeker_id IS NOT NULL
    UNION ALL SELECT seeker_id, first_at FROM fair_checkins
    UNION ALL SELECT seeker_id, made_at FROM fair_offers WHERE seeker_id IS NOT NULL
    UNION ALL SELECT seeker_id, assigned_at FROM mentor_assignments
    UNION ALL SELECT unnest(seeker_ids), held_at FROM mentoring_sessions
) a
WHERE seeker_id LIKE $1
GROUP BY seeker_id HAVING max(at) < now() - make_interval(days => $2)
ORDER BY seeker_id"""


async def _due_for_erasure(args: argparse.Namespace) -> int:
    """The university's pseudonyms whose last activity is older than the retention period (seeker-level data
    is kept for ``--days`` after the service period; docs/security.md, "Retention")."""
    conn = await asyncpg.connect(load_settings().dsn_for(WRITER), timeout=10)
    try:
        rows = await conn.fetch(_DUE_FOR_ERASURE, f"ps.{args.university}.%", args.days)
    finally:
        await conn.close()
    for r in rows:
        print(r["seeker_id"])
    print(f"{args.university}: {len(rows)} seeker(s) inactive for more than {args.days} days; erase them with "
          f"python -m events.tools erase -u {args.university} - (one pseudonym per line)", file=sys.stderr)
    return 0


async def _offsets(_: argparse.Namespace) -> int:
    conn = await asyncpg.connect(load_settings().dsn_for(READER), timeout=10)
    try:
        rows = await conn.fetch("SELECT group_id, topic, partition, next_offset, updated_at "
                                "FROM portal.projector_positions ORDER BY group_id, topic, partition")
        rejects = await conn.fetchval("SELECT coalesce(sum(records), 0) FROM portal.projector_rejects")
    finally:
        await conn.close()
    print(format_table([dict(r) for r in rows]))
    print(f"rejected records: {rejects}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m consumers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply pending SQL migrations").set_defaults(func=_cmd_migrate)

    run = sub.add_parser("run", help="run the projector until SIGTERM/SIGINT (finishes the current batch)")
    run.add_argument("--group", default=DEFAULT_GROUP,
                     help=f"projector group: the key of its stored offsets (default {DEFAULT_GROUP})")
    run.add_argument("--batch-size", type=int, default=5000, help="max records per transaction (default 5000)")
    run.add_argument("--batch-timeout-ms", type=int, default=500,
                     help="max wait to fill a batch, in ms (default 500)")
    run.add_argument("--pause-ms", type=int, default=0, help="rest between batches, in ms (default 0)")
    run.add_argument("--events-topic", action="append", metavar="TOPIC",
                     help="canonical event topic (repeatable; default alliance.events.<family> for all families)")
    run.add_argument("--agg-topic", action="append", metavar="TOPIC",
                     help="aggregated topic whose name ends in .<aggregate> (repeatable; default alliance.agg.*)")
    run.add_argument("--metrics-port", type=int, default=None,
                     help="port of /metrics, /healthz, /readyz (0 = off; default ALLIANCE_METRICS_PORT)")
    run.add_argument("--no-migrate", dest="migrate", action="store_false",
                     help="do not apply pending migrations before starting")
    run.set_defaults(func=_cmd_run)

    q = sub.add_parser("query", help="run a portal query",
                       description="queries: " + "; ".join(f"{n}: {x.description}" for n, x in QUERIES.items()))
    q.add_argument("name", choices=sorted(QUERIES), help="query name")
    q.add_argument("--university", help="restrict to one member university (code, e.g. scu)")
    q.add_argument("--limit", type=int, default=100, help="max rows (default 100)")
    q.add_argument("--format", choices=("table", "json"), default="table")
    q.set_defaults(func=lambda a: asyncio.run(_query(a)))

    api = sub.add_parser("api", help="serve the queries as JSON over HTTP, and the live fair boards",
                         description="GET /queries, /queries/<name>; the live fair board at /fairs/<fair id> "
                                     "(open it as /fairs/<fair id>#token=<ALLIANCE_HTTP_TOKEN>; it follows "
                                     "alliance.agg.fairs as the Kafka principal portal).")
    api.add_argument("--host", default=None, help="listen address (default ALLIANCE_HTTP_BIND, 127.0.0.1)")
    api.add_argument("--port", type=int, default=6070)
    api.add_argument("--no-fair-board", action="store_true", help="no Kafka consumer, no /fairs pages")
    api.set_defaults(func=_cmd_api)

    sub.add_parser("offsets", help="stored offsets per group and rejects").set_defaults(
        func=lambda a: asyncio.run(_offsets(a)))
    due = sub.add_parser(
        "due-for-erasure", help="a university's pseudonyms past the seeker-level retention period",
        description="Print, one per line, the pseudonyms minted by UNIVERSITY (ps.<university>.<key id>.<hex>) "
                    "whose last activity in the read model is older than --days (default 365: the alliance's "
                    "retention of seeker-level data after the service period). Pipe them to the university's "
                    "`python -m events.tools erase -u UNIVERSITY -`. Reads the read model as the projector's "
                    "role (per-student rows; portals cannot).")
    due.add_argument("--university", "-u", required=True, choices=sorted(UNIVERSITIES))
    due.add_argument("--days", type=int, default=365, help="retention after the last activity (default 365)")
    due.set_defaults(func=lambda a: asyncio.run(_due_for_erasure(a)))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("aiokafka").setLevel(logging.WARNING)
    try:
        return int(args.func(args))
    except AllianceError as exc:  # ConsumerError, SettingsError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (OSError, asyncpg.PostgresError) as exc:
        print(f"error: database: {exc}", file=sys.stderr)
        return 2
