"""The Run controller's work queue: coalesced wake-ups, one pass per key at a time, requeue-after."""

from __future__ import annotations

import asyncio

from oxygen.controllers.run.queue import WorkQueue


def test_a_key_added_many_times_is_queued_once_first_in_first_out() -> None:
    async def scenario() -> list[str]:
        queue = WorkQueue()
        for key in ("a", "b", "a", "c", "b", "a"):
            queue.add(key)
        assert len(queue) == 3
        return [await queue.get() for _ in range(3)]

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_a_key_added_while_processed_comes_back_once_its_pass_ends() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add("a")
        key = await queue.get()
        queue.add("a")
        queue.add("a")
        queue.add("b")
        # No second worker may take "a" while its pass runs: "b" comes first.
        assert await queue.get() == "b"
        queue.done("b")
        queue.done(key)
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        queue.done("a")
        assert len(queue) == 0

    asyncio.run(scenario())


def test_passes_of_one_key_are_spaced_and_other_keys_do_not_wait() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        queue = WorkQueue(spacing=0.2)
        queue.add("a")
        started = loop.time()
        queue.done(await queue.get())
        queue.add("a")  # an echo of the pass's own writes: held until the spacing passed
        queue.add("b")
        assert await queue.get() == "b"
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        assert loop.time() - started >= 0.19

    asyncio.run(scenario())


def test_requeue_after_keeps_the_earliest_timer_and_forget_drops_it() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        queue = WorkQueue()
        start = loop.time()
        queue.add_after("a", 5.0)
        queue.add_after("a", 0.05)
        queue.add_after("a", 1.0)
        assert await asyncio.wait_for(queue.get(), 1) == "a"
        assert loop.time() - start < 4.0  # the 0.05 s timer, not the 1 or 5 s ones
        queue.done("a")
        queue.add_after("b", 0.05)
        queue.forget("b")
        await asyncio.sleep(0.1)
        assert len(queue) == 0

    asyncio.run(scenario())


def test_a_key_never_added_again_costs_nothing() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add("finished")
        queue.done(await queue.get())
        await asyncio.sleep(0.05)
        assert len(queue) == 0
        assert not queue.processing("finished")
        getter = asyncio.ensure_future(queue.get())
        await asyncio.sleep(0.05)
        assert not getter.done()
        getter.cancel()

    asyncio.run(scenario())


def test_the_run_controller_learns_of_peering_pauses_from_kopf() -> None:
    """kopf.run starts `daemons.daemon_killer` with the pause toggle; the controller's wrapper is it."""
    import inspect

    from kopf._core.engines import daemons
    from kopf._core.reactor import running

    from oxygen.controllers.run import handlers

    assert daemons.daemon_killer is handlers._capture_pause
    assert "daemons.daemon_killer(" in inspect.getsource(running)


def test_a_key_forgotten_and_added_again_goes_to_one_worker_at_a_time() -> None:
    async def scenario() -> None:
        queue = WorkQueue()
        queue.add("k")
        queue.forget("k")  # a peering pause: its entry still waits in line
        queue.add("k")
        queue.add("other")
        assert await queue.get() == "k"
        # The stale entry of "k" is skipped while "k" is held.
        assert await asyncio.wait_for(queue.get(), 1) == "other"
        assert queue.processing("k")
        queue.done("other")
        queue.done("k")
        assert len(queue) == 0
        queue.forget("gone")
        queue.add("gone")
        queue.forget("gone")
        queue.add("last")
        assert await asyncio.wait_for(queue.get(), 1) == "last"

    asyncio.run(scenario())
