"""Every SNAPSHOTTER_ constant of include/snapshotter.h has its value here.

The binding restates the header's numbers (ctypes cannot read a header);
this test is what keeps them one source: a constant added to the header
without the binding, or a number that drifted, fails it.
"""

from __future__ import annotations

import re
from pathlib import Path

import snapshotter
from snapshotter import _ffi
from snapshotter.models import Phase

HEADER = Path(__file__).resolve().parents[3] / "include" / "snapshotter.h"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"

# Names that are not numbers: expressions, initializers and the export
# attribute.
NOT_CONSTANTS = {"SNAPSHOTTER_API", "SNAPSHOTTER_VERSION_NUMBER", "SNAPSHOTTER_VERSION_CHECK",
                 "SNAPSHOTTER_REPORT_INIT", "SNAPSHOTTER_STATS_INIT", "SNAPSHOTTER_H"}


def header_constants() -> dict:
    text = HEADER.read_text()
    found = {}
    for name, value in re.findall(r"^#define (SNAPSHOTTER_\w+)[ \t]+(\S.*?)\s*(?:/\*.*)?$", text, re.M):
        found[name] = value
    for name, value in re.findall(r"^\s*(SNAPSHOTTER_\w+)\s*=\s*(-?\w+)\s*,?", text, re.M):
        found[name] = value
    for name in re.findall(r"^#define (SNAPSHOTTER_\w+)\(", text, re.M):
        found[name] = None
    return {k: v for k, v in found.items() if k not in NOT_CONSTANTS}


def number(value: str) -> int:
    return int(value.strip("()").rstrip("uUlL"), 0)


def test_every_header_constant_matches_the_binding():
    constants = header_constants()
    assert len(constants) > 60, f"the header parse found only {sorted(constants)}"
    missing, wrong = [], []
    for name, value in constants.items():
        short = name[len("SNAPSHOTTER_"):]
        if short == "VERSION_STRING":
            got, want = snapshotter.__version__, value.strip('"')
        elif short == "VERSION_MAJOR":
            got, want = _ffi.MAJOR, number(value)
        elif short in ("VERSION_MINOR", "VERSION_PATCH"):
            continue  # in VERSION_STRING
        elif short.startswith("PHASE_"):
            member = Phase.__members__.get(short[len("PHASE_"):])
            got, want = (None if member is None else int(member)), number(value)
        else:
            got, want = getattr(_ffi, short, None), number(value)
        if got is None:
            missing.append(name)
        elif got != want:
            wrong.append(f"{name}: header {want}, binding {got}")
    assert not missing, f"constants of the header missing from the binding: {missing}"
    assert not wrong, f"constants that differ from the header: {wrong}"


def test_the_binding_has_no_constant_the_header_lacks():
    names = set(header_constants())
    prefixes = ("OPT_", "E", "LOG_", "RESTORE_")
    extra = [n for n in dir(_ffi) if n.isupper() and n.startswith(prefixes) and isinstance(getattr(_ffi, n), int)
             and "SNAPSHOTTER_" + n not in names]
    assert not extra, f"binding constants the header does not have: {extra}"


def test_one_version():
    constants = header_constants()
    version = constants["SNAPSHOTTER_VERSION_STRING"].strip('"')
    assert snapshotter.__version__ == version
    assert re.search(r'^version = "([^"]+)"', PYPROJECT.read_text(), re.M).group(1) == version
    assert snapshotter.library_version() == version
