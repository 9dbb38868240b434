"""Every C symbol of libsnapshotter, declared in one place.

The library is found and loaded on first use (``load()``), not at import, so
``import snapshotter`` always works and a missing library is reported where
it is needed, with what to install.

Struct mirrors follow ``include/snapshotter.h``. The ones that carry a
``size`` field are read through :func:`read_sized`, so a library built
against an older, smaller struct leaves the newer fields at 0 instead of
being read past its end.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import subprocess
import threading
from ctypes import (
    CFUNCTYPE,
    POINTER,
    Structure,
    c_char,
    c_char_p,
    c_int,
    c_int32,
    c_int64,
    c_size_t,
    c_uint,
    c_uint32,
    c_void_p,
)
from typing import Any, Dict, List, Optional, Tuple, Type, TypeVar

# The oldest library this binding works with (0.1.0, as
# SNAPSHOTTER_VERSION_NUMBER computes it), and the major version it was
# written for: the header promises stability within a major version only.
MIN_VERSION = 100
MAJOR = 0

# ---- status codes (stable, from the header) --------------------------------
# Every SNAPSHOTTER_ constant of include/snapshotter.h is checked against
# this module by tests/test_header.py.
OK = 0
EINVAL = -30601
ENOTFOUND = -30602
EEXISTS = -30603
EIO = -30604
ECORRUPT = -30605
EREGISTRY = -30606
ETRANSPORT = -30607
ECANCELED = -30608
EBUSY = -30609
ECLOSED = -30610
ENOSPACE = -30611
EPERM = -30612
EUNSUPPORTED = -30613
EINTERNAL = -30614
ETIMEDOUT = -30615
EINPROGRESS = -30616
ENOMEM = -30617
EFORKED = -30618

# ---- option numbers ---------------------------------------------------------
OPT_SNAPSHOT_CONCURRENCY = 1
OPT_RESTORE_CONCURRENCY = 2
OPT_METADATA_MAP_SIZE = 3
OPT_PROGRESS_INTERVAL_US = 4
OPT_STORE_GROUP = 5
OPT_DURABLE_RESTORE = 7
OPT_MAX_CONFIG_BYTES = 6
OPT_RECORD_FORMAT = 8
OPT_REGISTRY_ENDPOINT = 100
OPT_REGISTRY_NAMESPACE = 101
OPT_REGISTRY_USERNAME = 102
OPT_REGISTRY_PASSWORD = 103
OPT_REGISTRY_INSECURE = 104
OPT_REGISTRY_CA_FILE = 105
OPT_CONTENT_URL = 200
OPT_CONTENT_ENDPOINT = 201
OPT_CONTENT_REGION = 202
OPT_CONTENT_ACCESS_KEY_ID = 203
OPT_CONTENT_SECRET_ACCESS_KEY = 204
OPT_CONTENT_SESSION_TOKEN = 205
OPT_DRAGONFLY_ENDPOINT = 206
OPT_DRAGONFLY_FALLBACK = 207
OPT_DRAGONFLY_REPLICAS = 208
OPT_DRAGONFLY_TTL_SECONDS = 209
OPT_DOWNLOAD_CONCURRENCY = 210
OPT_GC_INTERVAL_SECONDS = 300
OPT_GC_HIGH_WATERMARK_PERCENT = 301
OPT_GC_LOW_WATERMARK_PERCENT = 302
OPT_GC_BATCH_SIZE = 303
OPT_GC_MIN_RETENTION_SECONDS = 304
OPT_GC_MAX_STORE_BYTES = 305
OPT_GC_ORPHAN_GRACE_SECONDS = 306

RESTORE_OVERWRITE = 0x1

LOG_ERROR = 0
LOG_WARN = 1
LOG_INFO = 2
LOG_DEBUG = 3


# ---- structs ------------------------------------------------------------------
class ProgressStruct(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("phase", c_int32),
        ("files_done", c_int64),
        ("files_total", c_int64),
        ("bytes_done", c_int64),
        ("bytes_total", c_int64),
        ("files_copied", c_int64),
    ]


class SnapshotInfoStruct(Structure):
    _fields_ = [
        ("name", c_char_p),
        ("version", c_char_p),
        ("created_ns", c_int64),
        ("last_accessed_ns", c_int64),
        ("file_count", c_int64),
        ("total_size", c_int64),
    ]


class SnapshotListStruct(Structure):
    _fields_ = [
        ("count", c_size_t),
        ("items", POINTER(POINTER(SnapshotInfoStruct))),
    ]


class FileInfoStruct(Structure):
    _fields_ = [
        ("relative_path", c_char_p),
        ("digest", c_char_p),
        ("read_only", c_int),
        ("mode", c_uint32),
        ("uid", c_uint32),
        ("gid", c_uint32),
        ("size", c_int64),
        ("mtime_ns", c_int64),
    ]


class FileListStruct(Structure):
    _fields_ = [
        ("count", c_size_t),
        ("items", POINTER(POINTER(FileInfoStruct))),
        # POINTER(c_char), not c_char_p: the JSON is read by its size.
        ("config_json", POINTER(c_char)),
        ("config_json_size", c_size_t),
    ]


class ReportStruct(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("files_stored", c_int64),
        ("files_known_by_inode", c_int64),
        ("bytes_read", c_int64),
        ("files_linked", c_int64),
        ("files_copied", c_int64),
        ("files_decoded", c_int64),
        ("bytes_written", c_int64),
        ("snapshots_evicted", c_int64),
        ("content_files_removed", c_int64),
        ("bytes_freed", c_int64),
        ("orphans_removed", c_int64),
        ("elapsed_ns", c_int64),
    ]


class ProblemStruct(Structure):
    _fields_ = [
        ("kind", c_char_p),
        ("digest", c_char_p),
        ("snapshot", c_char_p),
        ("message", c_char_p),
    ]


class VerifyReportStruct(Structure):
    _fields_ = [
        ("snapshots_checked", c_int64),
        ("content_files_checked", c_int64),
        ("bytes_checked", c_int64),
        ("problem_count", c_size_t),
        ("problems", POINTER(POINTER(ProblemStruct))),
        # Only in libraries that have snapshotter_repair: the struct has no
        # size field, so Library.has_repair says whether these exist.
        ("repair_count", c_size_t),
        ("repairs", POINTER(c_char_p)),
    ]


class StatsStruct(Structure):
    _fields_ = [
        ("size", c_uint32),
        ("store_bytes", c_int64),
        ("content_files", c_int64),
        ("snapshots", c_int64),
        ("oldest_access_ns", c_int64),
        ("disk_total_bytes", c_int64),
        ("disk_used_bytes", c_int64),
    ]


S = TypeVar("S", bound=Structure)


def read_sized(struct: Structure) -> Dict[str, int]:
    """The fields of a struct that starts with ``uint32_t size``, as a dict.

    Fields the library did not fill (beyond ``size`` bytes) read as 0.
    """
    filled: int = getattr(struct, "size")
    out: Dict[str, int] = {}
    for entry in struct._fields_:
        name = entry[0]
        if name == "size":
            continue
        desc = getattr(type(struct), name)
        out[name] = getattr(struct, name) if desc.offset + desc.size <= filled else 0
    return out


def new_sized(cls: Type[S]) -> S:
    """A zeroed caller-owned struct with ``size`` set, like SNAPSHOTTER_*_INIT."""
    value = cls()
    setattr(value, "size", ctypes.sizeof(cls))
    return value


# ---- callback types -------------------------------------------------------------
# Module-level, as ctypes requires of a type whose instances C keeps: the
# instances made from them (in _operation and _logging) live as long as the
# module, so C never calls a collected trampoline.
LOG_CB = CFUNCTYPE(None, c_int, c_char_p, c_void_p)
PROGRESS_CB = CFUNCTYPE(c_int, POINTER(ProgressStruct), c_void_p)
DONE_CB = CFUNCTYPE(None, c_void_p, c_int, c_void_p)
# NULL callbacks: ctypes refuses None where an argtype is a CFUNCTYPE.
NO_LOG = LOG_CB()
NO_PROGRESS = PROGRESS_CB()
NO_DONE = DONE_CB()

_p = c_void_p  # every opaque handle
_pp = POINTER(c_void_p)  # an out-parameter for a handle

# name: (restype, argtypes). One table, so a symbol the library lacks is
# found at load time, not at its first call.
_SIGNATURES: Dict[str, Tuple[Any, List[Any]]] = {
    "snapshotter_version": (c_int, []),
    "snapshotter_version_string": (c_char_p, []),
    "snapshotter_strerror": (c_char_p, [c_int]),
    "snapshotter_last_error": (c_char_p, []),
    "snapshotter_set_log_callback": (c_int, [LOG_CB, c_int, c_void_p]),
    "snapshotter_options_new": (_p, []),
    "snapshotter_options_free": (None, [_p]),
    "snapshotter_options_set_int": (c_int, [_p, c_int, c_int64]),
    "snapshotter_options_set_string": (c_int, [_p, c_int, c_char_p]),
    "snapshotter_open": (c_int, [c_char_p, _p, _pp]),
    "snapshotter_close": (c_int, [_p]),
    "snapshotter_files_new": (_p, []),
    "snapshotter_files_add": (c_int, [_p, c_char_p, c_int]),
    "snapshotter_files_free": (None, [_p]),
    "snapshotter_op_wait": (c_int, [_p, c_int64]),
    "snapshotter_op_cancel": (c_int, [_p]),
    "snapshotter_op_status": (c_int, [_p]),
    "snapshotter_op_error": (c_char_p, [_p]),
    "snapshotter_op_free": (None, [_p]),
    "snapshotter_op_report": (POINTER(ReportStruct), [_p]),
    "snapshotter_op_verify_report": (POINTER(VerifyReportStruct), [_p]),
    "snapshotter_snapshot_list_free": (None, [POINTER(SnapshotListStruct)]),
    "snapshotter_file_list_free": (None, [POINTER(FileListStruct)]),
    "snapshotter_verify_report_free": (None, [POINTER(VerifyReportStruct)]),
    "snapshotter_free": (None, [c_void_p]),
    "snapshotter_registry_push_blob": (c_int, [_p, c_char_p, c_void_p, c_size_t, POINTER(c_void_p)]),
    "snapshotter_registry_pull_blob": (c_int, [_p, c_char_p, c_char_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "snapshotter_registry_push_manifest": (c_int, [_p, c_char_p, c_char_p, c_void_p, c_size_t, POINTER(c_void_p)]),
    "snapshotter_registry_pull_manifest": (c_int, [_p, c_char_p, c_char_p, POINTER(c_void_p), POINTER(c_size_t)]),
    "snapshotter_content_upload": (c_int, [_p, c_char_p, c_char_p]),
    "snapshotter_content_download": (c_int, [_p, c_char_p, c_char_p]),
    "snapshotter_snapshot_async": (
        c_int,
        [_p, c_char_p, c_char_p, c_char_p, _p, PROGRESS_CB, DONE_CB, c_void_p, _pp],
    ),
    "snapshotter_snapshot": (c_int, [_p, c_char_p, c_char_p, c_char_p, _p, POINTER(ReportStruct)]),
    "snapshotter_restore_async": (
        c_int,
        [_p, c_char_p, c_char_p, c_char_p, c_uint, PROGRESS_CB, DONE_CB, c_void_p, _pp],
    ),
    "snapshotter_restore": (c_int, [_p, c_char_p, c_char_p, c_char_p, c_uint, POINTER(ReportStruct)]),
    "snapshotter_snapshot_with_options_async": (
        c_int,
        [_p, c_char_p, c_char_p, c_char_p, _p, _p, PROGRESS_CB, DONE_CB, c_void_p, _pp],
    ),
    "snapshotter_restore_with_options_async": (
        c_int,
        [_p, c_char_p, c_char_p, c_char_p, c_uint, _p, PROGRESS_CB, DONE_CB, c_void_p, _pp],
    ),
    "snapshotter_delete_async": (c_int, [_p, c_char_p, c_char_p, DONE_CB, c_void_p, _pp]),
    "snapshotter_delete": (c_int, [_p, c_char_p, c_char_p, POINTER(ReportStruct)]),
    "snapshotter_verify_async": (c_int, [_p, PROGRESS_CB, DONE_CB, c_void_p, _pp]),
    "snapshotter_verify": (c_int, [_p, POINTER(POINTER(VerifyReportStruct))]),
    "snapshotter_repair_async": (c_int, [_p, PROGRESS_CB, DONE_CB, c_void_p, _pp]),
    "snapshotter_repair": (c_int, [_p, POINTER(POINTER(VerifyReportStruct))]),
    "snapshotter_gc_async": (c_int, [_p, PROGRESS_CB, DONE_CB, c_void_p, _pp]),
    "snapshotter_gc": (c_int, [_p, POINTER(ReportStruct)]),
    "snapshotter_list": (c_int, [_p, POINTER(POINTER(SnapshotListStruct))]),
    "snapshotter_files": (c_int, [_p, c_char_p, c_char_p, POINTER(POINTER(FileListStruct))]),
    "snapshotter_stats": (c_int, [_p, POINTER(StatsStruct)]),
    "snapshotter_reconfigure": (c_int, [_p, _p]),
    "snapshotter_active_operations": (c_int, [_p]),
}

# Functions added within 0.1 that an older 0.1 library may lack: the binding
# works without them and says so when one is asked for.
_OPTIONAL = frozenset({"snapshotter_repair_async", "snapshotter_repair"})

INSTALL_HINT = (
    "Install the snapshotter wheel, which carries the library (in libsnapshotter's repository: "
    "`make wheel`), or the libsnapshotter0 Debian package (`make deb`), or install libsnapshotter "
    "from source (`make install PREFIX=/usr/local`), then either "
    "set SNAPSHOTTER_LIBRARY to the path of libsnapshotter.so, add PREFIX/lib/pkgconfig to "
    "PKG_CONFIG_PATH, or add PREFIX/lib to the system library path (ldconfig)."
)


class LibraryError(OSError):
    """libsnapshotter could not be found or loaded, or is too old."""


class Library:
    """The loaded library: one attribute per C function, typed."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            # CDLL (not PyDLL) releases the GIL around every call: the calls
            # that wait for an operation must let its callbacks take it.
            self.dll = ctypes.CDLL(path)
        except OSError as e:
            raise LibraryError(f"cannot load libsnapshotter from {path}: {e}. {INSTALL_HINT}") from e
        missing = []
        for name, (restype, argtypes) in _SIGNATURES.items():
            try:
                fn = getattr(self.dll, name)
            except AttributeError:
                if name not in _OPTIONAL:
                    missing.append(name)
                continue
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)
        self.has_repair = hasattr(self, "snapshotter_repair_async")
        version = self.snapshotter_version() if "snapshotter_version" not in missing else 0
        self.version = version
        self.version_string = (
            self.snapshotter_version_string().decode("utf-8", "replace")
            if "snapshotter_version_string" not in missing
            else "unknown"
        )
        if version < MIN_VERSION or version // 10000 != MAJOR or missing:
            want = f"{MAJOR}.{MIN_VERSION // 100 % 100}.{MIN_VERSION % 100}"
            detail = f" (missing {', '.join(missing)})" if missing else ""
            raise LibraryError(
                f"libsnapshotter at {path} is version {self.version_string}{detail}; this binding "
                f"needs {MAJOR}.x, at least {want}. {INSTALL_HINT}"
            )

    # Declared for type checkers; set in __init__ from _SIGNATURES.
    def __getattr__(self, name: str) -> Any:  # pragma: no cover - only for unknown names
        raise AttributeError(name)


