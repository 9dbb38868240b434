"""Exceptions: one class per libsnapshotter status code.

Every failure the library reports becomes a :class:`SnapshotterError`
subclass carrying the status ``code`` (the negative ``SNAPSHOTTER_E*``
value) and the library's ``message``, which names what failed::

    try:
        store.snapshot("sandbox", "v1", base, files)
    except snapshotter.AlreadyExistsError:
        ...
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Type

from . import _ffi
from ._ffi import LibraryError

__all__ = [
    "SnapshotterError",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "FileSystemError",
    "CorruptContentError",
    "RegistryError",
    "TransportError",
    "CanceledError",
    "BusyError",
    "ClosedError",
    "NoSpaceError",
    "PermissionDeniedError",
    "UnsupportedError",
    "InternalError",
    "TimedOutError",
    "InProgressError",
    "OutOfMemoryError",
    "ForkedError",
    "LibraryError",
]


class SnapshotterError(Exception):
    """A libsnapshotter failure.

    Attributes:
        code: the status code (``SNAPSHOTTER_E*``, negative).
        message: the library's message, naming what failed.
    """

    #: The status code of this class (subclasses set it).
    CODE: int = 0

    def __init__(self, code: int, message: str = "") -> None:
        super().__init__(message or _status_name(code))
        self.code = code
        self.message = message

    @property
    def status_name(self) -> str:
        """The library's short name of the code ("SNAPSHOTTER_ENOTFOUND: not found")."""
        return _status_name(self.code)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code}, {self.message!r})"

    def __reduce__(self) -> Tuple[Any, Tuple[int, str]]:  # keep code and message through pickling
        return (type(self), (self.code, self.message))


class InvalidArgumentError(SnapshotterError, ValueError):
    """An argument, name, version, path or handle is invalid (SNAPSHOTTER_EINVAL)."""

    CODE = _ffi.EINVAL


class NotFoundError(SnapshotterError, LookupError):
    """The snapshot, file or object does not exist (SNAPSHOTTER_ENOTFOUND)."""

    CODE = _ffi.ENOTFOUND


class AlreadyExistsError(SnapshotterError):
    """The snapshot or a target file already exists (SNAPSHOTTER_EEXISTS)."""

    CODE = _ffi.EEXISTS


class FileSystemError(SnapshotterError):
    """A file-system or system call failed (SNAPSHOTTER_EIO)."""

    CODE = _ffi.EIO


class CorruptContentError(SnapshotterError):
    """Content or metadata fails its checks (SNAPSHOTTER_ECORRUPT)."""

    CODE = _ffi.ECORRUPT


class RegistryError(SnapshotterError):
    """The OCI registry failed or refused (SNAPSHOTTER_EREGISTRY)."""

    CODE = _ffi.EREGISTRY


class TransportError(SnapshotterError):
    """The content transport failed (SNAPSHOTTER_ETRANSPORT)."""

    CODE = _ffi.ETRANSPORT


class CanceledError(SnapshotterError):
    """The operation was canceled, by the caller or by close (SNAPSHOTTER_ECANCELED)."""

    CODE = _ffi.ECANCELED


class BusyError(SnapshotterError):
    """Not allowed now, e.g. a waiting call made from a callback (SNAPSHOTTER_EBUSY)."""

    CODE = _ffi.EBUSY


class ClosedError(SnapshotterError):
    """The store is closed (SNAPSHOTTER_ECLOSED)."""

    CODE = _ffi.ECLOSED


class NoSpaceError(SnapshotterError):
    """No space left on the device (SNAPSHOTTER_ENOSPACE)."""

    CODE = _ffi.ENOSPACE


class PermissionDeniedError(SnapshotterError):
    """Permission denied (SNAPSHOTTER_EPERM)."""

    CODE = _ffi.EPERM


class UnsupportedError(SnapshotterError):
    """Not supported by this library or platform (SNAPSHOTTER_EUNSUPPORTED)."""

    CODE = _ffi.EUNSUPPORTED


class InternalError(SnapshotterError):
    """A bug in the library (SNAPSHOTTER_EINTERNAL)."""

    CODE = _ffi.EINTERNAL


class TimedOutError(SnapshotterError):
    """A wait timed out (SNAPSHOTTER_ETIMEDOUT)."""

    CODE = _ffi.ETIMEDOUT


class InProgressError(SnapshotterError):
    """The operation has not finished (SNAPSHOTTER_EINPROGRESS)."""

    CODE = _ffi.EINPROGRESS


class OutOfMemoryError(SnapshotterError):
    """Out of memory (SNAPSHOTTER_ENOMEM)."""

    CODE = _ffi.ENOMEM


class ForkedError(SnapshotterError):
    """The store was opened in another process, this one forked from it
    (SNAPSHOTTER_EFORKED): open a new :class:`Snapshotter` in this process."""

    CODE = _ffi.EFORKED


_BY_CODE: Dict[int, Type[SnapshotterError]] = {
    cls.CODE: cls
    for cls in (
        InvalidArgumentError,
        NotFoundError,
        AlreadyExistsError,
        FileSystemError,
        CorruptContentError,
        RegistryError,
        TransportError,
        CanceledError,
        BusyError,
        ClosedError,
        NoSpaceError,
        PermissionDeniedError,
        UnsupportedError,
        InternalError,
        TimedOutError,
        InProgressError,
        OutOfMemoryError,
        ForkedError,
    )
}


def error_class(code: int) -> Type[SnapshotterError]:
    """The exception class for a status code (SnapshotterError for unknown codes)."""
    return _BY_CODE.get(code, SnapshotterError)


def make_error(code: int, message: Optional[str] = None) -> SnapshotterError:
    """An exception for ``code``; without ``message``, the calling thread's last error.

    Call it on the thread that made the failing call, right after it: the
    library keeps the message per thread, until that thread's next failure.
    """
    if message is None:
        message = _last_error()
    return error_class(code)(code, message)


def check(code: int) -> None:
    """Raises the exception for a failed synchronous call on this thread."""
    if code != _ffi.OK:
        raise make_error(code)


def _last_error() -> str:
    raw = _ffi.load().snapshotter_last_error()
    return raw.decode("utf-8", "replace") if raw else ""


def _status_name(code: int) -> str:
    try:
        raw = _ffi.load().snapshotter_strerror(code)
    except LibraryError:
        return f"status {code}"
    return raw.decode("utf-8", "replace") if raw else f"status {code}"
