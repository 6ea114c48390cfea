"""PostgreSQL roles of the read model and what each may do (pure: SQL text, no I/O).

- ``alliance_owner`` owns the database and its schema: migrations run as it (``python -m consumers migrate``).
- ``alliance_projector`` writes the read model: SELECT, INSERT, UPDATE, DELETE on the owner's tables, its
  own temporary staging tables; no DDL.
- ``alliance_portal`` reads the views of schema ``portal`` only (migration 005: no per-student rows, no raw
  records): the portal API and ``python -m consumers query / offsets``.
- ``postgres`` is the server's superuser: infra creates the roles and databases with it; no application
  process uses it.

None of them is a superuser or may create roles or databases; the server accepts passwords only
(scram-sha-256, no ``trust``). ``infra.postgres_local`` applies :func:`server_statements` and
:func:`database_statements` to the local server; docs/security.md has the steps for another server.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

SUPERUSER = "postgres"
OWNER, WRITER, READER = "alliance_owner", "alliance_projector", "alliance_portal"
APP_ROLES = (OWNER, WRITER, READER)


def with_database(dsn: str, database: str) -> str:
    """``dsn`` with another database (its user, password, host and parameters kept)."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{database}"))


def verified(dsn: str, cafile: str) -> str:
    """``dsn`` over TLS, the server's certificate (host name included) checked against ``cafile``
    (libpq's and asyncpg's ``sslmode=verify-full``)."""
    parts = urlsplit(dsn)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k not in ("sslmode", "sslrootcert")]
    query += [("sslmode", "verify-full"), ("sslrootcert", cafile)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def server_statements(passwords: dict[str, str], existing: set[str]) -> list[str]:
    """Create (or re-password) the application roles; ``existing``: roles the server has already."""
    out = []
    for role in APP_ROLES:
        verb = "ALTER" if role in existing else "CREATE"
        out.append(f"{verb} ROLE {_ident(role)} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION "
                   f"PASSWORD {_literal(passwords[role])}")
    return out


def database_statements(database: str) -> list[str]:
    """Run in ``database`` (created OWNER alliance_owner) as the superuser: who may connect and what each
    role may do with the tables the owner's migrations create."""
    db, owner, writer, reader = (_ident(x) for x in (database, OWNER, WRITER, READER))
    return [
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        f"GRANT CONNECT, TEMPORARY ON DATABASE {db} TO {writer}",
        f"GRANT CONNECT ON DATABASE {db} TO {reader}",
        "REVOKE CREATE ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {writer}",
        f"CREATE SCHEMA IF NOT EXISTS portal AUTHORIZATION {owner}",
        f"GRANT USAGE ON SCHEMA portal TO {reader}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {writer}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {writer}",
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA portal GRANT SELECT ON TABLES TO {reader}",
        # tables a migration made before these rules existed
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {writer}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {writer}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA portal TO {reader}",
        # the portal role reads no table of schema public (a local stack of an earlier version granted it)
        f"ALTER DEFAULT PRIVILEGES FOR ROLE {owner} IN SCHEMA public REVOKE ALL ON TABLES FROM {reader}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {reader}",
    ]
