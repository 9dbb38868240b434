#!/usr/bin/env python3
"""Snapshot a sandbox checkpoint and restore it, with a progress bar.

    pip install ./bindings/python
    PKG_CONFIG_PATH=PREFIX/lib/pkgconfig python3 examples/python/snapshot_example.py [work-dir]

The checkpoint is the sample one: a 10 MiB memory dump and a 256 KiB state
file (read-only: hard-linked into the store and back out), a sparse 50 MiB
disk image and two JSON files (read-write). Without a work-dir it works in
a temporary directory and removes it at the end. The progress bar is drawn
only when stdout is a terminal.
"""

from __future__ import annotations

import filecmp
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, List, Optional

import snapshotter
from snapshotter import File, GCOptions, Phase, Progress, Snapshotter

MiB = 1 << 20


def make_checkpoint(base: Path) -> List[File]:
    """Writes the sample checkpoint under `base`; returns what to snapshot."""
    (base / "checkpoint").mkdir(parents=True, exist_ok=True)
    (base / "checkpoint/memory.dump").write_bytes(os.urandom(10 * MiB))
    (base / "checkpoint/state").write_bytes(os.urandom(256 * 1024))
    with open(base / "disk.img", "wb") as disk:  # mostly holes, some data
        disk.truncate(50 * MiB)
        for i in range(8):
            disk.seek(i * 50 * MiB // 8)
            disk.write(bytes([i]) * 65536)
    (base / "config.json").write_text('{"sandbox": "sb-42", "vcpus": 2, "memory_mib": 10}\n')
    (base / "metadata.json").write_text('{"created_by": "snapshot_example.py", "kind": "checkpoint"}\n')
    return [
        File("checkpoint/memory.dump", read_only=True),
        File("checkpoint/state", read_only=True),
        File("disk.img"),
        File("config.json"),
        File("metadata.json"),
    ]


def progress_bar(verb: str) -> Optional[Callable[[Progress], None]]:
    """A progress callback drawing one line on a terminal, or None."""
    if not sys.stdout.isatty():
        return None
    width = 30

    def draw(p: Progress) -> None:
        filled = int(p.fraction * width)
        bar = "#" * filled + "-" * (width - filled)
        phase = p.phase.name.lower() if isinstance(p.phase, Phase) else str(p.phase)
        sys.stdout.write(
            f"\r{verb:8} [{bar}] {p.files_done}/{p.files_total} files "
            f"{p.bytes_done / MiB:6.1f}/{p.bytes_total / MiB:.1f} MiB  {phase:<10}"
        )
        if p.phase == Phase.DONE:
            sys.stdout.write("\n")
        sys.stdout.flush()

    return draw


def main(argv: List[str]) -> int:
    work = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="snapshotter-py-example-"))
    keep = len(argv) > 1
    src, root, out = work / "sandbox", work / "store", work / "restored"
    try:
        files = make_checkpoint(src)
        print(f"libsnapshotter {snapshotter.library_version()} ({snapshotter.library_path()})")
        with Snapshotter(root, gc=GCOptions(interval_seconds=0)) as store:
            t0 = time.monotonic()
            r = store.snapshot("sandbox", "v1", src, files, progress=progress_bar("snapshot"))
            print(f"snapshot sandbox:v1: {r.files_stored} new content files, "
                  f"{r.bytes_read / MiB:.1f} MiB read in {time.monotonic() - t0:.3f} s")

            t0 = time.monotonic()
            r = store.restore("sandbox", "v1", out, overwrite=True, progress=progress_bar("restore"))
            print(f"restore: {r.files_linked} linked, {r.files_decoded} decoded "
                  f"in {time.monotonic() - t0:.3f} s into {out}")

            for f in store.files("sandbox", "v1"):
                flag = "  (read-only)" if f.read_only else ""
                print(f"  {f.relative_path:<24} {f.size:>10} bytes  {f.digest}{flag}")

        for f in files:
            if not filecmp.cmp(src / f.relative_path, out / f.relative_path, shallow=False):
                print(f"MISMATCH: {f.relative_path}", file=sys.stderr)
                return 1
        same_inode = os.stat(src / "checkpoint/memory.dump").st_ino == os.stat(out / "checkpoint/memory.dump").st_ino
        print(f"every file matches; memory.dump restored as a hard link: {same_inode}")
        return 0
    except snapshotter.SnapshotterError as e:
        print(f"failed: {e} ({e.status_name})", file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
