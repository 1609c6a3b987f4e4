"""``endpoints.watch.close_all``: a watch's clients are closed to the end, even when it is stopped."""

from __future__ import annotations

import asyncio

import pytest

from cachefleet.endpoints.watch import close_all


def test_a_cancel_that_lands_during_a_close_waits_for_every_close() -> None:
    done: list[str] = []

    async def main() -> None:
        release = asyncio.Event()

        async def slow() -> None:
            await release.wait()
            done.append("slow")

        async def second() -> None:
            done.append("second")

        async def owner() -> None:
            try:
                await asyncio.sleep(10)
            finally:
                await close_all(slow, second, each_within=5.0)

        task = asyncio.ensure_future(owner())
        await asyncio.sleep(0)
        task.cancel()  # the stop: the owner goes to its finally and starts closing
        await asyncio.sleep(0.01)
        task.cancel()  # a second one lands while the first close waits
        await asyncio.sleep(0.01)
        assert not task.done()
        assert done == []
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert done == ["slow", "second"]

    asyncio.run(main())


def test_a_close_that_fails_or_hangs_does_not_keep_the_next_one_from_running() -> None:
    done: list[str] = []

    async def refused() -> None:
        raise ConnectionResetError("gone")

    async def hangs() -> None:
        await asyncio.Event().wait()

    async def last() -> None:
        done.append("last")

    asyncio.run(close_all(refused, hangs, last, each_within=0.05))
    assert done == ["last"]