def _pkg_config_libdir() -> Optional[str]:
    if shutil.which("pkg-config") is None:
        return None
    try:
        r = subprocess.run(
            ["pkg-config", "--variable=libdir", "snapshotter"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    libdir = r.stdout.strip()
    return libdir if r.returncode == 0 and libdir else None


# Where the wheel (`make wheel`) puts its own copy of the library, named by
# its SONAME; a package installed from source has no such directory.
BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_lib", "libsnapshotter.so.0")


def find_library() -> Tuple[str, List[str]]:
    """The path to load, and what was tried (for the error message).

    Order: the wheel's bundled copy, $SNAPSHOTTER_LIBRARY, pkg-config's
    libdir, the system search.
    """
    if os.path.exists(BUNDLED):
        return BUNDLED, []
    tried: List[str] = [f"the wheel's {BUNDLED} (none: installed from source)"]
    env = os.environ.get("SNAPSHOTTER_LIBRARY")
    if env:
        if not os.path.exists(env):
            raise LibraryError(f"SNAPSHOTTER_LIBRARY={env} does not exist. {INSTALL_HINT}")
        return env, tried
    tried.append("SNAPSHOTTER_LIBRARY (unset)")
    libdir = _pkg_config_libdir()
    if libdir:
        for name in ("libsnapshotter.so", "libsnapshotter.so.0", "libsnapshotter.dylib"):
            candidate = os.path.join(libdir, name)
            if os.path.exists(candidate):
                return candidate, tried
        tried.append(f"pkg-config libdir {libdir} (no libsnapshotter.so there)")
    else:
        tried.append("pkg-config snapshotter (not found)")
    found = ctypes.util.find_library("snapshotter")
    if found:
        return found, tried
    tried.append("the system library search (ctypes.util.find_library)")
    return "", tried


_lock = threading.Lock()
_loaded: Optional[Library] = None


def load() -> Library:
    """The library, loaded and checked on the first call."""
    global _loaded
    if _loaded is not None:
        return _loaded
    with _lock:
        if _loaded is None:
            path, tried = find_library()
            if not path:
                raise LibraryError(f"libsnapshotter not found; tried {'; '.join(tried)}. {INSTALL_HINT}")
            _loaded = Library(path)
    return _loaded
