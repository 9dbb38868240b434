"""The library's log messages, forwarded to the ``logging`` module.

The library never writes to stdout or stderr. :func:`enable_logging` sends
its messages to the ``snapshotter`` logger; they are produced on library
threads. The library never logs secrets.
"""

from __future__ import annotations

import atexit
import logging
from typing import Any, Optional

from . import _ffi
from ._text import decode
from .errors import check

__all__ = ["enable_logging", "disable_logging", "logger"]

logger = logging.getLogger("snapshotter")

_TO_PYTHON = {
    _ffi.LOG_ERROR: logging.ERROR,
    _ffi.LOG_WARN: logging.WARNING,
    _ffi.LOG_INFO: logging.INFO,
    _ffi.LOG_DEBUG: logging.DEBUG,
}


def _on_log(level: int, message: Optional[bytes], _payload: Any) -> None:
    try:
        logger.log(_TO_PYTHON.get(level, logging.DEBUG), "%s", decode(message or b""))
    except BaseException:  # noqa: B036 - nothing may unwind into C
        pass


# Process-wide, like the library's log callback; never collected.
_LOG_TRAMPOLINE = _ffi.LOG_CB(_on_log)
_enabled = False


def enable_logging(level: int = logging.INFO) -> None:
    """Forwards library messages at ``level`` (a ``logging`` level) and more
    severe to the ``snapshotter`` logger. Process-wide."""
    global _enabled
    if level <= logging.DEBUG:
        c_level = _ffi.LOG_DEBUG
    elif level <= logging.INFO:
        c_level = _ffi.LOG_INFO
    elif level <= logging.WARNING:
        c_level = _ffi.LOG_WARN
    else:
        c_level = _ffi.LOG_ERROR
    check(_ffi.load().snapshotter_set_log_callback(_LOG_TRAMPOLINE, c_level, None))
    _enabled = True


def disable_logging() -> None:
    """Stops forwarding library messages."""
    global _enabled
    if _enabled:
        check(_ffi.load().snapshotter_set_log_callback(_ffi.NO_LOG, 0, None))
        _enabled = False


# Library threads must not call into an interpreter that is shutting down.
atexit.register(disable_logging)
