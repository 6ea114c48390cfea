"""infra.processes.interrupt_on_sigterm: a command of ``python -m infra`` stopped with SIGTERM (``kill``, a
supervisor) runs its ``finally`` blocks, as with Ctrl-C, so it stops the services it started (found: a chaos run
killed so left its workers and projector running)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from core.settings import PROJECT_ROOT
from infra.processes import pid_alive, terminate_all, wait_until

COMMAND = textwrap.dedent("""
    import subprocess, sys, time
    from infra.processes import Terminated, interrupt_on_sigterm
    interrupt_on_sigterm()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"], stdout=subprocess.DEVNULL)
    try:
        print(child.pid, flush=True)
        time.sleep(120)
    except Terminated:
        print("terminated", flush=True)
    finally:
        print("stopping", flush=True)
        time.sleep(0.5)  # (a clean-up that takes a while: a second SIGTERM arrives meanwhile)
        child.terminate()
        child.wait()
        print("stopped", flush=True)
""")


def test_sigterm_runs_the_clean_up_once_and_a_second_one_does_not_cut_it_short() -> None:
    proc = subprocess.Popen([sys.executable, "-c", COMMAND], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    child = int(proc.stdout.readline())
    assert pid_alive(child)
    proc.send_signal(signal.SIGTERM)
    assert proc.stdout.readline() == "terminated\n"
    assert proc.stdout.readline() == "stopping\n"
    proc.send_signal(signal.SIGTERM)  # during the clean-up: ignored
    out, _ = proc.communicate(timeout=30)
    assert out == "stopped\n" and proc.returncode == 0
    wait_until(lambda: not pid_alive(child), 5, "the child stopped")


def test_the_infra_command_line_turns_sigterm_into_its_own_exit_status() -> None:
    """``python -m infra`` exits 143 on SIGTERM (128 + 15, as a shell reports it), after its clean-up."""
    script = textwrap.dedent("""
        import sys, time
        import infra.cli
        def waits(args):
            print("ready", flush=True)
            time.sleep(120)
            return 0
        infra.cli._cmd_chaos = waits  # (a long command, without its stack)
        sys.exit(infra.cli.main(["chaos"]))
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline() == "ready\n"
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "terminated (SIGTERM)" in err


# A member of a quorum: on SIGTERM it says so, then stops cleanly only once every other member got SIGTERM too (as a
# KRaft node's controlled shutdown waits for the controller quorum); stopped alone, it waits until it is killed.
MEMBER = textwrap.dedent("""
    import os, signal, sys, time
    here, members = sys.argv[1], sys.argv[2:]
    def stop(*_):
        open(here + ".sigterm", "w").close()
        while not all(os.path.exists(m + ".sigterm") for m in members):
            time.sleep(0.05)
        open(here + ".clean", "w").close()
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)
    open(here + ".ready", "w").close()
    while True:
        time.sleep(1)
""")


def test_terminate_all_stops_a_quorum_together_cleanly(tmp_path: Path) -> None:
    """``terminate_all`` signals every process before waiting for any: the nodes of a local KRaft cluster stopped one
    after the other left the last one waiting for a quorum that was gone, killed after 45 s (an unclean stop; its
    data directory had no ``.kafka_cleanshutdown``). Signalled and waited for one by one, these members are killed."""
    names = [str(tmp_path / f"node-{i}") for i in range(3)]
    procs = [subprocess.Popen([sys.executable, "-c", MEMBER, name, *names]) for name in names]
    wait_until(lambda: all(os.path.exists(n + ".ready") for n in names), 30, "the members to start")
    terminate_all([p.pid for p in procs], timeout=30)
    assert not [p.pid for p in procs if pid_alive(p.pid)]
    assert all(os.path.exists(n + ".clean") for n in names)  # each stopped by itself, none killed


def test_free_ports_with_a_span_hand_out_disjoint_blocks_each_free_to_bind() -> None:
    """A local cluster's nodes listen on consecutive ports (tests/integration/test_local_cluster.py): each port
    comes with the ``span`` after it free, and no later call hands out any port of a block again."""
    import socket

    from infra import processes
    from infra.processes import free_ports

    firsts = free_ports(3, span=6)
    blocks = [set(range(p, p + 6)) for p in firsts]
    assert len(set().union(*blocks)) == 18  # disjoint
    for port in sorted(set().union(*blocks)):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", port))  # raises if it was taken
    assert set().union(*blocks) <= processes._handed_out  # what free_ports never hands out again
