"""Child processes of the backbone (workers, projector, local servers): the one process handle
(:class:`Service`: start, readiness, progress, stop), the one poll helper (:func:`wait_until`), pid files,
liveness and ports."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.settings import PROJECT_ROOT, Settings
from infra.errors import InfraError

_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_handed_out: set[int] = set()


def _listen_range() -> tuple[int, int]:
    """Ports below the kernel's ephemeral range: a port chosen there cannot be taken between choosing and
    binding by some process's *outgoing* connection (a Kafka client's, say), which is what a port asked of
    the kernel with ``bind(0)`` is exposed to (it lies inside that range)."""
    try:
        low = int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    return (10000, low - 1) if low > 12000 else (low, 65535)


def free_ports(n: int, span: int = 1) -> list[int]:
    """``n`` distinct loopback ports free now, outside the ephemeral range and never handed out before by
    this process (all held open until every one is chosen). ``span``: each port p comes with p+1 .. p+span-1
    free too, and handed out with it (a local cluster's nodes listen on consecutive ports)."""
    lo, hi = _listen_range()
    rng = random.SystemRandom()
    socks: list[socket.socket] = []
    ports: list[int] = []
    taken: set[int] = set()
    try:
        for _ in range(200 * n):
            if len(ports) == n:
                break
            port = rng.randint(lo, hi - span + 1)
            block = range(port, port + span)
            if any(p in _handed_out or p in taken for p in block):
                continue
            bound = [b for b in (_bound(p) for p in block) if b is not None]
            socks.extend(bound)
            if len(bound) < span:
                continue
            ports.append(port)
            taken.update(block)
        if len(ports) < n:
            raise InfraError(f"no {n} free loopback ports found between {lo} and {hi}")
        _handed_out.update(taken)
        return ports
    finally:
        for s in socks:
            s.close()


def _bound(port: int) -> socket.socket | None:
    """A socket bound to loopback ``port``, or None if it is taken."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close()
        return None
    return s


def free_port() -> int:
    return free_ports(1)[0]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def stat_fields(stat: str) -> list[str]:
    """The fields of a ``/proc/<pid>/stat`` text from the third (the state) on: the command name, the second,
    is in parentheses and may hold spaces and parentheses itself, so the fields start after the last ")"."""
    return stat[stat.rindex(")") + 1:].split()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); treat it as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return stat_fields(f.read())[0] != "Z"
    except OSError:
        return True


def terminate_all(pids: list[int], timeout: float = 30.0) -> None:
    """SIGTERM to every one of ``pids`` at once, wait up to ``timeout`` seconds for all, then SIGKILL to those
    left. (A local KRaft cluster's nodes stop in ~6 s together. Each would stop cleanly alone too: they skip the
    controlled shutdown, whose approval needs a controller quorum that may be leaving; infra.kafka_local.)"""
    signalled = []
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
            signalled.append(pid)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    while signalled and time.monotonic() < deadline:
        for pid in [p for p in signalled if not pid_alive(p)]:
            _reap(pid)
            signalled.remove(pid)
        if signalled:
            time.sleep(0.2)
    for pid in signalled:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            continue
        _reap(pid)


def stop_all(pid_files: Iterable[tuple[str, Path]], timeout: float = 30.0) -> None:
    """Stop the processes whose pid files ``pid_files`` gives, as (what, pid file), together (:func:`terminate_all`),
    and remove the files."""
    named = list(pid_files)
    running = []
    for what, pid_file in named:
        if (pid := read_pid(pid_file)) is not None:
            print(f"[infra] stopping {what} (pid {pid})", flush=True)
            running.append(pid)
    terminate_all(running, timeout)
    for _, pid_file in named:
        pid_file.unlink(missing_ok=True)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised the way Ctrl-C raises KeyboardInterrupt (:func:`interrupt_on_sigterm`)."""


def interrupt_on_sigterm() -> None:
    """From now on SIGTERM raises :class:`Terminated` in the main thread, as Ctrl-C raises KeyboardInterrupt:
    every ``finally`` runs, so a command stopped by ``kill`` or a supervisor stops the services it started
    (workers, projector, a chaos run's cluster) instead of leaving them running. A second SIGTERM during
    that clean-up is ignored (SIGKILL still ends it); children started later get the default handler."""

    def ignore(signum: int, frame: Any) -> None:
        return None

    def interrupt(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, ignore)
        raise Terminated

    signal.signal(signal.SIGTERM, interrupt)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_until(check: Callable[[], bool | tuple[bool, str]], timeout: float, what: str, *,
               on_fail: Callable[[], str] = lambda: "", report: Callable[[str], None] | None = None,
               interval: float = 0.3, error: type[Exception] = InfraError) -> None:
    """Poll ``check`` every ``interval`` s until it holds; raise ``error`` naming ``what`` after ``timeout``.

    ``check`` returns a bool, or (done, status): ``report(status)`` is called whenever the status changes
    (progress output for long waits), and the last status is part of the error. ``on_fail()`` adds detail
    (a log tail) to the error. An exception raised by ``check`` (a child that died) ends the wait at once."""
    deadline = time.monotonic() + timeout
    last = ""
    while True:
        result = check()
        done, status = result if isinstance(result, tuple) else (result, last)
        if status != last and report is not None:
            report(status)
        last = status
        if done:
            return
        if time.monotonic() >= deadline:
            detail = on_fail()
            raise error(f"{what} not ready after {timeout:.0f}s" + (f" ({last})" if last else "")
                        + (f"\n{detail}" if detail else ""))
        time.sleep(interval)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"(no log at {path})"


@dataclass
class Service:
    """A Python child process of the backbone (``python <argv>``) with an HTTP port (views, /metrics,
    /healthz, /readyz), started with the ALLIANCE_* variables of a Settings object plus ``env``."""

    name: str
    argv: list[str]
    log: Path
    port: int
    env: dict[str, str] = field(default_factory=dict)
    quiet: bool = False  # no "[run] ... started" line
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.monotonic() of the start

    def start(self, settings: Settings) -> None:
        env = {**os.environ, **settings.kafka_env(),  # each service takes its own role's password
               **settings.database_env(), "ALLIANCE_TOPIC_SUFFIX": settings.topic_suffix,
               "ALLIANCE_APP_ID": settings.app_id, "ALLIANCE_LOCAL_DIR": str(settings.local_dir),
               "ALLIANCE_TABLES_HOME": str(settings.tables_dir),  # (the one this process wipes with its Kafka)
               "ALLIANCE_REPLICATION_FACTOR": str(settings.replication_factor),
               **({"ALLIANCE_HTTP_TOKEN": settings.http_token.get_secret_value()} if settings.http_token else {}),
               "PYTHONUNBUFFERED": "1", **self.env}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([sys.executable, *self.argv], env=env, cwd=PROJECT_ROOT, stdout=out,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.started_at = time.monotonic()
        if not self.quiet:
            print(f"[run] {self.name} started (pid {self.proc.pid}, log {self.log})", flush=True)

    def log_tail(self, lines: int = 30) -> str:
        return tail(self.log, lines)

    def json(self, path: str) -> dict[str, Any] | None:
        """A JSON document the service serves at ``path`` (None while it does not answer 200)."""
        status, body = self.get(path)
        if status != 200:
            return None
        try:
            doc: dict[str, Any] = json.loads(body)
        except ValueError:
            return None
        return doc

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=5) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as exc:  # 503 from /readyz says why in its body
            return exc.code, exc.read().decode(errors="replace")
        except OSError:
            return 0, ""

    def wait_ready(self, timeout: float) -> None:
        def ready() -> bool:
            if not self.alive():
                raise InfraError(f"{self.name} exited during start-up:\n{tail(self.log)}")
            return self.get("/readyz")[0] == 200

        wait_until(ready, timeout, self.name, on_fail=self.log_tail)

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=10)


