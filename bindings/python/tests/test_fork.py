"""multiprocessing with the fork start method: a store inherited by the
child fails with ForkedError (it never hangs), closing it there is harmless,
and a store the child opens itself works."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

import snapshotter
from snapshotter import Snapshotter

from conftest import NO_GC, same_tree


def _outcome(call):
    try:
        call()
        return "ok"
    except snapshotter.ForkedError as e:
        return ("ForkedError", e.code, e.message)
    except BaseException as e:  # reported to the parent, which fails the test
        return repr(e)


def _child(conn, store, base, files, own_root, own_out):
    results = {
        "snapshot": _outcome(lambda: store.snapshot("sb", "child", base, files)),
        "list": _outcome(store.list),
        "close": _outcome(store.close),
    }

    def own_store():
        with Snapshotter(own_root, gc=NO_GC) as own:
            own.snapshot("sb", "child", base, files)
            own.restore("sb", "child", own_out)
        same_tree(base, own_out, files)

    results["own store"] = _outcome(own_store)
    conn.send(results)
    conn.close()


@pytest.fixture
def fork_context():
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork start method on this platform")
    return multiprocessing.get_context("fork")


def test_forked_child_gets_forked_error_and_can_open_its_own_store(fork_context, store, checkpoint, tmp_path):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)  # the parent's I/O threads run
    recv, send = fork_context.Pipe(duplex=False)
    child = fork_context.Process(
        target=_child, args=(send, store, base, files, tmp_path / "store", tmp_path / "child-out")
    )
    child.start()
    send.close()  # recv() then ends with EOFError if the child dies silently
    results = recv.recv()
    child.join()
    assert child.exitcode == 0
    for call in ("snapshot", "list"):
        kind, code, message = results[call]
        assert (kind, code) == ("ForkedError", -30618), call
        assert "another process" in message
    assert results["close"] == "ok"
    assert results["own store"] == "ok"
    # The parent's store is untouched by the child's close, and sees what
    # the child stored through its own handle on the same root.
    assert sorted(s.version for s in store.list()) == ["child", "v1"]
    store.snapshot("sb", "v2", base, files)
    assert store.verify().ok
