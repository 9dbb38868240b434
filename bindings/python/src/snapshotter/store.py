"""The store: :class:`Snapshotter`."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import json
import os
import threading
import warnings
import weakref
from ctypes import POINTER, byref, c_void_p, string_at
from typing import Any, Callable, ContextManager, Iterable, Iterator, List, Optional, Tuple, TypeVar, Union

from . import _ffi, _operation, _text
from ._text import StrPath, decode
from .errors import (
    BusyError,
    ClosedError,
    InvalidArgumentError,
    OutOfMemoryError,
    UnsupportedError,
    check,
    make_error,
)
from .models import (
    File,
    FileInfo,
    Problem,
    Progress,
    Report,
    SnapshotInfo,
    Stats,
    VerifyReport,
)
from .options import ContentProvider, Dragonfly, GCOptions, OptionsHandle, Registry

__all__ = ["Snapshotter"]

T = TypeVar("T")
ProgressCallback = Callable[[Progress], Any]
FileSpec = Union[File, StrPath]

# Every open store, so that interpreter exit can close them: a library
# thread must not call into a Python that is shutting down.
_open_stores: "weakref.WeakSet[Snapshotter]" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for store in list(_open_stores):
        try:
            store.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


class _Handle:
    """The store handle, lent out for the length of one C call.

    ``close`` takes the handle away and waits until no call is still
    passing it to C, so no thread ever hands the library a freed handle
    (the library detects most, but a freed address can be reused by a new
    store). Calls hold it only while starting an operation or running a
    quick query, never while waiting for one, so close still cancels
    running operations instead of waiting for them.
    """

    def __init__(self, handle: int, what: str) -> None:
        self._handle: Optional[int] = handle
        self._users = 0
        self._cond = threading.Condition()
        self._what = what
        self._pid = os.getpid()

    @property
    def closed(self) -> bool:
        return self._handle is None

    @contextlib.contextmanager
    def use(self) -> Iterator[int]:
        with self._cond:
            handle = self._handle
            if handle is None:
                raise ClosedError(_ffi.ECLOSED, f"the store at {self._what} is closed")
            self._users += 1
        try:
            yield handle
        finally:
            with self._cond:
                self._users -= 1
                if self._users == 0:
                    self._cond.notify_all()

    def take(self) -> Optional[int]:
        """The handle, now no longer lent to anyone; None when already taken."""
        with self._cond:
            handle, self._handle = self._handle, None
            # In a forked child the borrowers were the parent's threads,
            # which do not exist here (the library just forgets the handle).
            while self._users and os.getpid() == self._pid:
                self._cond.wait()
            return handle


class Snapshotter:
    """A snapshot store under ``root_dir`` (created when missing).

    Use it as a context manager, or call :meth:`close`::

        with Snapshotter("/var/lib/snapshots") as store:
            store.snapshot("sandboxes/sb-42", "ckpt-1", "/run/sb-42",
                           [File("checkpoint/memory.img", read_only=True),
                            File("rootfs/disk.img")])
            store.restore("sandboxes/sb-42", "ckpt-1", "/run/sb-42-copy")

    One store may be used from many threads at once, and many operations may
    run at once. Every long operation has a blocking form and an ``*_async``
    twin for asyncio. ``progress`` callables receive a :class:`Progress`;
    an exception raised by one cancels the operation and is re-raised to the
    caller. The blocking forms call ``progress`` on a library thread (keep it
    quick; it may not make blocking calls on this store), the asyncio forms
    on the event loop's thread.

    The store is readable by its owner only; ``store_group`` (a gid) lets
    that group read it too (directories 0750, content 0440).

    Settings (``registry``, ``content``, ``dragonfly``, ``gc``, concurrency)
    are applied when the store opens; a setting the library refuses or does
    not support raises instead of being dropped. ``durable_restore=True``
    makes every restore fsync the files it writes and the directories it
    changes before it returns (off by default, as with ``cp``; one fsync per
    written file). Names are OCI repository names (``sandboxes/sb-42``),
    versions OCI tags (``ckpt-1``). ``record_format=3`` writes snapshot
    records with their files in parts, so a snapshot of a million files
    commits in bounded memory; releases before 0.3 cannot read them (the
    default, 1, is read by every release).
    """

    def __init__(
        self,
        root_dir: StrPath,
        *,
        registry: Optional[Registry] = None,
        content: Optional[ContentProvider] = None,
        dragonfly: Optional[Dragonfly] = None,
        gc: Optional[GCOptions] = None,
        snapshot_concurrency: Optional[int] = None,
        restore_concurrency: Optional[int] = None,
        store_group: Optional[int] = None,
        durable_restore: bool = False,
        max_config_bytes: Optional[int] = None,
        record_format: Optional[int] = None,
    ) -> None:
        self._handle: Optional[_Handle] = None
        self._lib = _ffi.load()
        self.root_dir = root_dir
        with OptionsHandle() as opts:
            opts.apply(
                registry=registry,
                content=content,
                dragonfly=dragonfly,
                gc=gc,
                snapshot_concurrency=snapshot_concurrency,
                restore_concurrency=restore_concurrency,
                store_group=store_group,
                durable_restore=durable_restore,
                max_config_bytes=max_config_bytes,
                record_format=record_format,
            )
            out = c_void_p()
            check(self._lib.snapshotter_open(_text.path(root_dir, "root directory"), opts.handle, byref(out)))
        self._handle = _Handle(int(out.value or 0), str(root_dir))
        _open_stores.add(self)

    # ---- lifecycle -------------------------------------------------------------
    def close(self) -> None:
        """Closes the store. Operations still running are canceled (they end
        with :class:`CanceledError`) and waited for. Closing twice is fine."""
        if _operation.in_callback():
            # The library would refuse too; checked first so that no
            # callback ever waits in take() for a call that waits for it.
            raise BusyError(_ffi.EBUSY, "a store cannot be closed from one of its callbacks")
        guard = self._handle
        if guard is None:
            return
        handle = guard.take()
        if handle is None:
            return
        _open_stores.discard(self)
        check(self._lib.snapshotter_close(handle))

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has run."""
        return self._handle is None or self._handle.closed

    def __enter__(self) -> "Snapshotter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        guard = getattr(self, "_handle", None)
        if guard is None or guard.closed:
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
        try:
            if _operation.in_callback():
                # Collected on a library thread, where the library refuses
                # to close: close from a thread of our own.
                handle = guard.take()
                threading.Thread(target=self._lib.snapshotter_close, args=(handle,), daemon=True).start()
            else:
                self.close()
        except Exception:  # noqa: BLE001
            pass

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Snapshotter {str(self.root_dir)!r} {state}>"

    def _use(self) -> ContextManager[int]:
        """The C handle for one call (ClosedError once closed)."""
        if self._handle is None:
            raise ClosedError(_ffi.ECLOSED, "the store is not open")
        return self._handle.use()

    def _starter(self, fn: Callable[..., int], *args: Any) -> _operation.Starter:
        """An operation's start: ``fn(handle, *args, progress, done, payload, out)``."""

        def start(progress: Any, done: Any, payload: int, out: Any) -> int:
            with self._use() as handle:
                return int(fn(handle, *args, progress, done, payload, out))

        return start

    # ---- snapshot --------------------------------------------------------------
    def _snapshot_starter(
        self, name: str, version: str, base_dir: StrPath, files: Iterable[FileSpec]
    ) -> _operation.Starter:
        bname, bversion = _text.text(name, "name"), _text.text(version, "version")
        bbase = _text.path(base_dir, "base directory")
        specs = _files(files)
        lib = self._lib

        def start(progress: Any, done: Any, payload: int, out: Any) -> int:
            # The file list is read during the call only.
            flist = lib.snapshotter_files_new()
            if not flist:
                raise OutOfMemoryError(_ffi.ENOMEM, "snapshotter_files_new returned NULL")
            try:
                for f in specs:
                    check(lib.snapshotter_files_add(flist, _text.text(f.relative_path, "file path"), int(f.read_only)))
                with self._use() as handle:
                    return int(
                        lib.snapshotter_snapshot_async(handle, bname, bversion, bbase, flist, progress, done, payload, out)
                    )
            finally:
                lib.snapshotter_files_free(flist)

        return start

    def snapshot(
        self,
        name: str,
        version: str,
        base_dir: StrPath,
        files: Iterable[FileSpec],
        *,
        progress: Optional[ProgressCallback] = None,
    ) -> Report:
        """Snapshots ``files`` (paths relative to ``base_dir``) as ``name:version``.

        ``files`` holds :class:`File` items, or paths for read-write files.
        Pushes to the registry when one is configured. Raises
        :class:`AlreadyExistsError` when ``name:version`` exists,
        :class:`InvalidArgumentError` for a bad name or a path that leaves
        ``base_dir``, :class:`NotFoundError` for a missing file.
        """
        return _operation.run(self._snapshot_starter(name, version, base_dir, files), progress, _report)

    async def snapshot_async(
        self,
        name: str,
        version: str,
        base_dir: StrPath,
        files: Iterable[FileSpec],
        *,
        progress: Optional[ProgressCallback] = None,
    ) -> Report:
        """:meth:`snapshot` for asyncio; cancelling the task cancels the operation."""
        return await _operation.run_async(self._snapshot_starter(name, version, base_dir, files), progress, _report)

    # ---- restore ---------------------------------------------------------------
    def _restore_starter(self, name: str, version: str, output_dir: StrPath, overwrite: bool) -> _operation.Starter:
        return self._starter(
            self._lib.snapshotter_restore_async,
            _text.text(name, "name"),
            _text.text(version, "version"),
            _text.path(output_dir, "output directory"),
            _ffi.RESTORE_OVERWRITE if overwrite else 0,
        )

    def restore(
        self,
        name: str,
        version: str,
        output_dir: StrPath,
        *,
        overwrite: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> Report:
        """Restores ``name:version`` into ``output_dir`` (created when missing).

        Fetches from the registry when the store does not have it. Existing
        files are replaced only with ``overwrite=True`` (otherwise
        :class:`AlreadyExistsError`).
        """
        return _operation.run(self._restore_starter(name, version, output_dir, overwrite), progress, _report)

    async def restore_async(
        self,
        name: str,
        version: str,
        output_dir: StrPath,
        *,
        overwrite: bool = False,
        progress: Optional[ProgressCallback] = None,
    ) -> Report:
        """:meth:`restore` for asyncio; cancelling the task cancels the operation."""
        return await _operation.run_async(
            self._restore_starter(name, version, output_dir, overwrite), progress, _report
        )

    # ---- delete ----------------------------------------------------------------
    def _delete_starter(self, name: str, version: str) -> _operation.Starter:
        args = (_text.text(name, "name"), _text.text(version, "version"))
        delete_async = self._lib.snapshotter_delete_async

        def start(progress: Any, done: Any, payload: int, out: Any) -> int:
            with self._use() as handle:
                return int(delete_async(handle, *args, done, payload, out))  # delete reports no progress

        return start

    def delete(self, name: str, version: str) -> Report:
        """Deletes ``name:version`` and the content nothing else references
        (:class:`NotFoundError` when it does not exist)."""
        return _operation.run(self._delete_starter(name, version), None, _report)

    async def delete_async(self, name: str, version: str) -> Report:
        """:meth:`delete` for asyncio."""
        return await _operation.run_async(self._delete_starter(name, version), None, _report)

    # ---- verify ----------------------------------------------------------------
    def verify(self, *, progress: Optional[ProgressCallback] = None) -> VerifyReport:
        """Re-hashes all content and checks every record. Problems found are
        in the report, not raised."""
        return _operation.run(self._starter(self._lib.snapshotter_verify_async), progress, _verify_report)

    async def verify_async(self, *, progress: Optional[ProgressCallback] = None) -> VerifyReport:
        """:meth:`verify` for asyncio."""
        return await _operation.run_async(
            self._starter(self._lib.snapshotter_verify_async), progress, _verify_report
        )

    # ---- repair ----------------------------------------------------------------
    def _repair_starter(self) -> _operation.Starter:
        if not self._lib.has_repair:
            raise UnsupportedError(
                _ffi.EUNSUPPORTED,
                f"repair needs a newer libsnapshotter than {self._lib.version_string} at {self._lib.path}",
            )
        return self._starter(self._lib.snapshotter_repair_async)

    def repair(self, *, progress: Optional[ProgressCallback] = None) -> VerifyReport:
        """Verifies, then fixes what it found: snapshots whose content is
        missing or corrupt are dropped (one published to a registry can be
        restored again from there), missing records, references and
        read-only links are rebuilt, dangling references removed. The report
        lists the problems found before repairing and the repairs made."""
        return _operation.run(self._repair_starter(), progress, _verify_report)

    async def repair_async(self, *, progress: Optional[ProgressCallback] = None) -> VerifyReport:
        """:meth:`repair` for asyncio."""
        return await _operation.run_async(self._repair_starter(), progress, _verify_report)

    # ---- gc --------------------------------------------------------------------
    def gc(self, *, progress: Optional[ProgressCallback] = None) -> Report:
        """Runs a garbage collection now with the store's :class:`GCOptions`:
        evicts least recently used snapshots while the disk is above the high
        watermark (or the store above its byte budget) and removes orphans."""
        return _operation.run(self._starter(self._lib.snapshotter_gc_async), progress, _report)

    async def gc_async(self, *, progress: Optional[ProgressCallback] = None) -> Report:
        """:meth:`gc` for asyncio."""
        return await _operation.run_async(self._starter(self._lib.snapshotter_gc_async), progress, _report)

    # ---- quick queries -----------------------------------------------------------
    def list(self) -> List[SnapshotInfo]:
        """Every snapshot in the store, sorted by name then version."""
        lib = self._lib
        out = POINTER(_ffi.SnapshotListStruct)()
        with self._use() as handle:
            check(lib.snapshotter_list(handle, byref(out)))
        try:
            items = out.contents.items
            return [_snapshot_info(items[i].contents) for i in range(out.contents.count)]
        finally:
            lib.snapshotter_snapshot_list_free(out)

    def _file_list(self, name: str, version: str) -> Tuple[List[FileInfo], bytes]:
        lib = self._lib
        out = POINTER(_ffi.FileListStruct)()
        bname, bversion = _text.text(name, "name"), _text.text(version, "version")
        with self._use() as handle:
            check(lib.snapshotter_files(handle, bname, bversion, byref(out)))
        try:
            fl = out.contents
            files = [_file_info(fl.items[i].contents) for i in range(fl.count)]
            config = string_at(fl.config_json, fl.config_json_size) if fl.config_json else b""
            return files, config
        finally:
            lib.snapshotter_file_list_free(out)

    def files(self, name: str, version: str) -> List[FileInfo]:
        """The files of ``name:version``, sorted by path."""
        return self._file_list(name, version)[0]

    def config(self, name: str, version: str) -> Any:
        """The snapshot config of ``name:version`` (the OCI config blob), parsed from JSON."""
        return json.loads(self._file_list(name, version)[1].decode("utf-8"))

    def stats(self) -> Stats:
        """Store usage."""
        out = _ffi.new_sized(_ffi.StatsStruct)
        with self._use() as handle:
            check(self._lib.snapshotter_stats(handle, byref(out)))
        return Stats(**_ffi.read_sized(out))

    def active_operations(self) -> int:
        """How many operations are running on this store now."""
        with self._use() as handle:
            n = int(self._lib.snapshotter_active_operations(handle))
        if n < 0:
            raise make_error(n)
        return n

    def reconfigure(
        self,
        *,
        registry: Optional[Registry] = None,
        content: Optional[ContentProvider] = None,
        dragonfly: Optional[Dragonfly] = None,
    ) -> None:
        """Replaces the registry (and, once the library supports them,
        content and Dragonfly) settings for operations started after this
        call. ``registry=None`` means no registry. Concurrency and GC
        settings are fixed at open."""
        with OptionsHandle() as opts:
            opts.apply(registry=registry, content=content, dragonfly=dragonfly)
            with self._use() as handle:
                check(self._lib.snapshotter_reconfigure(handle, opts.handle))

    async def list_async(self) -> List[SnapshotInfo]:
        """:meth:`list` on a worker thread."""
        return await _to_thread(self.list)

    async def files_async(self, name: str, version: str) -> List[FileInfo]:
        """:meth:`files` on a worker thread."""
        return await _to_thread(self.files, name, version)

    async def stats_async(self) -> Stats:
        """:meth:`stats` on a worker thread."""
        return await _to_thread(self.stats)


async def _to_thread(fn: Callable[..., T], *args: Any) -> T:
    return await asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


def _files(files: Iterable[FileSpec]) -> List[File]:
    if isinstance(files, (str, bytes, File)):
        raise TypeError("files must be an iterable of File (or paths), not a single item")
    out = []
    for f in files:
        out.append(f if isinstance(f, File) else File(f))  # type: ignore[arg-type]
    if not out:
        raise InvalidArgumentError(_ffi.EINVAL, "no files to snapshot")
    return out


def _report(lib: Any, handle: int) -> Report:
    ptr = lib.snapshotter_op_report(handle)
    return Report(**_ffi.read_sized(ptr.contents)) if ptr else Report()


def _verify_report(lib: Any, handle: int) -> VerifyReport:
    ptr = lib.snapshotter_op_verify_report(handle)
    if not ptr:
        return VerifyReport(0, 0, 0)
    r = ptr.contents
    problems = []
    for i in range(r.problem_count):
        p = r.problems[i].contents
        problems.append(
            Problem(
                kind=decode(p.kind),
                message=decode(p.message),
                digest=decode(p.digest) if p.digest else None,
                snapshot=decode(p.snapshot) if p.snapshot else None,
            )
        )
    repairs: Tuple[str, ...] = ()
    if lib.has_repair:
        repairs = tuple(decode(r.repairs[i]) for i in range(r.repair_count))
    return VerifyReport(r.snapshots_checked, r.content_files_checked, r.bytes_checked, tuple(problems), repairs)


def _snapshot_info(s: _ffi.SnapshotInfoStruct) -> SnapshotInfo:
    return SnapshotInfo(
        name=decode(s.name),
        version=decode(s.version),
        created_ns=s.created_ns,
        last_accessed_ns=s.last_accessed_ns,
        file_count=s.file_count,
        total_size=s.total_size,
    )


def _file_info(f: _ffi.FileInfoStruct) -> FileInfo:
    return FileInfo(
        relative_path=decode(f.relative_path),
        digest=decode(f.digest),
        read_only=bool(f.read_only),
        mode=f.mode,
        uid=f.uid,
        gid=f.gid,
        size=f.size,
        mtime_ns=f.mtime_ns,
    )
