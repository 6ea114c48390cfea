"""Zombie fencing: a worker that can no longer be sure it is a member of its consumer group writes nothing.

A worker frozen past the group's session timeout (SIGSTOP, a long pause of its process or machine, a
network cut to the group coordinator) is expelled; its partitions move to another worker, which recovers
the tables from their changelogs and goes on. When the frozen worker resumes, it is in the middle of a batch
and would flush that batch's changelog writes and partial sums *after* the new owner's, and a later recovery
would read them last (docs/reliability.md: 69-312 events missing from the counts in 3 of 5 zombie runs).
Kafka's brokers fence zombies only for transactional producers; the worker's producer is not one, so the
worker fences itself:

* the group coordinator resets a member's session when it receives a successful heartbeat or the member's
  SyncGroup. :class:`MembershipFence` keeps the *send* time of the last such request whose answer was a
  success (a lower bound of when the coordinator reset the session, on this process's monotonic clock);
* a heartbeat answered "unknown member", "illegal generation" or "fenced instance" means the group went on
  without this worker: the process exits at once (:data:`EXIT_FENCED`), dropping whatever it had not yet
  written, and its supervisor starts it again as a fresh member (nothing of the batch was committed);
* while that time is older than the session timeout minus a margin, the coordinator may have expelled
  this worker without it knowing yet (a frozen process; a coordinator that moved in a broker bounce). No
  write goes out then: a batch waits before its flush (:meth:`MembershipFence.wait_writable`) until a
  heartbeat confirms the membership (then it is written) or says it is gone (exit), and every produce
  request is checked again on the connection, right before its bytes are written (a retriable error
  there: aiokafka's sender retries it later, under the same rule);
* a resumed process (SIGCONT) that was stopped past that limit exits at once, before anything it had
  buffered is written: after such a stop it has almost surely been expelled.

What stays open: bytes the kernel accepted before a *whole machine* pauses are sent when it resumes. Only
transactional producers (one per input partition, epoch-fenced by the broker) close that; docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.group import HeartbeatRequest, SyncGroupRequest
from aiokafka.protocol.produce import ProduceRequest

log = logging.getLogger("streams.fence")

EXIT_FENCED = 69  # EX_UNAVAILABLE: no longer a member of the group (or unsure too long); nothing was written
REBALANCE_IN_PROGRESS = 27  # a heartbeat answered so is still a member's heartbeat (aiokafka treats it so too)
EXPELLED = {22: "illegal generation", 25: "unknown member id", 82: "fenced instance id"}  # heartbeat errors


def _exit_fenced(reason: str) -> None:
    log.critical("%s; exiting with %d without writing (zombie fencing)", reason, EXIT_FENCED)
    logging.shutdown()
    os._exit(EXIT_FENCED)


class MembershipFence:
    """When the group coordinator last heard from this member, and whether a write may still go out."""

    def __init__(self, session_timeout_s: float, margin_s: float, *, clock: Callable[[], float] = time.monotonic,
                 on_fenced: Callable[[str], None] = _exit_fenced) -> None:
        if margin_s >= session_timeout_s:
            raise ValueError("the fencing margin must be shorter than the session timeout")
        self.limit_s = session_timeout_s - margin_s
        self.clock = clock
        self.on_fenced = on_fenced
        self.renewed_at: float | None = None  # send time of the last successful heartbeat / SyncGroup
        self.fenced = 0  # times on_fenced was called (tests: it does not exit there)
        self.deferred = 0  # produce requests sent back to aiokafka's sender to retry later
        self._lock = threading.Lock()  # heartbeats renew on the consumer's thread, writes check on the app's

    def renew(self, sent_at: float) -> None:
        with self._lock:
            if self.renewed_at is None or sent_at > self.renewed_at:
                self.renewed_at = sent_at

    def age(self) -> float | None:
        """Seconds since the coordinator last renewed the session (None: never a member yet)."""
        with self._lock:
            return None if self.renewed_at is None else self.clock() - self.renewed_at

    def expired(self) -> bool:
        age = self.age()
        return age is not None and age > self.limit_s

    def fence(self, reason: str) -> None:
        self.fenced += 1
        self.on_fenced(reason)

    def _unconfirmed(self, what: str) -> str:
        return (f"{what}: the group coordinator last renewed this member's session {self.age() or 0:.1f}s ago "
                f"(limit {self.limit_s:.1f}s); its partitions may have moved")

    async def wait_writable(self, timeout_s: float, poll_s: float = 0.1) -> None:
        """Return once the membership is confirmed (fresh), waiting up to ``timeout_s`` for a heartbeat;
        fence the process if none comes (an expelled member learns it from the heartbeat and exits then)."""
        if not self.expired():
            return
        log.warning("%s: holding the batch's writes until a heartbeat confirms the membership",
                    self._unconfirmed("batch"))
        deadline = self.clock() + timeout_s
        while self.expired():
            if self.clock() > deadline:
                self.fence(self._unconfirmed(f"no heartbeat confirmed the membership within {timeout_s:.0f}s"))
                raise RuntimeError("write refused: membership not confirmed")
            await asyncio.sleep(poll_s)

    # -- where the session is renewed: the consumer's group coordinator ---------------------------------

    def watch_coordinator(self, coordinator: Any) -> None:
        """Renew on every successful heartbeat and SyncGroup sent by ``coordinator`` (aiokafka's
        GroupCoordinator; all its requests go through ``_send_req``). Idempotent."""
        if getattr(coordinator, "_alliance_fence", None) is self:
            return
        send_req = coordinator._send_req

        async def renewing_send_req(request: Any) -> Any:
            sent_at = self.clock()
            response = await send_req(request)
            if isinstance(request, SyncGroupRequest) and response.error_code == 0:
                self.renew(sent_at)
            elif isinstance(request, HeartbeatRequest):
                if response.error_code in (0, REBALANCE_IN_PROGRESS):
                    self.renew(sent_at)
                elif response.error_code in EXPELLED and self.renewed_at is not None:
                    self.fence(f"heartbeat answered {EXPELLED[response.error_code]}: the group went on without "
                               "this worker")
            return response

        coordinator._send_req = renewing_send_req
        coordinator._alliance_fence = self

    # -- where writes are checked: the producer's connections --------------------------------------------

    def guard_producer(self, producer: Any) -> None:
        """Check every produce request of ``producer`` (an AIOKafkaProducer) on its connection, right before
        it is written to the socket. Idempotent."""
        client = producer.client
        if getattr(client, "_alliance_fence", None) is self:
            return
        send = client.send

        async def guarded_send(node_id: int, request: Any, **kwargs: Any) -> Any:
            if isinstance(request, ProduceRequest):
                await client.ready(node_id, **kwargs)  # the connection exists now: guard it
                for conn in list(client._conns.values()):
                    self._guard_connection(conn)
            return await send(node_id, request, **kwargs)

        client.send = guarded_send
        client._alliance_fence = self

    def _guard_connection(self, conn: Any) -> None:
        if getattr(conn, "_alliance_fence", None) is self:
            return
        send = conn.send

        def guarded(request: Any, expect_response: bool = True) -> Any:
            if isinstance(request, ProduceRequest) and self.expired():
                self.deferred += 1
                raise KafkaConnectionError(self._unconfirmed("produce request held back"))  # retriable
            return send(request, expect_response)

        conn.send = guarded
        conn._alliance_fence = self

    # -- a resumed process ----------------------------------------------------------------------------------

    def on_resume(self) -> None:
        """SIGCONT: a process stopped past the limit exits before it writes anything it had buffered."""
        if self.expired():
            self.fence(self._unconfirmed("resumed after a stop"))


def install_resume_check(fence: MembershipFence) -> None:
    """Check the fence when the process is continued (main thread only; a Python-level handler runs before
    the event loop's next write callback)."""
    signal.signal(signal.SIGCONT, lambda _sig, _frame: fence.on_resume())
