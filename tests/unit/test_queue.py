"""The reconciler's keyed queue: each key once, one worker per key, nothing lost while a key is worked on."""

from __future__ import annotations

import asyncio

from cachefleet.control.queue import KeyedQueue


def test_a_key_is_queued_once_in_order() -> None:
    async def scenario() -> list[str]:
        queue: KeyedQueue[str] = KeyedQueue()
        for key in ("a", "b", "a", "c", "b"):
            queue.put(key)
        assert len(queue) == 3
        return [await queue.get() for _ in range(3)]

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_key_put_while_worked_on_comes_back_once_after_done() -> None:
    async def scenario() -> None:
        queue: KeyedQueue[str] = KeyedQueue()
        queue.put("a")
        assert await queue.get() == "a"
        queue.put("a")  # changed while a worker has it: not handed to a second worker...
        queue.put("a")
        assert len(queue) == 0
        queue.done("a")  # ...but once the first is done
        assert len(queue) == 1
        assert await queue.get() == "a"
        queue.done("a")
        assert len(queue) == 0

    asyncio.run(scenario())


def test_get_waits_for_a_put() -> None:
    async def scenario() -> str:
        queue: KeyedQueue[str] = KeyedQueue()
        waiting = asyncio.create_task(queue.get())
        await asyncio.sleep(0)
        assert not waiting.done()
        queue.put("late")
        return await waiting

    assert asyncio.run(scenario()) == "late"


def test_put_later_queues_after_the_delay() -> None:
    async def scenario() -> str:
        queue: KeyedQueue[str] = KeyedQueue()
        queue.put_later("soon", 0.001)
        assert len(queue) == 0
        return await asyncio.wait_for(queue.get(), 5)

    assert asyncio.run(scenario()) == "soon"


def test_a_key_holds_one_timer_the_earliest() -> None:
    async def scenario() -> None:
        queue: KeyedQueue[str] = KeyedQueue()
        queue.put_later("a", 3600.0)
        queue.put_later("a", 7200.0)  # later than the one it has: nothing added
        assert queue.timers() == 1
        queue.put_later("a", 0.0)  # sooner: replaces it
        assert queue.timers() == 1
        assert await queue.get() == "a"
        assert queue.timers() == 0

    asyncio.run(scenario())
