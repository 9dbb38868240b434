"""Snapshot sets of files into a content-addressed store and restore them.

A Python binding (ctypes) of libsnapshotter::

    from snapshotter import Snapshotter, File

    with Snapshotter("/var/lib/snapshots") as store:
        store.snapshot("sandboxes/sb-42", "ckpt-1", "/run/sb-42",
                       [File("checkpoint/memory.img", read_only=True),
                        File("rootfs/disk.img")])
        store.restore("sandboxes/sb-42", "ckpt-1", "/run/sb-42-copy")

The C library is found when first needed: the wheel's own copy, then
``$SNAPSHOTTER_LIBRARY``, then pkg-config (``snapshotter.pc``), then the
system library search.
"""

from __future__ import annotations

from . import _ffi, errors, models
from .errors import (
    AlreadyExistsError,
    BusyError,
    CanceledError,
    ClosedError,
    CorruptContentError,
    FileSystemError,
    ForkedError,
    InProgressError,
    InternalError,
    InvalidArgumentError,
    LibraryError,
    NoSpaceError,
    NotFoundError,
    OutOfMemoryError,
    PermissionDeniedError,
    RegistryError,
    SnapshotterError,
    TimedOutError,
    TransportError,
    UnsupportedError,
)
from .log import disable_logging, enable_logging
from .models import File, FileInfo, Phase, Problem, Progress, Report, SnapshotInfo, Stats, VerifyReport
from .options import ContentProvider, Dragonfly, GCOptions, Registry
from .store import Snapshotter
from .clients import ContentClient, RegistryClient

__version__ = "0.2.0"  # the header's SNAPSHOTTER_VERSION_STRING (tests/test_header.py)


def library_version() -> str:
    """The loaded libsnapshotter's version ("MAJOR.MINOR.PATCH"); loads it if needed."""
    return _ffi.load().version_string


def library_path() -> str:
    """Where the loaded libsnapshotter came from; loads it if needed."""
    return _ffi.load().path


__all__ = [
    "Snapshotter",
    "RegistryClient",
    "ContentClient",
    "Registry",
    "ContentProvider",
    "Dragonfly",
    "GCOptions",
    *models.__all__,
    *errors.__all__,
    "enable_logging",
    "disable_logging",
    "library_version",
    "library_path",
]
