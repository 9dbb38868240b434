"""Text and paths on their way into C.

C strings end at the first NUL, so a Python string holding one would be
cut short silently: refuse it instead.
"""

from __future__ import annotations

import os
from typing import Union

from . import _ffi
from .errors import InvalidArgumentError

StrPath = Union[str, "os.PathLike[str]"]


def text(value: str, what: str, show: bool = True) -> bytes:
    """UTF-8 bytes of a name, version or setting. With show=False (settings:
    passwords, keys, URLs with credentials) errors do not quote the value."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    shown = f"{what} {value!r}" if show else what
    if "\0" in value:
        raise InvalidArgumentError(_ffi.EINVAL, f"{shown} contains a NUL character")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as e:
        detail = f": {e}" if show else f" (at index {e.start})"
        raise InvalidArgumentError(_ffi.EINVAL, f"{shown} is not valid text{detail}") from None


def path(value: StrPath, what: str) -> bytes:
    """File-system bytes of a path (str or os.PathLike)."""
    raw = os.fsencode(value)
    if b"\0" in raw:
        raise InvalidArgumentError(_ffi.EINVAL, f"{what} {os.fsdecode(raw)!r} contains a NUL character")
    return raw


def decode(raw: bytes) -> str:
    """Text the library handed out (UTF-8; never fails)."""
    return raw.decode("utf-8", "surrogateescape") if raw else ""
