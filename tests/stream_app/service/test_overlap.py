"""batches.run_overlapped: the model of batch N+1 overlaps the publishing of batch N, and
nothing else changes (order, at-least-once, stop, cancel).

The steps are plain asyncio events the test sets itself, so every interleaving checked
here is forced, not timed: "prepare" stands for validation + the model, "finish" for
publish + await acknowledgements + acknowledge the input.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from stream_app.service.batches import InFlight, run_overlapped


class Steps:
    """Records the order of begin/end of every step; each finish waits for its gate."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[int, asyncio.Event] = {}
        self.prepared: dict[int, asyncio.Event] = {}

    def gate(self, n: int) -> asyncio.Event:
        return self.gates.setdefault(n, asyncio.Event())

    def was_prepared(self, n: int) -> asyncio.Event:
        return self.prepared.setdefault(n, asyncio.Event())

    async def prepare(self, n: int) -> str:
        self.log.append(f"prepare {n}")
        await asyncio.sleep(0)
        self.was_prepared(n).set()
        return f"scored {n}"

    async def finish(self, n: int, prepared: str) -> None:
        assert prepared == f"scored {n}"
        self.log.append(f"finish {n} begins")
        await self.gate(n).wait()  # e.g. the broker has not acknowledged yet
        self.log.append(f"finish {n} ends")


async def source(n: int, stop_after: int | None = None, inflight: InFlight | None = None
                 ) -> AsyncIterator[int]:  # fmt: skip
    for i in range(n):
        if stop_after is not None and i == stop_after and inflight is not None:
            inflight.stopping = True
        yield i


async def test_the_next_batch_is_prepared_while_the_previous_finishes() -> None:
    steps, inflight = Steps(), InFlight()
    runner = asyncio.create_task(run_overlapped(source(3), steps.prepare, steps.finish, inflight))
    await steps.was_prepared(1).wait()  # batch 1 scored while batch 0 waits for its acks
    assert "finish 0 ends" not in steps.log
    assert "prepare 2" not in steps.log  # at most two batches in flight
    assert inflight.count == 2
    for n in range(3):
        steps.gate(n).set()
    await asyncio.wait_for(runner, 5)
    finishes = [line for line in steps.log if line.startswith("finish")]
    assert finishes == [f"finish {n} {e}" for n in range(3) for e in ("begins", "ends")]
    assert inflight.count == 0


async def test_a_batch_finishes_only_after_the_one_before_it() -> None:
    steps, inflight = Steps(), InFlight()
    runner = asyncio.create_task(run_overlapped(source(2), steps.prepare, steps.finish, inflight))
    await steps.was_prepared(1).wait()
    await asyncio.sleep(0.01)
    assert "finish 1 begins" not in steps.log  # batch 0 not acknowledged yet
    steps.gate(1).set()  # batch 1's acks would be there: it still waits for batch 0
    await asyncio.sleep(0.01)
    assert "finish 1 begins" not in steps.log
    steps.gate(0).set()
    await asyncio.wait_for(runner, 5)
    assert steps.log.index("finish 0 ends") < steps.log.index("finish 1 begins")


async def test_stopping_finishes_the_batches_in_flight_and_takes_no_new_one() -> None:
    steps, inflight = Steps(), InFlight()
    batches = source(5, stop_after=2, inflight=inflight)
    runner = asyncio.create_task(run_overlapped(batches, steps.prepare, steps.finish, inflight))
    await steps.was_prepared(1).wait()
    steps.gate(0).set()
    steps.gate(1).set()
    await asyncio.wait_for(runner, 5)
    assert "finish 1 ends" in steps.log  # in flight when the stop began: finished
    assert not any(line.startswith(("prepare 2", "finish 2")) for line in steps.log)
    assert await inflight.wait_idle(0.1)


async def test_cancelling_the_loop_cancels_the_batches_in_flight_unfinished() -> None:
    steps, inflight = Steps(), InFlight()
    runner = asyncio.create_task(run_overlapped(source(3), steps.prepare, steps.finish, inflight))
    await steps.was_prepared(1).wait()
    runner.cancel()
    with pytest.raises(asyncio.CancelledError):
        await runner
    assert "finish 0 ends" not in steps.log
    assert "finish 1 begins" not in steps.log  # never published, never acknowledged
    assert inflight.count == 0
    assert asyncio.all_tasks() == {asyncio.current_task()}  # no batch left running
