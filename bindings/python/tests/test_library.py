"""Finding and checking libsnapshotter: environment, pkg-config, system
search, a clear error, and refusal of a library that is too old."""

from __future__ import annotations

import ctypes.util
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Dict, Optional

import pytest

import snapshotter

PROBE = "import snapshotter; print(snapshotter.library_path()); print(snapshotter.library_version())"

# Installed from the wheel, the package's own library always wins: the
# lookups after it are only reached by a package installed from source.
from_source = pytest.mark.skipif(os.path.exists(snapshotter._ffi.BUNDLED),
                                 reason="the wheel's bundled library always wins")


def run_python(code: str, env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


def clean_env(**extra: Optional[str]) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("SNAPSHOTTER_LIBRARY", "PKG_CONFIG_PATH", "LD_LIBRARY_PATH", "LIBRARY_PATH")}
    env.update({k: v for k, v in extra.items() if v is not None})
    return env


@pytest.fixture(scope="module")
def libpath() -> str:
    return os.path.realpath(snapshotter.library_path())


@from_source
def test_environment_variable_wins(libpath, tmp_path):
    # Even with a pkg-config that points elsewhere.
    r = run_python(PROBE, clean_env(SNAPSHOTTER_LIBRARY=libpath, PKG_CONFIG_PATH=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [libpath, "0.2.0"]


def test_the_bundled_library_comes_first(libpath, tmp_path):
    # A wheel's layout: the package with _lib/libsnapshotter.so.0 beside it.
    # Its copy wins over the environment variable and pkg-config.
    pkg = tmp_path / "site" / "snapshotter"
    shutil.copytree(os.path.dirname(snapshotter.__file__), pkg,
                    ignore=shutil.ignore_patterns("__pycache__", "_lib"))
    (pkg / "_lib").mkdir()
    shutil.copy(libpath, pkg / "_lib" / "libsnapshotter.so.0")
    # A wheel's library finds its libcurl, LMDB and xxHash beside the package.
    libs = os.path.join(os.path.dirname(os.path.dirname(snapshotter.__file__)), "snapshotter.libs")
    if os.path.isdir(libs):
        shutil.copytree(libs, tmp_path / "site" / "snapshotter.libs")
    env = clean_env(SNAPSHOTTER_LIBRARY=libpath, PKG_CONFIG_PATH=str(tmp_path),
                    PYTHONPATH=str(tmp_path / "site"))
    r = run_python(PROBE, env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(pkg / "_lib" / "libsnapshotter.so.0"), "0.2.0"]


@from_source
def test_pkg_config_libdir_is_used(libpath, tmp_path):
    if shutil.which("pkg-config") is None:
        pytest.skip("no pkg-config")
    libdir = os.path.dirname(libpath)
    (tmp_path / "snapshotter.pc").write_text(
        f"libdir={libdir}\nName: snapshotter\nDescription: x\nVersion: 0.1.0\nLibs: -L{libdir} -lsnapshotter\n"
    )
    r = run_python(PROBE, clean_env(PKG_CONFIG_PATH=str(tmp_path)))
    assert r.returncode == 0, r.stderr
    assert os.path.dirname(r.stdout.split()[0]) == libdir


@from_source
def test_system_search_is_the_last_resort(libpath):
    libdir = os.path.dirname(libpath)
    # find_library consults LD_LIBRARY_PATH (through ld) on Linux.
    r = run_python(PROBE, clean_env(LD_LIBRARY_PATH=libdir, LIBRARY_PATH=libdir))
    assert r.returncode == 0, r.stderr
    assert "libsnapshotter" in r.stdout


@from_source
def test_import_never_fails_and_a_missing_library_says_what_to_install():
    if ctypes.util.find_library("snapshotter"):
        pytest.skip("libsnapshotter is installed system-wide here")
    code = textwrap.dedent(
        """
        import snapshotter
        try:
            snapshotter.Snapshotter("/tmp/x")
        except snapshotter.LibraryError as e:
            print(e)
        """
    )
    r = run_python(code, clean_env())
    assert r.returncode == 0, r.stderr
    assert "libsnapshotter not found" in r.stdout
    assert "make install" in r.stdout and "SNAPSHOTTER_LIBRARY" in r.stdout and "PKG_CONFIG_PATH" in r.stdout
    assert "snapshotter wheel" in r.stdout and "libsnapshotter0" in r.stdout


@from_source
def test_library_variable_naming_a_missing_file_is_an_error():
    r = run_python(
        "import snapshotter\ntry:\n snapshotter.library_version()\nexcept snapshotter.LibraryError as e:\n print(e)",
        clean_env(SNAPSHOTTER_LIBRARY="/nonexistent/libsnapshotter.so"),
    )
    assert "SNAPSHOTTER_LIBRARY=/nonexistent/libsnapshotter.so does not exist" in r.stdout, r.stderr


@from_source
@pytest.mark.parametrize("number,text", [(99, "0.0.99"), (10000, "1.0.0")])
def test_a_library_of_another_version_is_refused(tmp_path, number, text):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler")
    src = tmp_path / "old.c"
    src.write_text(
        f'int snapshotter_version(void) {{ return {number}; }}\n'
        f'const char *snapshotter_version_string(void) {{ return "{text}"; }}\n'
    )
    so = tmp_path / "libsnapshotter.so"
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
    r = run_python(
        "import snapshotter\ntry:\n snapshotter.library_version()\nexcept snapshotter.LibraryError as e:\n print(e)",
        clean_env(SNAPSHOTTER_LIBRARY=str(so)),
    )
    assert f"is version {text}" in r.stdout and "needs 0.x, at least 0.1.0" in r.stdout, r.stdout + r.stderr


def test_every_declared_symbol_is_in_the_header():
    # The binding declares exactly the header's functions: a new C function
    # shows up here as a reminder to bind it.
    from snapshotter import _ffi

    header = Path(__file__).resolve().parents[3] / "include/snapshotter.h"
    if not header.exists():
        pytest.skip("not run from the repository")
    import re

    declared = set(re.findall(r"\b(snapshotter_[a-z0-9_]+)\(", header.read_text()))
    assert set(_ffi._SIGNATURES) == declared
