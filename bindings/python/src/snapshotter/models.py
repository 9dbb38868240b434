"""The values that cross the API: files asked for, progress, results.

All are frozen dataclasses, made from the library's structs by copying, so
they stay valid after the library frees its memory.
"""

from __future__ import annotations

import datetime as _dt
import enum
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Tuple, Union

__all__ = [
    "File",
    "Phase",
    "Progress",
    "Report",
    "SnapshotInfo",
    "FileInfo",
    "Stats",
    "Problem",
    "VerifyReport",
]


@dataclass(frozen=True)
class File:
    """A file to snapshot, by its path relative to the base directory.

    A ``read_only`` file is hard-linked into the store, so restoring it costs
    a ``link(2)``: the caller promises not to change it in place afterwards.
    Other files are stored (sparse-aware) and decoded into new files on
    restore.
    """

    relative_path: str
    read_only: bool = False

    def __post_init__(self) -> None:
        # Accept os.PathLike too; the library takes the text.
        object.__setattr__(self, "relative_path", os.fspath(self.relative_path))


class Phase(enum.IntEnum):
    """The phase of an operation (``SNAPSHOTTER_PHASE_*``)."""

    PREPARING = 0
    STORING = 1
    UPLOADING = 2
    PUBLISHING = 3
    COMMITTING = 4
    FETCHING = 5
    EXPORTING = 6
    VERIFYING = 7
    COLLECTING = 8
    DONE = 9


@dataclass(frozen=True)
class Progress:
    """One progress event. Counters never go backwards within an operation;
    the last event (``Phase.DONE``) carries the totals.

    ``phase`` is a :class:`Phase`, or a plain int for a phase newer than this
    binding. ``files_copied`` counts read-only files copied instead of linked
    because the output directory is on another filesystem than the store.
    """

    phase: Union[Phase, int]
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    files_copied: int = 0

    @property
    def fraction(self) -> float:
        """Bytes done over bytes total (files when there are no bytes), in 0..1."""
        if self.bytes_total > 0:
            return min(1.0, self.bytes_done / self.bytes_total)
        if self.files_total > 0:
            return min(1.0, self.files_done / self.files_total)
        return 1.0 if self.phase == Phase.DONE else 0.0

    @classmethod
    def _from_c(cls, fields: Dict[str, Any]) -> "Progress":
        phase = fields.pop("phase")
        try:
            phase = Phase(phase)
        except ValueError:
            pass
        return cls(phase=phase, **fields)


@dataclass(frozen=True)
class Report:
    """The counters of a finished snapshot, restore, delete or gc.

    Each operation fills the fields that concern it and leaves the others 0:
    snapshot ``files_stored`` (content new to the store),
    ``files_known_by_inode`` (read-only files recognised without reading),
    ``bytes_read``; restore ``files_linked``, ``files_copied``,
    ``files_decoded``, ``bytes_written``; delete and gc
    ``snapshots_evicted``, ``content_files_removed``, ``bytes_freed``,
    ``orphans_removed``.
    """

    files_stored: int = 0
    files_known_by_inode: int = 0
    bytes_read: int = 0
    files_linked: int = 0
    files_copied: int = 0
    files_decoded: int = 0
    bytes_written: int = 0
    snapshots_evicted: int = 0
    content_files_removed: int = 0
    bytes_freed: int = 0
    orphans_removed: int = 0
    elapsed_ns: int = 0

    @property
    def elapsed(self) -> float:
        """Seconds the operation took."""
        return self.elapsed_ns / 1e9


def _datetime(ns: int) -> Optional[_dt.datetime]:
    if ns <= 0:
        return None
    return _dt.datetime.fromtimestamp(ns / 1e9, tz=_dt.timezone.utc)


@dataclass(frozen=True)
class SnapshotInfo:
    """A snapshot in the store (one item of :meth:`Snapshotter.list`)."""

    name: str
    version: str
    created_ns: int
    last_accessed_ns: int
    file_count: int
    total_size: int

    @property
    def created(self) -> Optional[_dt.datetime]:
        """When it was created (UTC)."""
        return _datetime(self.created_ns)

    @property
    def last_accessed(self) -> Optional[_dt.datetime]:
        """When it was last snapshotted or restored (UTC)."""
        return _datetime(self.last_accessed_ns)


@dataclass(frozen=True)
class FileInfo:
    """A file of a snapshot (one item of :meth:`Snapshotter.files`)."""

    relative_path: str
    digest: str  # "xxh3:<hex>"
    read_only: bool
    mode: int  # permission bits
    uid: int
    gid: int
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Stats:
    """Store usage (:meth:`Snapshotter.stats`)."""

    store_bytes: int
    content_files: int
    snapshots: int
    oldest_access_ns: int  # 0 when there are no snapshots
    disk_total_bytes: int
    disk_used_bytes: int

    @property
    def disk_used_percent(self) -> float:
        """How full the filesystem holding the store is."""
        return 100.0 * self.disk_used_bytes / self.disk_total_bytes if self.disk_total_bytes else 0.0


@dataclass(frozen=True)
class Problem:
    """One problem found by :meth:`Snapshotter.verify`."""

    kind: str  # "missing-content", "corrupt-content", ...
    message: str
    digest: Optional[str] = None
    snapshot: Optional[str] = None  # "name:version"


@dataclass(frozen=True)
class VerifyReport:
    """What :meth:`Snapshotter.verify` (or :meth:`Snapshotter.repair`)
    checked and found. A store with problems is not an error: read
    ``problems`` (or ``ok``). ``repairs`` lists, one line each, what
    :meth:`Snapshotter.repair` did (empty for verify)."""

    snapshots_checked: int
    content_files_checked: int
    bytes_checked: int
    problems: Tuple[Problem, ...] = field(default_factory=tuple)
    repairs: Tuple[str, ...] = field(default_factory=tuple)

    @property
    def ok(self) -> bool:
        """True when no problem was found (for repair: before repairing)."""
        return not self.problems
