"""``python -m infra <command>``: local services, provisioning, and the main demo job.

Commands:
  up          start the local Kafka (KRaft) and PostgreSQL (unless ALLIANCE_* point elsewhere)
  down        stop them
  status      say what runs where
  provision   create the registry's topics (explicit partitions, compaction; no auto-creation) and their ACLs
  users       list|add|rotate|remove the cluster's SCRAM principals (python -m infra users --help)
  db-roles    create the read model's PostgreSQL roles and database on a server (ALLIANCE_DATABASE_ADMIN_URL,
              ALLIANCE_PG_{OWNER,PROJECTOR,PORTAL}_PASSWORD); the local server gets them by itself
  tls         make a deployment's CA and server certificate (PEM) for the brokers and PostgreSQL:
              --out DIR --hosts a,b,c
  compose-config  write compose's broker configuration (infra/kafka/compose/server.properties.in) from the
              local cluster's; --check only says whether the committed file is current
  run         the main job: up + provision + migrate + workers + a realistic demo stream
  chaos       fault injection: kill -9 workers, projector, publisher; restart PostgreSQL; zombie workers;
              a real Prometheus's alerts; every aggregate checked against the independent oracle
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from core.errors import AllianceError
from core.settings import load_settings
from core.topic_admin import provision_deployment
from infra.local import LocalStack
from infra.processes import Terminated, interrupt_on_sigterm


def _cmd_up(args: argparse.Namespace) -> int:
    LocalStack(load_settings()).up()
    return _cmd_status(args)


def _cmd_down(_: argparse.Namespace) -> int:
    LocalStack(load_settings()).down()
    return 0


def _cmd_status(_: argparse.Namespace) -> int:
    for name, state in LocalStack(load_settings()).status().items():
        print(f"{name:9} {state}")
    return 0


def _cmd_provision(_: argparse.Namespace) -> int:
    settings = load_settings()
    report = provision_deployment(settings)
    print(f"topics created: {len(report.created)}, already present: {len(report.existing)}")
    for name in report.created:
        print(f"  + {name}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    from infra.run import run_main_job

    return run_main_job(load_settings(), duration=args.duration, keep=args.keep, events=args.events,
                        workers=args.workers, fresh=not args.keep_data, seed=args.seed)


def _cmd_db_roles(_: argparse.Namespace) -> int:
    import asyncio
    from urllib.parse import urlsplit

    from core.db_access import OWNER, READER, WRITER, with_database
    from infra.errors import InfraError
    from infra.postgres_local import prepare_database

    settings = load_settings()
    passwords = {OWNER: settings.pg_owner_password, WRITER: settings.pg_projector_password,
                 READER: settings.pg_portal_password}
    missing = [f"ALLIANCE_PG_{v}_PASSWORD" for v, p in zip(("OWNER", "PROJECTOR", "PORTAL"), passwords.values(),
                                                          strict=True) if p is None]
    if settings.database_admin_url is None or missing:
        raise InfraError("db-roles needs " + ", ".join((["ALLIANCE_DATABASE_ADMIN_URL"]
                                                        if settings.database_admin_url is None else []) + missing))
    admin = settings.database_admin_url.get_secret_value()
    database = settings.local_postgres_database
    parts = urlsplit(admin)
    in_database = with_database(admin, database)
    asyncio.run(prepare_database(admin, in_database, database,
                                 {role: p.get_secret_value() for role, p in passwords.items() if p is not None}))
    print(f"roles {', '.join(passwords)} and database {database} ready on {parts.hostname}:{parts.port or 5432}")
    return 0


def _cmd_compose_config(args: argparse.Namespace) -> int:
    from infra.kafka_local import COMPOSE_TEMPLATE, compose_properties

    wanted = compose_properties()
    current = COMPOSE_TEMPLATE.read_text() if COMPOSE_TEMPLATE.exists() else None
    if args.check:
        if current != wanted:
            print(f"stale: {COMPOSE_TEMPLATE} (regenerate: python -m infra compose-config)", file=sys.stderr)
            return 1
        print(f"{COMPOSE_TEMPLATE} is current")
        return 0
    COMPOSE_TEMPLATE.write_text(wanted)
    print(f"wrote {COMPOSE_TEMPLATE}")
    return 0


def _cmd_tls(args: argparse.Namespace) -> int:
    from pathlib import Path

    from infra.tls import ensure

    hosts = [h.strip() for h in args.hosts.split(",") if h.strip()]
    files = ensure(Path(args.out), hosts)
    print(f"CA          {files.ca}  (clients trust it: ALLIANCE_KAFKA_SSL_CAFILE)\n"
          f"CA key      {files.ca_key}  (keep it off the brokers; needed only to issue another certificate)\n"
          f"server      {files.server}  (the brokers' keystore: key, certificate, CA; valid for "
          f"{', '.join(sorted(files.hosts()))})\n"
          f"            {files.server_cert} and {files.server_key}: the same for PostgreSQL")
    return 0


def _cmd_users(args: argparse.Namespace) -> int:
    from infra.users import main as users

    return users(load_settings(), args.sub_args)


def _cmd_chaos(args: argparse.Namespace) -> int:
    from infra.chaos import main as chaos

    return chaos(load_settings(), args.sub_args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m infra", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start local Kafka and PostgreSQL").set_defaults(func=_cmd_up)
    sub.add_parser("down", help="stop local Kafka and PostgreSQL").set_defaults(func=_cmd_down)
    sub.add_parser("status", help="what runs where").set_defaults(func=_cmd_status)
    sub.add_parser("provision", help="create the registry's topics").set_defaults(func=_cmd_provision)
    run = sub.add_parser("run", help="the main job: stack + workers + demo stream")
    run.add_argument("--events", type=int, default=20000, help="demo events to publish (default 20000)")
    run.add_argument("--duration", type=float, default=0.0,
                     help="seconds to keep running after the demo (0 = stop when the demo is processed)")
    run.add_argument("--keep", action="store_true", help="leave broker and database running afterwards")
    run.add_argument("--keep-data", action="store_true",
                     help="keep the local broker/database state of earlier runs (default: start fresh)")
    run.add_argument("--workers", type=int, default=1, choices=range(1, 9), metavar="N",
                     help="Faust workers to run (default 1)")
    run.add_argument("--seed", type=int, default=None, help="simulator seed (default: random)")
    run.set_defaults(func=_cmd_run)
    sub.add_parser("chaos", help="fault injection against the oracle (python -m infra chaos --help)")
    sub.add_parser("users", help="the cluster's SCRAM principals (python -m infra users --help)")
    sub.add_parser("db-roles", help="create the read model's PostgreSQL roles and database on a server"
                   ).set_defaults(func=_cmd_db_roles)
    tls = sub.add_parser("tls", help="make the CA and server certificate of a deployment's brokers and PostgreSQL")
    tls.add_argument("--out", required=True, help="directory (compose: infra/kafka/compose/tls)")
    tls.add_argument("--hosts", default="kafka-1,kafka-2,kafka-3,postgres,localhost",
                     help="host names / addresses the brokers and PostgreSQL are reached by (default: compose's)")
    tls.set_defaults(func=_cmd_tls)
    cc = sub.add_parser("compose-config", help="write compose's broker configuration from the local cluster's")
    cc.add_argument("--check", action="store_true", help="exit 1 if the committed file is not current")
    cc.set_defaults(func=_cmd_compose_config)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["chaos"]:  # its own parser (python -m infra chaos --help)
        args = argparse.Namespace(func=_cmd_chaos, sub_args=argv[1:])
    elif argv[:1] == ["users"]:
        args = argparse.Namespace(func=_cmd_users, sub_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    interrupt_on_sigterm()  # a command killed with SIGTERM stops what it started, like one stopped with Ctrl-C
    try:
        return int(args.func(args))
    except AllianceError as exc:  # InfraError, TopicError, SettingsError
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated:
        print("[infra] terminated (SIGTERM): stopped what this command started", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        return 130
