"""Every method of Snapshotter, on a local store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import snapshotter
from snapshotter import (
    FileInfo,
    GCOptions,
    Phase,
    Report,
    SnapshotInfo,
    Snapshotter,
    Stats,
    VerifyReport,
)

from conftest import NO_GC, same_tree


def test_snapshot_then_restore_gives_back_every_file(store, checkpoint, tmp_path):
    base, files = checkpoint
    r = store.snapshot("sandboxes/sb-42", "ckpt-1", base, files)
    assert isinstance(r, Report)
    assert r.files_stored == len(files)
    assert r.bytes_read > 0

    out = tmp_path / "restored"
    rr = store.restore("sandboxes/sb-42", "ckpt-1", out)
    same_tree(base, out, files)
    assert rr.files_linked == 2 and rr.files_decoded == 3


def test_restored_read_only_files_share_the_store_inode(store, checkpoint, tmp_path):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    store.restore("sb", "v1", tmp_path / "out")
    mem = os.stat(tmp_path / "out/checkpoint/memory.dump")
    assert mem.st_ino == os.stat(base / "checkpoint/memory.dump").st_ino
    assert mem.st_nlink >= 3  # source, store, restored copy
    assert os.stat(tmp_path / "out/config.json").st_ino != os.stat(base / "config.json").st_ino


def test_files_may_be_given_as_paths(store, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src/a.txt").write_text("a")
    (tmp_path / "src/b.txt").write_text("b")
    store.snapshot("paths", "v1", tmp_path / "src", ["a.txt", Path("b.txt")])
    infos = store.files("paths", "v1")
    assert [(f.relative_path, f.read_only) for f in infos] == [("a.txt", False), ("b.txt", False)]


def test_restore_refuses_existing_files_unless_overwrite(store, checkpoint, tmp_path):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    out = tmp_path / "out"
    store.restore("sb", "v1", out)
    (out / "config.json").write_text("changed")
    with pytest.raises(snapshotter.AlreadyExistsError):
        store.restore("sb", "v1", out)
    assert (out / "config.json").read_text() == "changed"
    store.restore("sb", "v1", out, overwrite=True)
    assert (out / "config.json").read_text() == '{"id": "sb-42"}\n'


def test_list_returns_snapshots_sorted_with_their_sizes(store, checkpoint):
    base, files = checkpoint
    assert store.list() == []
    store.snapshot("zeta", "v1", base, files)
    store.snapshot("alpha", "v2", base, files)
    store.snapshot("alpha", "v1", base, files)
    listed = store.list()
    assert [(s.name, s.version) for s in listed] == [("alpha", "v1"), ("alpha", "v2"), ("zeta", "v1")]
    s = listed[0]
    assert isinstance(s, SnapshotInfo)
    assert s.file_count == len(files)
    assert s.total_size == sum((base / f.relative_path).stat().st_size for f in files)
    assert s.created is not None and s.created.year >= 2024
    assert s.last_accessed_ns >= s.created_ns and s.last_accessed is not None


def test_files_describe_each_file(store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    infos = store.files("sb", "v1")
    assert [f.relative_path for f in infos] == sorted(f.relative_path for f in files)
    by_path = {f.relative_path: f for f in infos}
    mem = by_path["checkpoint/memory.dump"]
    assert isinstance(mem, FileInfo)
    assert mem.read_only and mem.size == 1 << 20
    assert mem.digest.startswith("xxh3:")
    st = (base / "config.json").stat()
    cfg = by_path["config.json"]
    assert not cfg.read_only
    assert cfg.mode == st.st_mode & 0o7777 and cfg.uid == st.st_uid and cfg.mtime_ns == st.st_mtime_ns


def test_config_is_the_snapshot_config_json(store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    config = store.config("sb", "v1")
    assert sorted(f["relativePath"] for f in config["files"]) == sorted(f.relative_path for f in files)
    digests = {f.relative_path: f.digest for f in store.files("sb", "v1")}
    assert all(f["digest"] == digests[f["relativePath"]] for f in config["files"])


def test_delete_frees_content_nothing_else_uses(store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    before = store.stats()
    r = store.delete("sb", "v1")
    assert r.content_files_removed == len(files) and r.bytes_freed > 0
    assert store.list() == []
    after = store.stats()
    assert after.content_files == 0 < before.content_files
    with pytest.raises(snapshotter.NotFoundError):
        store.delete("sb", "v1")


def test_stats_count_snapshots_and_content(store, checkpoint):
    base, files = checkpoint
    s0 = store.stats()
    assert isinstance(s0, Stats)
    assert s0.snapshots == 0 and s0.oldest_access_ns == 0
    assert s0.disk_total_bytes > 0 and 0 < s0.disk_used_percent <= 100
    store.snapshot("sb", "v1", base, files)
    store.snapshot("sb", "v2", base, files)  # same content: stored once
    s = store.stats()
    assert s.snapshots == 2 and s.content_files == len(files)
    assert s.store_bytes > 0 and s.oldest_access_ns > 0


def test_verify_finds_nothing_wrong_in_a_healthy_store(store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    events = []
    v = store.verify(progress=events.append)
    assert isinstance(v, VerifyReport)
    assert v.ok and v.problems == ()
    assert v.snapshots_checked == 1 and v.content_files_checked == len(files) and v.bytes_checked > 0
    assert events and events[-1].phase == Phase.DONE


def test_verify_reports_corrupt_content_and_restore_refuses_it(store, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "data").write_bytes(os.urandom(200_000))
    store.snapshot("c", "v1", src, ["data"])
    digest = store.files("c", "v1")[0].digest
    corrupt_content(tmp_path / "store", digest)

    v = store.verify()
    assert not v.ok
    assert any(p.kind == "corrupt-content" and p.digest == digest for p in v.problems)
    assert all(p.message for p in v.problems)
    with pytest.raises(snapshotter.CorruptContentError) as e:
        store.restore("c", "v1", tmp_path / "out")
    assert "corrupt" in e.value.message


def test_gc_runs_and_reports(tmp_path, checkpoint):
    base, files = checkpoint
    # A budget of 1 byte: everything past the retention (0 s) is evicted.
    gc = GCOptions(interval_seconds=0, max_store_bytes=1, min_retention_seconds=0)
    with Snapshotter(tmp_path / "s", gc=gc) as s:
        s.snapshot("sb", "v1", base, files)
        events = []
        r = s.gc(progress=events.append)
        assert r.snapshots_evicted == 1 and r.content_files_removed == len(files)
        assert r.elapsed > 0
        assert s.list() == []


def test_gc_on_a_store_within_its_limits_evicts_nothing(store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    r = store.gc()
    assert r.snapshots_evicted == 0 and len(store.list()) == 1


def test_concurrency_settings_are_accepted_and_checked(tmp_path, checkpoint):
    base, files = checkpoint
    with Snapshotter(tmp_path / "s", snapshot_concurrency=1, restore_concurrency=8, gc=NO_GC) as s:
        s.snapshot("sb", "v1", base, files)
        s.restore("sb", "v1", tmp_path / "out")
    with pytest.raises(snapshotter.InvalidArgumentError) as e:
        Snapshotter(tmp_path / "s2", snapshot_concurrency=0)
    assert "concurrency" in e.value.message


def test_gc_settings_out_of_range_are_refused(tmp_path):
    with pytest.raises(snapshotter.InvalidArgumentError):
        Snapshotter(tmp_path / "s", gc=GCOptions(high_watermark_percent=101))


def test_context_manager_closes_and_close_twice_is_fine(tmp_path):
    with Snapshotter(tmp_path / "s", gc=NO_GC) as s:
        assert not s.closed
        assert "open" in repr(s)
    assert s.closed and "closed" in repr(s)
    s.close()
    with pytest.raises(snapshotter.ClosedError) as e:
        s.list()
    assert e.value.code == -30610


def test_closed_store_refuses_every_method(tmp_path):
    s = Snapshotter(tmp_path / "s", gc=NO_GC)
    s.close()
    for call in (
        lambda: s.snapshot("a", "v1", tmp_path, ["x"]),
        lambda: s.restore("a", "v1", tmp_path / "o"),
        lambda: s.delete("a", "v1"),
        lambda: s.verify(),
        lambda: s.gc(),
        lambda: s.repair(),
        lambda: s.files("a", "v1"),
        lambda: s.stats(),
        lambda: s.active_operations(),
        lambda: s.reconfigure(),
    ):
        with pytest.raises(snapshotter.ClosedError):
            call()


def test_two_handles_on_one_root_see_each_other(tmp_path, checkpoint):
    base, files = checkpoint
    with Snapshotter(tmp_path / "s", gc=NO_GC) as a, Snapshotter(tmp_path / "s", gc=NO_GC) as b:
        a.snapshot("sb", "v1", base, files)
        assert [x.version for x in b.list()] == ["v1"]
        b.restore("sb", "v1", tmp_path / "out")
    same_tree(base, tmp_path / "out", files)


def test_library_version_and_path():
    assert snapshotter.library_version() == "0.2.0"
    assert os.path.exists(snapshotter.library_path())


def test_unclosed_store_warns_and_is_closed_when_collected(tmp_path):
    s = Snapshotter(tmp_path / "s", gc=NO_GC)
    with pytest.warns(ResourceWarning):
        s.__del__()
    assert s.closed


def test_logging_forwards_library_messages(tmp_path, checkpoint, caplog):
    import logging

    base, files = checkpoint
    registry = snapshotter.Registry(f"file://{tmp_path}/oci")
    snapshotter.enable_logging(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG, logger="snapshotter"):
            with Snapshotter(tmp_path / "s", registry=registry, gc=NO_GC) as s:
                s.snapshot("logged", "v1", base, files)
    finally:
        snapshotter.disable_logging()
    messages = [r.getMessage() for r in caplog.records if r.name == "snapshotter"]
    assert any("published logged:v1" in m for m in messages), messages


def corrupt_content(store_root: Path, digest: str) -> None:
    content = store_root / "storage/content/xxh3" / digest.split(":", 1)[1]
    raw = bytearray(content.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    content.write_bytes(bytes(raw))


def test_repair_drops_snapshots_with_corrupt_content(store, checkpoint, tmp_path):
    base, files = checkpoint
    store.snapshot("good", "v1", base, files[:2])
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/data").write_bytes(os.urandom(100_000))
    store.snapshot("bad", "v1", tmp_path / "bad", ["data"])
    corrupt_content(tmp_path / "store", store.files("bad", "v1")[0].digest)

    events = []
    r = store.repair(progress=events.append)
    assert not r.ok and r.repairs, r
    assert any("bad:v1" in line for line in r.repairs)
    assert [s.name for s in store.list()] == ["good"]
    assert store.verify().ok
    assert store.verify().repairs == ()


def test_repair_of_a_healthy_store_changes_nothing(store, checkpoint):
    import asyncio

    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    r = asyncio.run(store.repair_async())
    assert r.ok and r.repairs == () and r.snapshots_checked == 1
    assert len(store.list()) == 1


def test_delete_of_a_snapshot_being_restored_is_busy(store, checkpoint, tmp_path):
    import threading

    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    in_restore = threading.Event()
    release = threading.Event()

    def progress(p):
        # The lease is held while files are exported (not yet while the
        # restore is preparing).
        if p.phase == snapshotter.Phase.EXPORTING:
            in_restore.set()
            release.wait(30)

    t = threading.Thread(target=lambda: store.restore("sb", "v1", tmp_path / "out", progress=progress))
    t.start()
    try:
        assert in_restore.wait(30)
        with pytest.raises(snapshotter.BusyError) as e:
            store.delete("sb", "v1")
        assert "sb:v1" in e.value.message
    finally:
        release.set()
        t.join(30)
    store.delete("sb", "v1")


def test_store_is_private_unless_a_group_is_given(tmp_path):
    with Snapshotter(tmp_path / "private", gc=NO_GC):
        pass
    assert (tmp_path / "private" / "storage").stat().st_mode & 0o777 == 0o700
    gid = os.getgid()
    with Snapshotter(tmp_path / "shared", gc=NO_GC, store_group=gid):
        pass
    st = (tmp_path / "shared" / "storage").stat()
    assert (st.st_mode & 0o777, st.st_gid) == (0o750, gid)
    with pytest.raises(snapshotter.InvalidArgumentError):
        Snapshotter(tmp_path / "bad", gc=NO_GC, store_group=-2)
def test_record_format_3_snapshots_restore_and_are_read_by_the_default(tmp_path, checkpoint):
    base, files = checkpoint
    with Snapshotter(tmp_path / "s", record_format=3, gc=NO_GC) as s:
        s.snapshot("sb", "v1", base, files)
    with Snapshotter(tmp_path / "s", gc=NO_GC) as s:
        s.restore("sb", "v1", tmp_path / "out")
        assert s.verify().ok
    same_tree(base, tmp_path / "out", files)
    with pytest.raises(snapshotter.InvalidArgumentError, match="record format"):
        Snapshotter(tmp_path / "bad", gc=NO_GC, record_format=4)


def test_durable_restore_is_accepted_and_restores(tmp_path, checkpoint):
    base, files = checkpoint
    with Snapshotter(tmp_path / "s", durable_restore=True, gc=NO_GC) as s:
        s.snapshot("sb", "v1", base, files)
        rr = s.restore("sb", "v1", tmp_path / "out")
    same_tree(base, tmp_path / "out", files)
    assert rr.files_linked == 2 and rr.files_decoded == 3
