"""Library failures become the right exception, with code and message."""

from __future__ import annotations

import pickle

import pytest

import snapshotter
from snapshotter import (
    ContentProvider,
    Dragonfly,
    File,
    Registry,
    Snapshotter,
)
from snapshotter.errors import error_class, make_error

from conftest import NO_GC

# Every status code of the header, with the class it must become.
CODES = {
    -30601: snapshotter.InvalidArgumentError,
    -30602: snapshotter.NotFoundError,
    -30603: snapshotter.AlreadyExistsError,
    -30604: snapshotter.FileSystemError,
    -30605: snapshotter.CorruptContentError,
    -30606: snapshotter.RegistryError,
    -30607: snapshotter.TransportError,
    -30608: snapshotter.CanceledError,
    -30609: snapshotter.BusyError,
    -30610: snapshotter.ClosedError,
    -30611: snapshotter.NoSpaceError,
    -30612: snapshotter.PermissionDeniedError,
    -30613: snapshotter.UnsupportedError,
    -30614: snapshotter.InternalError,
    -30615: snapshotter.TimedOutError,
    -30616: snapshotter.InProgressError,
    -30617: snapshotter.OutOfMemoryError,
    -30618: snapshotter.ForkedError,
}


@pytest.mark.parametrize("code,cls", sorted(CODES.items()))
def test_each_status_code_has_its_own_class(code, cls):
    assert error_class(code) is cls
    e = make_error(code, "what failed")
    assert type(e) is cls and isinstance(e, snapshotter.SnapshotterError)
    assert e.code == code and e.message == "what failed" and str(e) == "what failed"
    # The library's name of the code, e.g. "SNAPSHOTTER_ENOTFOUND: ...".
    assert e.status_name.startswith("SNAPSHOTTER_E")
    again = pickle.loads(pickle.dumps(e))
    assert type(again) is cls and again.code == code and again.message == "what failed"


def test_classes_are_distinct_and_unknown_codes_stay_generic():
    assert len(set(CODES.values())) == len(CODES)
    e = make_error(-30699, "new")
    assert type(e) is snapshotter.SnapshotterError and e.code == -30699
    assert "unknown" in e.status_name


def test_builtin_bases_let_ordinary_handlers_catch():
    assert issubclass(snapshotter.InvalidArgumentError, ValueError)
    assert issubclass(snapshotter.NotFoundError, LookupError)


def test_existing_snapshot_is_already_exists(store, checkpoint):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    with pytest.raises(snapshotter.AlreadyExistsError) as e:
        store.snapshot("sb", "v1", base, files)
    assert e.value.code == -30603 and "sb:v1" in e.value.message


def test_missing_snapshot_is_not_found(store, tmp_path):
    for call in (
        lambda: store.restore("missing", "v1", tmp_path / "o"),
        lambda: store.delete("missing", "v1"),
        lambda: store.files("missing", "v1"),
        lambda: store.config("missing", "v1"),
    ):
        with pytest.raises(snapshotter.NotFoundError) as e:
            call()
        assert "missing" in e.value.message


