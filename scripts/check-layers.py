#!/usr/bin/env python3
"""Fails on an import that breaks the layering of docs/design-notes.md
("Targets"). SwiftPM lets a target import a module it does not depend on
once that module happens to be built, so Package.swift alone does not hold
the arrows; this table does. Usage: scripts/check-layers.py"""
import re
import sys
from pathlib import Path

SYSTEM_C = {'Glibc', 'Synchronization', 'CShim'}
# Each target and the modules its files may import.
ALLOWED = {
    'SnapshotterSystem': SYSTEM_C,
    'SnapshotterStore': SYSTEM_C | {'SnapshotterSystem', 'CXXHash'},
    'SnapshotterMetadata': SYSTEM_C | {'SnapshotterSystem', 'SnapshotterStore', 'CLMDB'},
    'SnapshotterRemote': SYSTEM_C | {'SnapshotterSystem', 'SnapshotterStore', 'SnapshotterMetadata', 'CCurl'},
    'SnapshotterCore': SYSTEM_C | {'SnapshotterSystem', 'SnapshotterStore', 'SnapshotterMetadata', 'SnapshotterRemote'},
    # The C ABI and the tool see the engine only (which re-exports the
    # public types of its layers).
    'Snapshotter': SYSTEM_C | {'SnapshotterCore', 'CSnapshotterABI'},
    'snapshotctl': {'Glibc', 'SnapshotterCore', 'CSnapshotterABI', 'ArgumentParser'},
}
IMPORT = re.compile(r'^\s*(?:@[\w.]+(?:\([^)]*\))?\s+)*import\s+(?:(?:struct|class|enum|func|var|let|protocol|typealias)\s+)?(\w+)')


def main():
    root = Path(__file__).resolve().parent.parent / 'Sources'
    bad = []
    for target, allowed in ALLOWED.items():
        files = sorted((root / target).rglob('*.swift'))
        if not files:
            bad.append(f'{target}: no Swift files (is the table out of date?)')
        for path in files:
            for n, line in enumerate(path.read_text().splitlines(), 1):
                m = IMPORT.match(line)
                if m and m.group(1) not in allowed:
                    bad.append(f'{path.relative_to(root.parent)}:{n}: {target} may not import {m.group(1)}')
    known = set(ALLOWED) | {'CCurl', 'CLMDB', 'CShim', 'CSnapshotterABI', 'CXXHash'}
    for d in sorted(p.name for p in root.iterdir() if p.is_dir()):
        if d not in known:
            bad.append(f'Sources/{d}: a target the layer table does not know')
    for b in bad:
        print(b)
    if bad:
        print(f'check-layers: {len(bad)} problem(s)', file=sys.stderr)
        return 1
    print(f'check-layers: {len(ALLOWED)} targets import only what their layer allows')
    return 0


if __name__ == '__main__':
    sys.exit(main())