def worker(index: int, settings: Settings, log_dir: Path, port: int | None = None) -> Service:
    """Worker number ``index`` of ``settings.app_id``: web port ``port`` (default ``web_port + index``) and
    the static group membership ``<app id>-<index + 1>``, so a worker started again with the same index
    (and port) takes its partitions back without a rebalance."""
    port = settings.web_port + index if port is None else port
    return Service(f"worker-{index + 1}", ["-m", "streams", "worker", "--web-port", str(port), "-l", "info"],
                   log_dir / f"worker-{index + 1}.log", port,
                   env={"ALLIANCE_WORKER_INSTANCE_ID": f"{settings.app_id}-{index + 1}"})


def projector(settings: Settings, log_dir: Path, port: int) -> Service:
    return Service("projector", ["-m", "consumers", "run", "--metrics-port", str(port)],
                   log_dir / "projector.log", port)


def portal_api(settings: Settings, log_dir: Path, port: int) -> Service:
    """The portal API with its live fair boards (``python -m consumers api``)."""
    return Service("portal-api", ["-m", "consumers", "api", "--port", str(port)], log_dir / "portal-api.log", port)


def freshness(workers: list[Service], field: str = "events_processed") -> dict[str, int]:
    """A /freshness/ counter per agent, summed over the workers: ``events_processed`` (replays after a
    rebalance included) or ``events_applied`` (first-time events; ingest and tables only)."""
    total: dict[str, int] = {}
    for w in workers:
        for agent, info in (w.json("/freshness/") or {}).items():
            if field in info:
                total[agent] = total.get(agent, 0) + int(info[field])
    return total


def wait_applied(workers: list[Service], at_least: int, timeout: float, agent: str = "tables") -> None:
    """Until ``agent`` of ``workers`` applied ``at_least`` events for the first time (a worker that exits
    ends the wait at once)."""
    def applied() -> tuple[bool, str]:
        for w in workers:
            if not w.alive():
                raise InfraError(f"{w.name} exited:\n{w.log_tail()}")
        done = freshness(workers, "events_applied").get(agent, 0)
        return done >= at_least, f"{done} of {at_least} events applied"

    wait_until(applied, timeout, f"{agent} to apply {at_least} events", interval=0.05)


def metric_sum(service: Service, name: str) -> dict[str, float]:
    """Samples of one metric family from a service's /metrics, by label string."""
    status, body = service.get("/metrics")
    out: dict[str, float] = {}
    if status != 200:
        return out
    for line in body.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, value = line.rsplit(" ", 1)
            out[labels[len(name):]] = float(value)
    return out


def label(labels: str, name: str) -> str:
    """The value of label ``name`` in a sample's label string as :func:`metric_sum` returns it."""
    return labels.split(f'{name}="', 1)[1].split('"', 1)[0]
