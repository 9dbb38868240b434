"""Progress callbacks: where they run, what they carry, what an exception does."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

import snapshotter
from snapshotter import Phase, Progress, Snapshotter

from conftest import NO_GC


def test_progress_arrives_on_library_threads_while_python_threads_run(tmp_path, many_files):
    base, files = many_files
    caller = threading.get_ident()
    seen_threads = set()
    events = []
    ticks = []
    stop = threading.Event()

    def ticker():
        # A plain Python thread that needs the GIL all along: it must keep
        # running while the library works and calls back.
        while not stop.is_set():
            ticks.append(time.monotonic())
            time.sleep(0.001)

    def progress(p: Progress) -> None:
        seen_threads.add(threading.get_ident())
        events.append(p)

    t = threading.Thread(target=ticker)
    t.start()
    try:
        with Snapshotter(tmp_path / "s", gc=NO_GC, snapshot_concurrency=2) as s:
            t0 = time.monotonic()
            s.snapshot("sb", "v1", base, files[:200], progress=progress)
            t1 = time.monotonic()
    finally:
        stop.set()
        t.join()
    assert caller not in seen_threads and seen_threads
    assert sum(t0 <= x <= t1 for x in ticks) > 10
    assert len(events) > 2


def test_progress_events_are_well_formed(store, many_files):
    base, files = many_files
    events = []
    store.snapshot("sb", "v1", base, files[:50], progress=events.append)
    assert all(isinstance(e, Progress) for e in events)
    assert events[-1].phase is Phase.DONE
    assert events[-1].files_done == events[-1].files_total == 50
    assert events[-1].bytes_done == events[-1].bytes_total == 50 * 4096
    assert events[-1].fraction == 1.0
    for a, b in zip(events, events[1:]):
        assert b.files_done >= a.files_done and b.bytes_done >= a.bytes_done


def test_exception_in_progress_cancels_and_is_reraised(slow_store, many_files):
    base, files = many_files
    calls = []

    class Stop(Exception):
        pass

    def progress(p):
        calls.append(p)
        raise Stop("enough")

    with pytest.raises(Stop, match="enough"):
        slow_store.snapshot("sb", "v1", base, files, progress=progress)
    assert len(calls) == 1  # not called again once it raised
    assert slow_store.list() == []  # canceled, not run to the end
    assert slow_store.active_operations() == 0


def test_keyboard_interrupt_in_progress_is_reraised(store, checkpoint, tmp_path):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)

    def progress(p):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.restore("sb", "v1", tmp_path / "out", progress=progress)
    assert store.active_operations() == 0


def test_ctrl_c_while_waiting_cancels_the_operation(slow_store, many_files):
    base, files = many_files
    events = []
    handled = threading.Event()

    def on_sigint(signum, frame):
        # Python's default SIGINT handler, plus a note that it ran.
        handled.set()
        signal.default_int_handler(signum, frame)

    def progress(p):
        events.append(p)
        if len(events) == 1:
            # As a terminal's Ctrl-C would: SIGINT to the process, handled by
            # the main thread, which is waiting for the operation. The
            # operation waits here until the handler has run, so it cannot
            # finish before the interrupt reaches the waiting call.
            os.kill(os.getpid(), signal.SIGINT)
            handled.wait()

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        with pytest.raises(KeyboardInterrupt):
            slow_store.snapshot("sb", "v1", base, files, progress=progress)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert handled.is_set()
    assert slow_store.active_operations() == 0
    assert slow_store.list() == [], f"not canceled after {len(events)} progress events"
    assert events[-1].files_done < len(files)

def test_store_calls_from_a_callback_are_busy_not_deadlocked(store, checkpoint, tmp_path):
    # The header allows a callback only op_cancel/op_status/last_error/
    # strerror and starting async operations: everything else on the store
    # says BusyError (the binding's own waits included) instead of hanging.
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    errors = []

    def progress(p):
        for call in (store.close, store.gc, lambda: store.delete("sb", "v1"), store.list):
            try:
                call()
            except snapshotter.BusyError as e:
                errors.append(e)
        raise StopIteration  # and stop

    with pytest.raises(StopIteration):
        store.restore("sb", "v1", tmp_path / "out", progress=progress)
    assert [type(e) for e in errors] == [snapshotter.BusyError] * 4
    assert all(e.code == -30609 and e.message for e in errors)
    assert not store.closed


def test_callback_objects_survive_garbage_collection(store, many_files):
    import gc

    base, files = many_files
    count = [0]

    def progress(p):
        count[0] += 1
        gc.collect()

    store.snapshot("sb", "v1", base, files[:30], progress=lambda p: progress(p))
    assert count[0] > 0


def test_progress_from_an_older_or_newer_library_reads_safely():
    from snapshotter import _ffi

    # An older library fills fewer bytes: the fields past `size` read as 0.
    raw = _ffi.ProgressStruct(size=16, phase=1, files_done=3, files_total=9, bytes_done=7, bytes_total=8, files_copied=5)
    p = Progress._from_c(_ffi.read_sized(raw))
    assert (p.phase, p.files_done, p.files_total, p.bytes_done, p.files_copied) == (Phase.STORING, 3, 0, 0, 0)
    # A newer one may report a phase this binding does not know: kept as int.
    raw = _ffi.new_sized(_ffi.ProgressStruct)
    raw.phase = 42
    p = Progress._from_c(_ffi.read_sized(raw))
    assert p.phase == 42 and not isinstance(p.phase, Phase)
    assert p.fraction == 0.0
