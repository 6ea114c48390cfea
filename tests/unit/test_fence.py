"""streams.fence.MembershipFence: a worker whose group session may have expired sends no produce request.

aiokafka's own request classes go through fake coordinator/client/connection objects (no broker): the
fence decides from the send time of the last successful heartbeat or SyncGroup, on an injected clock. The
real thing (SIGSTOP past the session timeout against the real broker) is the `zombie-worker` chaos scenario
(tests/integration/test_chaos.py)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.group import HeartbeatRequest, SyncGroupRequest
from aiokafka.protocol.metadata import MetadataRequest
from aiokafka.protocol.produce import ProduceRequest

from streams.fence import MembershipFence

SESSION_S, MARGIN_S = 15.0, 3.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Response:
    error_code: int


@dataclass
class Coordinator:
    clock: Clock
    answer: int = 0
    latency_s: float = 0.0

    async def _send_req(self, request: Any) -> Response:
        self.clock.now += self.latency_s
        return Response(self.answer)


@dataclass
class Connection:
    written: list[Any] = field(default_factory=list)

    def send(self, request: Any, expect_response: bool = True) -> str:
        self.written.append(request)
        return "future"


@dataclass
class Client:
    conns: dict[tuple[int, int], Connection]

    @property
    def _conns(self) -> dict[tuple[int, int], Connection]:
        return self.conns

    async def ready(self, node_id: int, **kwargs: Any) -> bool:
        return True

    async def send(self, node_id: int, request: Any, **kwargs: Any) -> Any:
        return self.conns[(node_id, 0)].send(request)


@dataclass
class Producer:
    client: Client


def heartbeat() -> HeartbeatRequest:
    return HeartbeatRequest("g", 3, "m")


def sync_group() -> SyncGroupRequest:
    return SyncGroupRequest("g", 3, "m", "i", [])


def produce() -> ProduceRequest:
    return ProduceRequest(None, -1, 30_000, [("alliance.agg.x", [(0, b"")])])


def fence_with(clock: Clock) -> tuple[MembershipFence, list[str]]:
    reasons: list[str] = []
    return MembershipFence(SESSION_S, MARGIN_S, clock=clock, on_fenced=reasons.append), reasons


async def test_session_renewed_at_the_send_time_of_successful_heartbeats_and_sync_groups_only() -> None:
    clock = Clock()
    fence, _ = fence_with(clock)
    coordinator = Coordinator(clock, latency_s=2.0)
    fence.watch_coordinator(coordinator)
    fence.watch_coordinator(coordinator)  # idempotent: one wrapper
    assert fence.age() is None  # never a member yet

    await coordinator._send_req(sync_group())
    assert fence.renewed_at == 1000.0  # when it was sent, not when the answer came (a lower bound)

    clock.now += 5
    coordinator.answer = 15  # COORDINATOR_NOT_AVAILABLE (a broker bounce): no renewal, no verdict either
    await coordinator._send_req(heartbeat())
    assert fence.renewed_at == 1000.0 and fence.fenced == 0

    coordinator.answer = 27  # REBALANCE_IN_PROGRESS: still a member until it rejoins
    await coordinator._send_req(heartbeat())
    assert fence.renewed_at == 1009.0

    coordinator.answer = 0
    await coordinator._send_req(MetadataRequest([]))  # not a session renewal
    assert fence.renewed_at == 1009.0


@pytest.mark.parametrize("code", [22, 25, 82], ids=["illegal-generation", "unknown-member", "fenced-instance"])
async def test_a_heartbeat_saying_the_group_went_on_without_this_worker_fences_it_at_once(code: int) -> None:
    clock = Clock()
    fence, reasons = fence_with(clock)
    coordinator = Coordinator(clock, answer=code)
    fence.watch_coordinator(coordinator)
    fence.renew(clock.now)
    await coordinator._send_req(heartbeat())
    assert fence.fenced == 1 and "went on without this worker" in reasons[0]


async def test_produce_requests_are_refused_on_the_connection_once_the_session_may_have_expired() -> None:
    clock = Clock()
    fence, reasons = fence_with(clock)
    conn = Connection()
    producer = Producer(Client({(1, 0): conn}))
    fence.guard_producer(producer)
    fence.guard_producer(producer)  # idempotent

    await producer.client.send(1, produce())  # never a member: nothing to fence yet
    fence.renew(clock.now)
    clock.now += SESSION_S - MARGIN_S  # at the limit: still allowed
    await producer.client.send(1, produce())
    assert len(conn.written) == 2 and reasons == []

    clock.now += 0.5  # frozen past the limit (SIGSTOP, a pause): the coordinator may have expelled it
    with pytest.raises(KafkaConnectionError, match=r"12\.5s ago") as refused:  # aiokafka's sender retries it later
        await producer.client.send(1, produce())
    assert refused.value.retriable
    assert len(conn.written) == 2  # nothing reached the socket
    assert fence.deferred == 1 and reasons == []

    await producer.client.send(1, MetadataRequest([]))  # only produce requests are fenced
    assert len(conn.written) == 3

    fence.renew(clock.now)  # rejoined: writes go out again
    await producer.client.send(1, produce())
    assert len(conn.written) == 4


def test_a_connection_written_to_directly_is_guarded_too() -> None:
    """aiokafka's sender may reach a connection the guard saw once: the check is on the connection itself,
    the last step before the socket."""
    clock = Clock()
    fence, _ = fence_with(clock)
    conn = Connection()
    fence._guard_connection(conn)
    fence.renew(clock.now)
    assert conn.send(produce()) == "future"
    clock.now += 60
    with pytest.raises(KafkaConnectionError):
        conn.send(produce())
    assert len(conn.written) == 1 and fence.deferred == 1


async def test_a_batch_waits_for_a_heartbeat_before_it_writes_and_is_fenced_if_none_comes() -> None:
    clock = Clock()
    fence, reasons = fence_with(clock)
    await fence.wait_writable(30)  # never a member: nothing to wait for
    fence.renew(clock.now)
    await fence.wait_writable(30)  # fresh: at once

    clock.now += 20  # the coordinator moved (broker bounce): no answer for 20 s

    waiting = asyncio.create_task(fence.wait_writable(30, poll_s=0.01))
    await asyncio.sleep(0.05)
    assert not waiting.done()  # held back
    fence.renew(clock.now)  # the new coordinator confirms the membership
    await asyncio.wait_for(waiting, 1)
    assert reasons == []

    clock.now += 20
    ticking = Clock()
    ticking.now = clock.now

    def advancing() -> float:  # time passes while it waits; no heartbeat ever answers
        ticking.now += 1
        return ticking.now

    fence.clock = advancing
    with pytest.raises(RuntimeError, match="not confirmed"):
        await fence.wait_writable(30, poll_s=0)
    assert len(reasons) == 1 and "within 30s" in reasons[0]


def test_a_resumed_process_checks_at_once() -> None:
    clock = Clock()
    fence, reasons = fence_with(clock)
    fence.on_resume()  # never a member: nothing to do
    fence.renew(clock.now)
    clock.now += 4
    fence.on_resume()  # a short stop: still a member
    assert reasons == []
    clock.now += 20
    fence.on_resume()
    assert len(reasons) == 1 and reasons[0].startswith("resumed after a stop")


def test_margin_must_leave_time() -> None:
    with pytest.raises(ValueError):
        MembershipFence(3.0, 3.0)
