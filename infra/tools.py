"""External command-line tools the project's checks need, located or installed by the project itself.

``promtool`` (checks Prometheus configs, rules and metric exposition) comes from the Debian package
``prometheus``; a PostgreSQL server built with TLS from Debian's ``postgresql`` (infra.postgres_local); the
benchmark's instruction counts need ``valgrind`` (Debian's package of that name, :func:`ensure_valgrind`).
:func:`ensure_promtool` returns its path and installs the package when it is missing
(as root, with apt-get), without leaving a Prometheus server running.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from infra.errors import InfraError

PROMTOOL_PACKAGE = "prometheus"
_POLICY_RC_D = Path("/usr/sbin/policy-rc.d")
_lock = threading.Lock()


class ToolError(InfraError):
    """A required external tool is missing and could not be installed."""


def _find(override: str, name: str) -> str | None:
    """Path of a program: the ``override`` variable, then PATH, then /usr/bin; None if none is executable."""
    explicit = os.environ.get(override)
    if explicit and os.access(explicit, os.X_OK):
        return explicit
    found = shutil.which(name)
    if found:
        return found
    default = f"/usr/bin/{name}"
    return default if os.access(default, os.X_OK) else None


def _ensure(override: str, name: str, package: str, timeout: float) -> str:
    """Path of a program, installing its Debian ``package`` first if it is missing."""
    with _lock:
        found = _find(override, name)
        if found:
            return found
        apt_install(package, needed_for=name, override=override, timeout=timeout)
        found = _find(override, name)
        if not found:
            raise ToolError(f"apt-get installed {package!r} but {name} is still not on PATH")
        return found


def ensure_valgrind(*, timeout: float = 900.0) -> str:
    """Path of valgrind (``ALLIANCE_VALGRIND``, PATH, /usr/bin), installing Debian's ``valgrind`` if it is
    missing: the benchmark counts the pure path's instructions with its callgrind tool (bench.revision)."""
    return _ensure("ALLIANCE_VALGRIND", "valgrind", "valgrind", timeout)


def find_promtool() -> str | None:
    """Path of promtool (``ALLIANCE_PROMTOOL``, then PATH, then /usr/bin), or None."""
    return _find("ALLIANCE_PROMTOOL", "promtool")


def ensure_promtool(*, timeout: float = 900.0) -> str:
    """Path of promtool, installing the Debian package ``prometheus`` first if it is missing."""
    return _ensure("ALLIANCE_PROMTOOL", "promtool", PROMTOOL_PACKAGE, timeout)


def ensure_chromium(*, timeout: float = 1200.0) -> str:
    """Path of Chromium (``ALLIANCE_CHROMIUM``, PATH, /usr/bin), installing Debian's ``chromium`` if missing
    (the fair board's browser test), and a Chinese font (``fonts-wqy-microhei``, 5 MB) if the machine has
    none: the board's labels are Chinese."""
    chromium = _ensure("ALLIANCE_CHROMIUM", "chromium", "chromium", timeout)
    with _lock:
        if not _has_chinese_font():
            apt_install("fonts-wqy-microhei", needed_for="a Chinese font for the fair board",
                        override="(install any font with Chinese glyphs)", timeout=timeout)
    return chromium


def _has_chinese_font() -> bool:
    fc_list = shutil.which("fc-list")  # fontconfig comes with chromium
    if fc_list is None:
        return False
    found = subprocess.run([fc_list, ":lang=zh", "family"], capture_output=True, text=True, timeout=60, check=False)
    return bool(found.stdout.strip())


