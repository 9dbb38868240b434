"""The asyncio twins: results, a free event loop, cancellation."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import pytest

import snapshotter
from snapshotter import Phase, Report, Snapshotter

from conftest import NO_GC, same_tree


def test_every_async_twin_works(store, checkpoint, tmp_path):
    base, files = checkpoint

    async def main():
        r = await store.snapshot_async("sb", "v1", base, files)
        assert isinstance(r, Report) and r.files_stored == len(files)
        rr = await store.restore_async("sb", "v1", tmp_path / "out")
        assert rr.files_linked == 2
        await store.restore_async("sb", "v1", tmp_path / "out", overwrite=True)
        assert [s.version for s in await store.list_async()] == ["v1"]
        assert len(await store.files_async("sb", "v1")) == len(files)
        assert (await store.stats_async()).snapshots == 1
        v = await store.verify_async()
        assert v.ok and v.content_files_checked == len(files)
        g = await store.gc_async()
        assert g.snapshots_evicted == 0
        d = await store.delete_async("sb", "v1")
        assert d.content_files_removed == len(files)

    asyncio.run(main())
    same_tree(base, tmp_path / "out", files)


def test_async_errors_map_like_sync_ones(store, checkpoint, tmp_path):
    base, files = checkpoint

    async def main():
        await store.snapshot_async("sb", "v1", base, files)
        with pytest.raises(snapshotter.AlreadyExistsError):
            await store.snapshot_async("sb", "v1", base, files)
        with pytest.raises(snapshotter.NotFoundError) as e:
            await store.restore_async("nope", "v1", tmp_path / "o")
        assert "nope:v1" in e.value.message
        with pytest.raises(snapshotter.NotFoundError):
            await store.delete_async("nope", "v1")
        with pytest.raises(snapshotter.InvalidArgumentError):
            await store.snapshot_async("Bad Name", "v1", base, files)

    asyncio.run(main())


def test_the_event_loop_keeps_running_during_an_operation(store, many_files):
    base, files = many_files

    async def main():
        ticks = 0
        done = False

        async def ticker():
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0.005)

        t = asyncio.ensure_future(ticker())
        t0 = time.monotonic()
        await store.snapshot_async("sb", "v1", base, files[:200])
        elapsed = time.monotonic() - t0
        done = True
        await t
        return ticks, elapsed

    ticks, elapsed = asyncio.run(main())
    # A blocked loop would tick once or twice; a free one about every 5 ms.
    assert ticks >= max(5, elapsed / 0.005 * 0.1), (ticks, elapsed)


def test_async_progress_runs_on_the_loop_thread(store, many_files):
    base, files = many_files
    threads = set()
    events = []

    async def main():
        loop_thread = threading.get_ident()

        def progress(p):
            threads.add(threading.get_ident())
            events.append(p)

        await store.snapshot_async("sb", "v1", base, files[:40], progress=progress)
        return loop_thread

    loop_thread = asyncio.run(main())
    assert threads == {loop_thread}
    assert events[-1].phase is Phase.DONE  # every event delivered before the result


def test_cancelling_the_task_cancels_the_operation(slow_store, many_files):
    base, files = many_files

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(
            slow_store.snapshot_async("sb", "v1", base, files, progress=lambda p: started.set())
        )
        await started.wait()
        assert slow_store.active_operations() == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Nothing left running the moment the task is done.
        assert slow_store.active_operations() == 0

    asyncio.run(main())
    assert slow_store.list() == []  # canceled, not run to the end
    # The store is fine afterwards.
    slow_store.snapshot("sb", "v1", base, files[:3])


def test_a_timeout_cancels_the_operation(slow_store, many_files):
    base, files = many_files
    # 256 MiB of data on top, stored one file at a time, so the deadline
    # falls mid-operation however fast the machine.
    (base / "big.bin").write_bytes(os.urandom(1 << 20) * 256)
    big = snapshotter.File("big.bin")

    def slow(p):
        time.sleep(0.001)

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(slow_store.snapshot_async("sb", "v1", base, files + [big], progress=slow), 0.2)
        assert slow_store.active_operations() == 0

    asyncio.run(main())
    assert slow_store.list() == []


def test_cancelling_twice_still_waits_for_the_library(slow_store, many_files):
    base, files = many_files

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(
            slow_store.snapshot_async("sb", "v1", base, files, progress=lambda p: started.set())
        )
        await started.wait()
        task.cancel()
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert slow_store.active_operations() == 0

    asyncio.run(main())


def test_exception_in_async_progress_cancels_and_is_reraised(slow_store, many_files):
    base, files = many_files

    def progress(p):
        raise RuntimeError("stop here")

    async def main():
        with pytest.raises(RuntimeError, match="stop here"):
            await slow_store.snapshot_async("sb", "v1", base, files, progress=progress)
        assert slow_store.active_operations() == 0

    asyncio.run(main())
    assert slow_store.list() == []  # canceled, not run to the end


def test_many_async_operations_at_once(store, checkpoint, tmp_path):
    base, files = checkpoint

    async def main():
        await asyncio.gather(*(store.snapshot_async("sb", f"v{i}", base, files) for i in range(12)))
        await asyncio.gather(*(store.restore_async("sb", f"v{i}", tmp_path / f"o{i}") for i in range(12)))

    asyncio.run(main())
    assert len(store.list()) == 12
    for i in range(12):
        same_tree(base, tmp_path / f"o{i}", files)


def test_close_while_awaiting_ends_the_task_with_canceled(tmp_path, many_files):
    base, files = many_files

    async def main():
        s = Snapshotter(tmp_path / "s", gc=NO_GC, snapshot_concurrency=1)
        started = asyncio.Event()
        task = asyncio.ensure_future(s.snapshot_async("sb", "v1", base, files, progress=lambda p: started.set()))
        await started.wait()
        s.close()
        with pytest.raises(snapshotter.CanceledError):
            await task

    asyncio.run(main())


def test_asyncio_run_shutdown_cancels_pending_operations(tmp_path, many_files):
    base, files = many_files
    s = Snapshotter(tmp_path / "s", gc=NO_GC, snapshot_concurrency=1)
    task_box = {}

    async def main():
        started = asyncio.Event()
        task_box["t"] = asyncio.ensure_future(
            s.snapshot_async("sb", "v1", base, files, progress=lambda p: started.set())
        )
        await started.wait()  # running (400 files, one at a time: far from done)
        # return without awaiting: asyncio.run cancels the task and waits

    asyncio.run(main())
    assert task_box["t"].cancelled()
    assert s.active_operations() == 0
    s.close()
