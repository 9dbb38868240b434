"""Many Python threads on one store at once."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import snapshotter
from snapshotter import Snapshotter

from conftest import NO_GC, same_tree


def test_many_threads_snapshot_and_restore_at_once(store, checkpoint, tmp_path):
    base, files = checkpoint
    n = 16
    progress_counts = [0] * n
    barrier = threading.Barrier(n)

    def work(i: int) -> None:
        def progress(p):
            progress_counts[i] += 1

        barrier.wait()
        store.snapshot("sb", f"v{i}", base, files, progress=progress)
        store.restore("sb", f"v{i}", tmp_path / f"out{i}", progress=progress)
        assert any(s.version == f"v{i}" for s in store.list())
        assert len(store.files("sb", f"v{i}")) == len(files)
        store.stats()

    with ThreadPoolExecutor(n) as pool:
        list(pool.map(work, range(n)))
    assert len(store.list()) == n
    assert all(c >= 2 for c in progress_counts)
    for i in range(n):
        same_tree(base, tmp_path / f"out{i}", files)
    assert store.verify().ok


def test_only_one_of_many_racing_snapshots_of_a_name_wins(store, checkpoint):
    base, files = checkpoint
    n = 8
    barrier = threading.Barrier(n)

    def work(_: int) -> str:
        barrier.wait()
        try:
            store.snapshot("race", "v1", base, files)
            return "ok"
        except snapshotter.AlreadyExistsError:
            return "exists"

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(work, range(n)))
    assert results.count("ok") == 1 and results.count("exists") == n - 1


def test_errors_keep_their_own_message_on_each_thread(store, tmp_path):
    # The library keeps the last error per thread: each thread must get the
    # message of its own failure.
    n = 12
    barrier = threading.Barrier(n)

    def work(i: int) -> str:
        barrier.wait()
        try:
            store.files("missing", f"v{i}")
        except snapshotter.NotFoundError as e:
            return e.message
        return ""

    with ThreadPoolExecutor(n) as pool:
        messages = list(pool.map(work, range(n)))
    assert all(f"missing:v{i}" in m for i, m in enumerate(messages)), messages


def test_many_stores_in_many_threads(tmp_path, checkpoint):
    base, files = checkpoint

    def work(i: int) -> int:
        with Snapshotter(tmp_path / f"s{i}", gc=NO_GC) as s:
            s.snapshot("sb", "v1", base, files)
            s.restore("sb", "v1", tmp_path / f"o{i}")
            s.delete("sb", "v1")
            return s.stats().content_files

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(work, range(8))) == [0] * 8


def test_close_waits_for_a_call_in_flight_instead_of_freeing_its_handle(tmp_path, monkeypatch):
    # A call that has the handle when close() comes must finish with a live
    # handle; the next call gets ClosedError, never the library's EINVAL for
    # a freed handle (or, with the address reused, another store).
    from snapshotter import _ffi

    lib = _ffi.load()
    real_list = lib.snapshotter_list
    entered = threading.Event()

    def slow_list(handle, out):
        entered.set()
        time.sleep(0.3)  # close() runs meanwhile
        return real_list(handle, out)

    s = Snapshotter(tmp_path / "s", gc=NO_GC)
    monkeypatch.setattr(lib, "snapshotter_list", slow_list)
    result = {}
    t = threading.Thread(target=lambda: result.setdefault("list", s.list()))
    t.start()
    assert entered.wait(10)
    s.close()
    t.join(10)
    assert result == {"list": []}
    with pytest.raises(snapshotter.ClosedError):
        s.list()