def apt_install(package: str, *, needed_for: str, override: str, timeout: float = 900.0) -> None:
    """Install Debian's ``package`` (as root); without starting the servers it ships. ``needed_for`` and
    ``override`` (the setting that points elsewhere instead) go into the errors."""
    if shutil.which("apt-get") is None:
        raise ToolError(f"{needed_for} is missing and apt-get is not available: install the {package!r} "
                        f"package (or set {override})")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        raise ToolError(f"{needed_for} is missing: run `sudo apt-get install -y --no-install-recommends "
                        f"{package}` (installing needs root), or set {override}")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", package]
    # The package's maintainer scripts would start its server; a policy-rc.d that answers 101
    # ("action forbidden") stops invoke-rc.d from doing so. Only ours is removed afterwards.
    own_policy = not _POLICY_RC_D.exists()
    if own_policy:
        _POLICY_RC_D.write_text("#!/bin/sh\n# temporary, written by infra.tools\nexit 101\n")
        _POLICY_RC_D.chmod(0o755)
    try:
        if _run(install, env, timeout) != 0:
            # Package lists may be missing or stale on a fresh machine: update once and retry.
            if _run(["apt-get", "update"], env, timeout) != 0:
                raise ToolError("apt-get update failed (see output above)")
            if _run(install, env, timeout) != 0:
                raise ToolError(f"apt-get install {package} failed (see output above)")
    finally:
        if own_policy:
            _POLICY_RC_D.unlink(missing_ok=True)


def _run(cmd: list[str], env: dict[str, str], timeout: float) -> int:
    try:
        proc = subprocess.run(cmd, env=env, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise ToolError(f"{' '.join(cmd)} did not finish within {timeout:.0f}s") from exc
    return proc.returncode


def promtool(*args: str, stdin: str | None = None, cwd: Path | None = None,
             timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``promtool args...`` (installing it if needed); never raises on a non-zero exit."""
    return subprocess.run([ensure_promtool(), *args], input=stdin, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, check=False)


# ----------------------------------------------------------------------- Compose Specification schema

COMPOSE_SCHEMA_PACKAGE = "dclint@3.1.0"
"""npm package that ships the official Compose Specification JSON Schema (schemas/compose.schema.json)."""
_COMPOSE_SCHEMA_MEMBER = "package/schemas/compose.schema.json"


def ensure_compose_schema(cache_dir: Path | None = None, *, timeout: float = 300.0) -> Path:
    """Path of the Compose Specification JSON Schema, fetched once with ``npm pack`` into ``.local/``.

    Only the package tarball is fetched (npm checks its registry integrity hash); nothing is installed
    or executed. The schema is cached under ``cache_dir`` (default ``.local/compose-spec``).
    """
    import tarfile
    import tempfile

    from core.settings import PROJECT_ROOT

    cache = cache_dir or PROJECT_ROOT / ".local" / "compose-spec"
    target = cache / f"compose.schema.{COMPOSE_SCHEMA_PACKAGE.replace('@', '-')}.json"
    with _lock:
        if target.is_file():
            return target
        npm = shutil.which("npm")
        if npm is None:
            raise ToolError("npm is needed once to fetch the Compose Specification schema "
                            f"(npm pack {COMPOSE_SCHEMA_PACKAGE}); install Node.js/npm")
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=cache) as tmp:
            try:
                proc = subprocess.run([npm, "pack", COMPOSE_SCHEMA_PACKAGE, "--silent",
                                       "--pack-destination", tmp], capture_output=True, text=True,
                                      timeout=timeout, check=False, stdin=subprocess.DEVNULL)
            except subprocess.TimeoutExpired as exc:
                raise ToolError(f"npm pack {COMPOSE_SCHEMA_PACKAGE} timed out") from exc
            tarballs = sorted(Path(tmp).glob("*.tgz"))
            if proc.returncode != 0 or not tarballs:
                raise ToolError(f"npm pack {COMPOSE_SCHEMA_PACKAGE} failed: {proc.stderr.strip()}")
            with tarfile.open(tarballs[0]) as tar:
                member = tar.extractfile(_COMPOSE_SCHEMA_MEMBER)
                if member is None:
                    raise ToolError(f"{COMPOSE_SCHEMA_PACKAGE} has no {_COMPOSE_SCHEMA_MEMBER}")
                data = member.read()
            partial = Path(tmp) / "schema.json"
            partial.write_bytes(data)
            partial.replace(target)
        return target
