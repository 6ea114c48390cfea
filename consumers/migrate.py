"""Plain numbered SQL migrations (``consumers/migrations/NNN_name.sql``), applied in order, each in one
transaction, recorded in ``schema_migrations`` with a checksum. Re-running applies nothing new."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from consumers.errors import MigrationError
from events.reference import PROVINCE, UNIVERSITIES

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
_NAME = re.compile(r"^(\d{3})_([a-z0-9_]+)\.sql$")
_LOCK_KEY = 0x616C6C69  # pg_advisory_lock: one migrator at a time

_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if m is None:
            raise MigrationError(f"{path.name}: migration files must be named NNN_lowercase_name.sql")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"{path.name}: version {version:03d} also used by {found[version].path.name}")
        found[version] = Migration(version, m.group(2), path, path.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


async def applied_versions(conn: asyncpg.Connection) -> dict[int, str]:
    await conn.execute(_BOOKKEEPING)
    return {r["version"]: r["checksum"] for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")}


async def migrate(dsn: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Apply the pending migrations; return those applied now. Raises MigrationError naming the file."""
    migrations = discover(directory)
    try:
        conn = await asyncpg.connect(dsn, timeout=30)
    except (OSError, asyncpg.PostgresError) as exc:
        raise MigrationError(f"cannot connect to the database: {exc}") from exc
    applied_now: list[Migration] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            done = await applied_versions(conn)
            for mig in migrations:
                if mig.version in done:
                    if done[mig.version] != mig.checksum:
                        raise MigrationError(
                            f"{mig.path.name}: changed after it was applied (checksum differs); "
                            "add a new migration instead of editing an applied one")
                    continue
                try:
                    async with conn.transaction():
                        await conn.execute(mig.sql)
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                            mig.version, mig.name, mig.checksum)
                except asyncpg.PostgresError as exc:
                    raise MigrationError(f"{mig.path.name} failed and was rolled back: {exc}") from exc
                applied_now.append(mig)
            if 7 in done or any(m.version == 7 for m in applied_now):
                await sync_reference(conn)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()
    return applied_now


async def sync_reference(conn: asyncpg.Connection) -> None:
    """Make the read model's reference tables (migration 007) equal to events/reference.py: the provinces of
    the circle's cities and of the member universities (what portal.talent_flow joins)."""
    async with conn.transaction():
        await conn.execute("DELETE FROM reference_cities")
        await conn.executemany("INSERT INTO reference_cities (city, province) VALUES ($1, $2)",
                               [(c.value, p) for c, p in PROVINCE.items()])
        await conn.execute("DELETE FROM reference_universities")
        await conn.executemany("INSERT INTO reference_universities (code, province) VALUES ($1, $2)",
                               [(u.code, PROVINCE[u.city]) for u in UNIVERSITIES.values()])
