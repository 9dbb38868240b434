"""Running one library operation, blocking or awaited, with its callbacks.

C calls back through two module-level trampolines; the ``payload`` it hands
them is the id of an :class:`_Op` in a table (as cgo's ``cgo.Handle``
does), so no Python object's address ever goes to C and a late or foreign
payload finds nothing instead of a freed object.

Blocking form: the operation starts with the async C call and this thread
waits for it in ``snapshotter_op_wait`` (the GIL is released there). The
main thread waits in short slices, so Ctrl-C cancels the operation and
raises ``KeyboardInterrupt`` once it has stopped. Progress is called on the
library's thread.

Awaited form: the done callback resolves an asyncio future through
``loop.call_soon_threadsafe``; progress is delivered on the event loop's
thread. Cancelling the awaiting task cancels the operation and waits
(without blocking the loop) until it has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
from ctypes import byref, c_void_p
from typing import Any, Callable, Dict, Iterator, Optional, TypeVar

from . import _ffi
from ._text import decode
from .errors import BusyError, make_error
from .models import Progress

T = TypeVar("T")
ProgressFn = Callable[[Progress], Any]
# start(progress_cb, done_cb, payload, op_out) -> status: one async C call
# with every argument but these four already bound.
Starter = Callable[[Any, Any, int, Any], int]
Collector = Callable[[Any, int], T]  # (library, op handle) -> result

# The main thread waits in slices this long, so signals get handled.
_WAIT_SLICE_MS = 100


class _Op:
    """What the trampolines need to know about one running operation."""

    __slots__ = ("id", "handle", "progress", "error", "loop", "done", "finished")

    def __init__(self, progress: Optional[ProgressFn], loop: Optional[asyncio.AbstractEventLoop]) -> None:
        self.id = next(_ids)
        self.handle: Optional[int] = None
        self.progress = progress
        self.error: Optional[BaseException] = None  # raised by `progress`
        self.loop = loop
        self.done: "Optional[asyncio.Future[int]]" = loop.create_future() if loop is not None else None
        self.finished = False

    # -- on a library thread --------------------------------------------------
    def on_progress(self, event: Progress) -> int:
        if self.error is not None or self.progress is None:
            return 1 if self.error is not None else 0
        if self.loop is None:
            try:
                self.progress(event)
            except BaseException as e:  # noqa: B036 - handed back to the caller
                self.error = e
                return 1
            return 0
        try:
            self.loop.call_soon_threadsafe(self._progress_on_loop, event)
        except RuntimeError:  # the loop is closed: nobody is listening
            return 1
        return 0

    def on_done(self, status: int) -> None:
        if self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self._done_on_loop, status)
        except RuntimeError:
            pass  # loop closed; the awaiting side is gone and frees the op itself

    # -- on the event loop's thread -------------------------------------------
    def _progress_on_loop(self, event: Progress) -> None:
        if self.error is not None or self.finished or self.progress is None:
            return
        try:
            self.progress(event)
        except BaseException as e:  # noqa: B036
            self.error = e
            if self.handle is not None:
                _ffi.load().snapshotter_op_cancel(self.handle)

    def _done_on_loop(self, status: int) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(status)


_ids = itertools.count(1)
_table: Dict[int, _Op] = {}
_table_lock = threading.Lock()
_local = threading.local()


def in_callback() -> bool:
    """True on a library thread inside one of our callbacks."""
    return getattr(_local, "depth", 0) > 0


def _on_progress(progress: Any, payload: Optional[int]) -> int:
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        op = _table.get(payload or 0)
        if op is None:
            return 0
        return op.on_progress(Progress._from_c(_ffi.read_sized(progress.contents)))
    except BaseException:  # noqa: B036 - nothing may unwind into C
        return 1
    finally:
        _local.depth -= 1


def _on_done(_handle: Any, status: int, payload: Optional[int]) -> None:
    _local.depth = getattr(_local, "depth", 0) + 1
    try:
        op = _table.get(payload or 0)
        if op is not None:
            op.on_done(status)
    except BaseException:  # noqa: B036
        pass
    finally:
        _local.depth -= 1


PROGRESS_TRAMPOLINE = _ffi.PROGRESS_CB(_on_progress)
DONE_TRAMPOLINE = _ffi.DONE_CB(_on_done)


def _register(op: _Op) -> None:
    with _table_lock:
        _table[op.id] = op


def _unregister(op: _Op) -> None:
    with _table_lock:
        _table.pop(op.id, None)


@contextlib.contextmanager
def _started(lib: Any, op: _Op, start: Starter, done: Any) -> Iterator[int]:
    """Registers ``op``, starts it (``done`` is the done callback or
    NO_DONE) and gives its handle; on the way out the op is freed and
    unregistered, however the body ends.
    """
    _register(op)
    out = c_void_p()
    try:
        try:
            rc = start(PROGRESS_TRAMPOLINE if op.progress is not None else _ffi.NO_PROGRESS, done, op.id, byref(out))
            if rc != _ffi.OK:
                raise make_error(rc)
            op.handle = int(out.value or 0)
            yield op.handle
        finally:
            # `out` is read here, not a local copy: a KeyboardInterrupt can
            # land between the C call's return and the next line. Freeing a
            # running op cancels it and waits until it has stopped, so
            # nothing outlives the call, however it ends. (The awaited form
            # has finished by now, unless its coroutine was closed without
            # being awaited to the end: then this blocks the loop that long.)
            if out.value:
                lib.snapshotter_op_free(out.value)
    finally:
        _unregister(op)


def _finish(lib: Any, handle: int, status: int, op: _Op, collect: "Collector[T]") -> T:
    op.finished = True
    if op.error is not None:
        # The caller's own exception, from its progress callback: it
        # canceled the operation, and is what the caller should see.
        raise op.error
    if status != _ffi.OK:
        raise make_error(status, decode(lib.snapshotter_op_error(handle)))
    return collect(lib, handle)


def _wait(lib: Any, handle: int) -> int:
    if threading.current_thread() is not threading.main_thread():
        return int(lib.snapshotter_op_wait(handle, -1))
    while True:
        rc = lib.snapshotter_op_wait(handle, _WAIT_SLICE_MS)
        if rc != _ffi.ETIMEDOUT:
            return int(rc)
        status = int(lib.snapshotter_op_status(handle))
        if status != _ffi.EINPROGRESS:
            return status


def run(start: Starter, progress: Optional[ProgressFn], collect: "Collector[T]") -> T:
    """Runs an operation to its end on this thread; returns ``collect``'s result."""
    lib = _ffi.load()
    if in_callback():
        raise BusyError(
            _ffi.EBUSY,
            "a blocking snapshotter call cannot be made from a snapshotter callback "
            "(it runs on a library thread); use the store from another thread",
        )
    op = _Op(progress, None)
    with _started(lib, op, start, _ffi.NO_DONE) as handle:
        status = _wait(lib, handle)
        return _finish(lib, handle, status, op, collect)


async def _until_done(fut: "asyncio.Future[int]") -> None:
    """Waits for ``fut`` even if the task is canceled again meanwhile."""
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            continue


async def run_async(start: Starter, progress: Optional[ProgressFn], collect: "Collector[T]") -> T:
    """Runs an operation without blocking the event loop; returns ``collect``'s result."""
    lib = _ffi.load()
    op = _Op(progress, asyncio.get_running_loop())
    assert op.done is not None
    with _started(lib, op, start, DONE_TRAMPOLINE) as handle:
        try:
            await asyncio.shield(op.done)
        except asyncio.CancelledError:
            lib.snapshotter_op_cancel(handle)
            await _until_done(op.done)
            op.finished = True
            raise
        # The done callback hands us the status before it returns, and the
        # library marks the op finished (its report readable) only after:
        # this wait lasts no longer than that return.
        status = int(lib.snapshotter_op_wait(handle, -1))
        return _finish(lib, handle, status, op, collect)
