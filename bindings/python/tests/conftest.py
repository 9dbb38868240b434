"""Fixtures: stores in temporary directories, sample files, the registry services."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from snapshotter import File, GCOptions, Snapshotter

# The background collector would make store counters move under a test.
NO_GC = GCOptions(interval_seconds=0)


def write_random(path: Path, size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))


def make_checkpoint(base: Path) -> List[File]:
    """A small sandbox checkpoint: read-only dumps, a sparse disk, configs."""
    write_random(base / "checkpoint/memory.dump", 1 << 20)
    write_random(base / "checkpoint/state", 64 << 10)
    disk = base / "rootfs/disk.img"
    disk.parent.mkdir(parents=True, exist_ok=True)
    with open(disk, "wb") as f:
        f.truncate(8 << 20)
        f.seek(4 << 20)
        f.write(os.urandom(64 << 10))
    (base / "config.json").write_text('{"id": "sb-42"}\n')
    (base / "metadata.json").write_text('{"created": "now"}\n')
    return [
        File("checkpoint/memory.dump", read_only=True),
        File("checkpoint/state", read_only=True),
        File("rootfs/disk.img"),
        File("config.json"),
        File("metadata.json"),
    ]


def make_many(base: Path, count: int, size: int = 4096) -> List[File]:
    """Many small read-write files: each costs the library an fsync, so a
    snapshot of them takes long enough to be canceled mid-way."""
    base.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(count):
        (base / f"f{i:05d}").write_bytes(os.urandom(size))
        files.append(File(f"f{i:05d}"))
    return files


def same_tree(a: Path, b: Path, files: List[File]) -> None:
    for f in files:
        assert (a / f.relative_path).read_bytes() == (b / f.relative_path).read_bytes(), f.relative_path


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Snapshotter]:
    with Snapshotter(tmp_path / "store", gc=NO_GC) as s:
        yield s
        assert s.active_operations() == 0, "an operation outlived its test"


@pytest.fixture
def checkpoint(tmp_path: Path) -> "tuple[Path, List[File]]":
    base = tmp_path / "sandbox"
    return base, make_checkpoint(base)


@pytest.fixture(scope="session")
def many_files(tmp_path_factory: pytest.TempPathFactory) -> "tuple[Path, List[File]]":
    base = tmp_path_factory.mktemp("many")
    return base, make_many(base, 400)


def _read_env(path: str) -> Dict[str, str]:
    env = {}
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            env[k] = v
    return env


@pytest.fixture(scope="session")
def services() -> Dict[str, str]:
    """The registry services' variables (scripts/services.sh), or skip."""
    path: Optional[str] = os.environ.get("SERVICES_ENV")
    if not path:
        pytest.skip("SERVICES_ENV is not set (scripts/services.sh start-registry DIR)")
    return _read_env(path)


@pytest.fixture
def slow_store(tmp_path: Path) -> Iterator[Snapshotter]:
    """One file at a time, so a snapshot of `many_files` lasts a second or two."""
    with Snapshotter(tmp_path / "slow-store", gc=NO_GC, snapshot_concurrency=1) as s:
        yield s
        assert s.active_operations() == 0, "an operation outlived its test"
