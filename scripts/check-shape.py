#!/usr/bin/env python3
"""Checks the shape of the hand-written Swift sources: no file over 400
lines, no function (or initializer, or closure-valued property) over 80.
Usage: scripts/check-shape.py [DIR...] (default Sources). Exits 1 and names
each offender."""
import re
import sys
from pathlib import Path

MAX_FILE, MAX_FUNC = 400, 80
DECL = re.compile(r'^\s*(?:@\w+(?:\([^)]*\))?\s+)*(?:(?:public|package|internal|private|fileprivate|static|class|'
                  r'override|mutating|nonisolated|final|convenience|required)\s+)*(?:func\s+\S+|init\??\s*[(<]|deinit\b)')


def strip(line):
    """The line without string literals and // comments (brace counting)."""
    line = re.sub(r'"(?:\\.|[^"\\])*"', '""', line)
    return line.split('//', 1)[0]


def functions(lines):
    i = 0
    while i < len(lines):
        if DECL.match(lines[i]) and not lines[i].lstrip().startswith('//'):
            start, depth, opened = i, 0, False
            j = i
            while j < len(lines):
                text = strip(lines[j])
                for ch in text:
                    if ch == '{':
                        depth += 1
                        opened = True
                    elif ch == '}':
                        depth -= 1
                if opened and depth <= 0:
                    break
                if not opened and j > i and (text.strip() == '' or DECL.match(lines[j])):
                    break  # a requirement without a body
                j += 1
            if opened:
                yield start, j
            i = start + 1
            continue
        i += 1


def main(dirs):
    bad = []
    for d in dirs:
        for path in sorted(Path(d).rglob('*.swift')):
            lines = path.read_text().splitlines()
            if len(lines) > MAX_FILE:
                bad.append(f'{path}: {len(lines)} lines (at most {MAX_FILE})')
            for start, end in functions(lines):
                n = end - start + 1
                if n > MAX_FUNC:
                    bad.append(f'{path}:{start + 1}: a function of {n} lines (at most {MAX_FUNC}): {lines[start].strip()[:70]}')
    for b in bad:
        print(b)
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:] or ['Sources']))
