"""examples/python/snapshot_example.py runs, and draws its bar only on a terminal."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples/python/snapshot_example.py"

pytestmark = pytest.mark.skipif(not EXAMPLE.exists(), reason="not run from the repository")


def test_example_round_trip_without_a_terminal(tmp_path):
    r = subprocess.run([sys.executable, str(EXAMPLE), str(tmp_path / "work")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "snapshot sandbox:v1: 5 new content files" in r.stdout
    assert "every file matches; memory.dump restored as a hard link: True" in r.stdout
    assert "[####" not in r.stdout and "\r" not in r.stdout


def test_example_draws_a_progress_bar_on_a_terminal(tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), str(tmp_path / "work")],
                            stdout=slave, stderr=subprocess.STDOUT, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(120) == 0
    out = b"".join(chunks).decode()
    assert "restore  [##############################] 5/5 files" in out
    assert "every file matches" in out
