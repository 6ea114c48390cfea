"""streams.consumer.GaplessConsumer: faust's consumer would commit over records it dropped in a rebalance
(it books the offset jump as a compaction "gap"); ours keeps the committed offset below them.

The consumer objects are built but never started (no broker needed): the commit decision is local."""

from __future__ import annotations

import faust
import pytest
from faust.types import TP

from streams.consumer import GaplessConsumer, install

TOPIC = TP("alliance.ingest.scu", 2)


async def _commit_offset_after_a_jump(app: faust.App) -> int | None:
    consumer = app.consumer
    consumer._committed_offset[TOPIC] = 607
    # 608 and 609 were dropped by faust in a rebalance; the fetcher then delivers 610 and sees the jump
    await consumer._add_gap(TOPIC, 608, 610)
    for offset in (610, 611):  # delivered and acked by the agent
        consumer._acked[TOPIC].append(offset)
        consumer._acked_index[TOPIC].add(offset)
    return consumer._new_offset(TOPIC)


@pytest.mark.parametrize("gapless", [False, True], ids=["faust", "gapless"])
async def test_offsets_faust_dropped_are_not_committed_over(gapless: bool) -> None:
    app = faust.App(f"gapless-{gapless}", broker="kafka://127.0.0.1:1", store="memory://")
    if gapless:
        install(app)
    before = GaplessConsumer.skipped_jumps
    new_offset = await _commit_offset_after_a_jump(app)
    if gapless:
        assert isinstance(app.consumer, GaplessConsumer)
        assert new_offset is None  # stays at 607: the stall guard will re-read 608 and 609
        assert GaplessConsumer.skipped_jumps == before + 1
    else:  # what faust itself does: the dropped records would be committed, i.e. lost for good
        assert new_offset is not None and new_offset > 608


def _ack(consumer: object, *offsets: int) -> None:
    for offset in offsets:
        consumer._acked[TOPIC].append(offset)  # type: ignore[attr-defined]
        consumer._acked_index[TOPIC].add(offset)  # type: ignore[attr-defined]


@pytest.mark.parametrize("gapless", [False, True], ids=["faust", "gapless"])
def test_a_single_missing_record_at_the_committed_offset_is_not_committed_over(gapless: bool) -> None:
    app = faust.App(f"head-{gapless}", broker="kafka://127.0.0.1:1", store="memory://")
    if gapless:
        install(app)
    consumer = app.consumer
    consumer._committed_offset[TOPIC] = 607  # the next record to process is 607
    _ack(consumer, 608, 609)  # 607 was dropped
    if gapless:
        assert consumer._new_offset(TOPIC) is None
        _ack(consumer, 607)  # re-read after the stall guard's seek
        assert consumer._new_offset(TOPIC) == 610
    else:  # faust's head check is off by one: it commits 610 and 607 is lost
        assert consumer._new_offset(TOPIC) == 610


def test_before_the_first_commit_the_run_must_start_at_the_partitions_first_offset() -> None:
    app = faust.App("first-commit", broker="kafka://127.0.0.1:1", store="memory://")
    install(app)
    consumer = app.consumer
    assert isinstance(consumer, GaplessConsumer)
    _ack(consumer, 1, 2)
    assert consumer._new_offset(TOPIC) is None  # where the partition starts is not known yet
    consumer.start_offsets[TOPIC] = 0
    assert consumer._new_offset(TOPIC) is None  # offset 0 was never acked
    _ack(consumer, 0, 4)
    assert consumer._new_offset(TOPIC) == 3  # 0, 1, 2; 4 waits for 3
    assert consumer._acked[TOPIC] == [4]