def test_missing_source_file_is_not_found(store, tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(snapshotter.NotFoundError) as e:
        store.snapshot("sb", "v1", tmp_path / "src", ["nope.bin"])
    assert "nope.bin" in e.value.message


@pytest.mark.parametrize(
    "name,version,path",
    [
        ("Bad Name", "v1", "a"),
        ("", "v1", "a"),
        ("ok", "-bad", "a"),
        ("ok", "v1", "../escape"),
        ("ok", "v1", "/etc/passwd"),
    ],
)
def test_bad_names_and_escaping_paths_are_invalid(store, tmp_path, name, version, path):
    (tmp_path / "a").write_text("a")
    with pytest.raises(snapshotter.InvalidArgumentError) as e:
        store.snapshot(name, version, tmp_path, [path])
    assert e.value.code == -30601 and e.value.message


def test_a_nul_character_is_refused_not_cut_short(store, tmp_path):
    (tmp_path / "a").write_text("a")
    with pytest.raises(snapshotter.InvalidArgumentError, match="NUL"):
        store.snapshot("ok\0evil", "v1", tmp_path, ["a"])
    with pytest.raises(snapshotter.InvalidArgumentError, match="NUL"):
        store.snapshot("ok", "v1", tmp_path, ["a\0b"])
    with pytest.raises(snapshotter.InvalidArgumentError, match="NUL"):
        store.restore("ok", "v1", str(tmp_path) + "\0x")
    assert store.list() == []


def test_a_refused_secret_setting_is_not_quoted(tmp_path):
    bad = [
        snapshotter.Registry(endpoint="http://127.0.0.1:9", username="bob", password="s3cr3t\0pw"),
        snapshotter.Registry(endpoint="http://bob:s3cr3t@127.0.0.1:9\0"),
        snapshotter.Registry(endpoint="http://127.0.0.1:9", username="bob", password="s3cr3t\udc80"),
    ]
    for registry in bad:
        with pytest.raises(snapshotter.InvalidArgumentError) as e:
            snapshotter.Snapshotter(tmp_path / "store", gc=NO_GC, registry=registry)
        assert "s3cr3t" not in str(e.value)


def test_wrong_argument_types_are_type_errors(store, tmp_path):
    with pytest.raises(TypeError):
        store.snapshot(b"bytes", "v1", tmp_path, ["a"])  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.snapshot("ok", "v1", tmp_path, "a")  # a str is not a list of files
    with pytest.raises(TypeError):
        Snapshotter(tmp_path / "s", registry="http://x")  # type: ignore[arg-type]


def test_empty_file_list_is_invalid(store, tmp_path):
    with pytest.raises(snapshotter.InvalidArgumentError):
        store.snapshot("ok", "v1", tmp_path, [])


def test_restore_into_a_file_is_a_file_system_error(store, checkpoint, tmp_path):
    base, files = checkpoint
    store.snapshot("sb", "v1", base, files)
    (tmp_path / "plainfile").write_text("x")
    with pytest.raises(snapshotter.SnapshotterError) as e:
        store.restore("sb", "v1", tmp_path / "plainfile")
    assert type(e.value) in (snapshotter.FileSystemError, snapshotter.InvalidArgumentError)
    assert "plainfile" in e.value.message


def test_bad_content_settings_and_dragonfly_are_refused_loudly(tmp_path, checkpoint):
    # S3 needs credentials; Dragonfly needs object storage behind it and a
    # unix:// endpoint.
    with pytest.raises(snapshotter.InvalidArgumentError) as e:
        Snapshotter(tmp_path / "s", content=ContentProvider("s3", "bucket", region="us-east-1"))
    assert "access key" in str(e.value)
    # A Dragonfly endpoint alone opens (the object storage may come later);
    # a call that moves content fails then. Without Dragonfly built in, the
    # endpoint itself is refused.
    try:
        s = Snapshotter(tmp_path / "df", dragonfly=Dragonfly("unix:///run/dfdaemon.sock"))
    except snapshotter.UnsupportedError as e:
        assert "built without the Dragonfly transport" in str(e)
    else:
        with s:
            base, files = checkpoint
            with pytest.raises(snapshotter.InvalidArgumentError, match="object storage"):
                s.snapshot("df", "v1", base, files)
    with pytest.raises(snapshotter.InvalidArgumentError, match="unix://"):
        Snapshotter(tmp_path / "s", content=ContentProvider("s3", "bucket", region="us-east-1"),
                    dragonfly=Dragonfly("tcp://127.0.0.1:4000"))
    with Snapshotter(tmp_path / "s", gc=NO_GC) as s:
        try:
            s.reconfigure(dragonfly=Dragonfly("unix:///x"))
        except snapshotter.UnsupportedError as e:
            assert "built without the Dragonfly transport" in str(e)
        else:
            base, files = checkpoint
            with pytest.raises(snapshotter.InvalidArgumentError, match="object storage"):
                s.snapshot("df", "v2", base, files)


def test_content_through_a_directory_restores_on_an_empty_store(tmp_path, checkpoint):
    base, files = checkpoint
    registry = Registry("file://" + str(tmp_path / "registry"))
    content = ContentProvider("file", str(tmp_path / "content"))
    with Snapshotter(tmp_path / "a", registry=registry, content=content, gc=NO_GC) as a:
        a.snapshot("sb", "v1", base, files)
    with Snapshotter(tmp_path / "b", registry=registry, content=content, gc=NO_GC) as b:
        b.restore("sb", "v1", tmp_path / "out")
        assert [i.version for i in b.list()] == ["v1"]
    for f in files:
        assert (tmp_path / "out" / f.relative_path).read_bytes() == (base / f.relative_path).read_bytes()


def test_secrets_stay_out_of_repr():
    r = Registry("https://r", username="alice", password="hunter2")
    c = ContentProvider("s3", "b", access_key_id="AKIA", access_key_secret="s3cr3t", session_token="tok")
    assert "hunter2" not in repr(r) and "alice" in repr(r)
    assert "s3cr3t" not in repr(c) and "tok" not in repr(c)


def test_unreachable_registry_is_a_registry_error(tmp_path, checkpoint):
    base, files = checkpoint
    with Snapshotter(tmp_path / "s", registry=Registry("http://127.0.0.1:1"), gc=NO_GC) as s:
        with pytest.raises(snapshotter.RegistryError) as e:
            s.snapshot("sb", "v1", base, files)
        assert "127.0.0.1:1" in e.value.message
        assert s.list() == []  # nothing recorded when the publish failed


def test_bad_registry_settings_are_invalid(tmp_path):
    with pytest.raises(snapshotter.InvalidArgumentError):
        Snapshotter(tmp_path / "s", registry=Registry(""))


def test_close_cancels_running_operations(tmp_path, many_files):
    import threading

    base, files = many_files
    s = Snapshotter(tmp_path / "s", gc=NO_GC, snapshot_concurrency=1)
    started = threading.Event()
    result = {}

    def run():
        try:
            s.snapshot("sb", "v1", base, files, progress=lambda p: started.set())
        except BaseException as e:  # noqa: B036
            result["error"] = e

    t = threading.Thread(target=run)
    t.start()
    assert started.wait(30)
    s.close()
    t.join(30)
    assert isinstance(result.get("error"), snapshotter.CanceledError)


def test_the_library_message_names_the_snapshot(store, tmp_path):
    with pytest.raises(snapshotter.NotFoundError) as e:
        store.restore("sandboxes/sb-1", "ckpt-9", tmp_path / "o")
    assert "sandboxes/sb-1:ckpt-9" in str(e.value)
    assert repr(e.value).startswith("NotFoundError(-30602,")


def test_file_accepts_pathlike():
    from pathlib import PurePosixPath

    assert File(PurePosixPath("a/b"), read_only=True).relative_path == "a/b"  # type: ignore[arg-type]


def test_max_config_bytes_is_checked(tmp_path):
    with pytest.raises(snapshotter.InvalidArgumentError, match="max config bytes"):
        Snapshotter(tmp_path / "tiny", gc=NO_GC, max_config_bytes=1000)
    with Snapshotter(tmp_path / "s", gc=NO_GC, max_config_bytes=64 << 20) as s:
        assert s.list() == []
