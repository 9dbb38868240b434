#!/usr/bin/env bash
# Builds the Debian packages from a tree staged by `make install
# DESTDIR=STAGE PREFIX=/usr` (the Makefile's `deb` target does both):
#   libsnapshotter0     the shared library (SONAME libsnapshotter.so.0)
#   libsnapshotter-dev  header, snapshotter.pc, the libsnapshotter.so link
#   snapshotctl         the tool, its man page, bash/zsh/fish completions
# with dpkg-deb from one tree per package; the system libraries they
# need come from dpkg-shlibdeps.
#
#   packaging/deb/build.sh STAGE OUTDIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
stage="$(cd "$1" && pwd)"
mkdir -p "$2"
out="$(cd "$2" && pwd)"

version="$(sed -n 's/^#define SNAPSHOTTER_VERSION_STRING "\(.*\)"/\1/p' "$repo/include/snapshotter.h")"
[ -n "$version" ] || { echo "deb: no SNAPSHOTTER_VERSION_STRING in the header" >&2; exit 1; }
arch="$(dpkg --print-architecture)"
homepage="$(sed -n 's/^URL: //p' "$repo/pkgconfig/snapshotter.pc.in")"
maintainer="${DEB_MAINTAINER:-The libsnapshotter Authors <maintainers@libsnapshotter.invalid>}"
[ -f "$stage/usr/lib/libsnapshotter.so.$version" ] || { echo "deb: $stage has no usr/lib/libsnapshotter.so.$version (make install DESTDIR=$stage PREFIX=/usr)" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-deb.XXXXXX")"
trap 'rm -rf "$work"' EXIT

# put PKG FILE...: moves FILE (relative to the stage) into PKG's tree.
put() {
    local pkg="$1" f; shift
    for f in "$@"; do
        mkdir -p "$work/$pkg/$(dirname "$f")"
        cp -a "$stage/$f" "$work/$pkg/$f"
    done
}
put libsnapshotter0 "usr/lib/libsnapshotter.so.$version" usr/lib/libsnapshotter.so.0
put libsnapshotter-dev usr/include/snapshotter.h usr/lib/pkgconfig/snapshotter.pc usr/lib/libsnapshotter.so
put snapshotctl usr/bin/snapshotctl usr/share/man/man1/snapshotctl.1 \
    usr/share/bash-completion/completions/snapshotctl usr/share/zsh/site-functions/_snapshotctl \
    usr/share/fish/vendor_completions.d/snapshotctl.fish
# /usr/lib is on the linker's default path: no rpath for programs built
# against the package.
sed -i 's| -Wl,-rpath,${libdir}||' "$work/libsnapshotter-dev/usr/lib/pkgconfig/snapshotter.pc"
# Debian's zsh reads packaged completions from vendor-completions.
mkdir -p "$work/snapshotctl/usr/share/zsh/vendor-completions"
mv "$work/snapshotctl/usr/share/zsh/site-functions/_snapshotctl" "$work/snapshotctl/usr/share/zsh/vendor-completions/"
rmdir "$work/snapshotctl/usr/share/zsh/site-functions"
gzip -9n "$work/snapshotctl/usr/share/man/man1/snapshotctl.1"
# bash-completion sources the file: no interpreter line. A library is not
# executable.
sed -i '1{/^#!/d}' "$work/snapshotctl/usr/share/bash-completion/completions/snapshotctl"
chmod 0644 "$work/libsnapshotter0/usr/lib/libsnapshotter.so.$version"

# The packages are native (their version is the header's): changelog.gz is
# in Debian's format and points at the project's CHANGELOG.md, shipped
# beside it; its date is the release's in CHANGELOG.md.
released="$(sed -n "s/^## $version - \([0-9-]*\).*/\1/p" "$repo/CHANGELOG.md")"
[ -n "$released" ] || { echo "deb: CHANGELOG.md has no '## $version - DATE' entry" >&2; exit 1; }
for pkg in libsnapshotter0 libsnapshotter-dev snapshotctl; do
    doc="$work/$pkg/usr/share/doc/$pkg"
    mkdir -p "$doc" "$work/$pkg/DEBIAN"
    install -m 0644 "$here/copyright" "$doc/copyright"
    gzip -9nc "$repo/CHANGELOG.md" >"$doc/CHANGELOG.md.gz"
    printf 'libsnapshotter (%s) unstable; urgency=medium\n\n  * Release %s: see CHANGELOG.md.gz in this directory.\n\n -- %s  %s\n' \
        "$version" "$version" "$maintainer" "$(LC_ALL=C date -u -R -d "$released 00:00:00")" | gzip -9n >"$doc/changelog.gz"
done

# System-library dependencies: dpkg-shlibdeps reads debian/control.
mkdir -p "$work/src/debian"
printf 'Source: libsnapshotter\n\nPackage: libsnapshotter0\nArchitecture: any\n\nPackage: snapshotctl\nArchitecture: any\n' \
    >"$work/src/debian/control"
shlibs() {  # PKG FILE -> the Depends value
    (cd "$work/src" && dpkg-shlibdeps -O -x"$1" -e"$2" 2>"$work/shlibdeps-$1.log") | sed -n 's/^shlibs:Depends=//p'
}
lib_depends="$(shlibs libsnapshotter0 "$work/libsnapshotter0/usr/lib/libsnapshotter.so.$version")"
ctl_depends="$(shlibs snapshotctl "$work/snapshotctl/usr/bin/snapshotctl")"
[ -n "$lib_depends" ] && [ -n "$ctl_depends" ] || { cat "$work"/shlibdeps-*.log >&2; echo "deb: dpkg-shlibdeps found nothing" >&2; exit 1; }
# libcurl is opened when the first HTTP client needs it (dlopen of
# libcurl.so.4, Sources/CCurl), so dpkg-shlibdeps cannot see it. 7.49 has
# every option the HTTP layer sets (HTTP/2 with prior knowledge the newest).
lib_depends="$lib_depends, libcurl4 (>= 7.49.0)"
ctl_depends="$ctl_depends, libcurl4 (>= 7.49.0)"

# Programs linked against the library depend on this version or newer
# (the SONAME major promises the rest).
printf 'libsnapshotter 0 libsnapshotter0 (>= %s)\n' "$version" >"$work/libsnapshotter0/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' >"$work/libsnapshotter0/DEBIAN/triggers"

control() {  # PKG SECTION DEPENDS SUMMARY (long description on stdin)
    local size
    size="$(du -sk --exclude=DEBIAN "$work/$1" | cut -f1)"
    {
        printf 'Package: %s\nVersion: %s\nArchitecture: %s\nMaintainer: %s\n' "$1" "$version" "$arch" "$maintainer"
        printf 'Installed-Size: %s\nDepends: %s\nSection: %s\nPriority: optional\nHomepage: %s\n' "$size" "$3" "$2" "$homepage"
        printf 'Description: %s\n' "$4"
        sed -e 's/^$/./' -e 's/^/ /'
    } >"$work/$1/DEBIAN/control"
}
control libsnapshotter0 libs "$lib_depends" "snapshot and restore sets of files through a content-addressed store" <<'TXT'
libsnapshotter snapshots a set of files (memory dumps, device state, disk
images, configs) into a content-addressed store and restores them
elsewhere: read-only files are hard-linked, others stored once per content
in a sparse format. Snapshots can be published to an OCI registry and their
content moved through S3-compatible storage or the Dragonfly peer daemon.

This package holds the shared library (C ABI).
TXT
control libsnapshotter-dev libdevel \
    "libsnapshotter0 (= $version), liblmdb-dev, libxxhash-dev" \
    "snapshot and restore sets of files (development files)" <<'TXT'
The C header (snapshotter.h), the pkg-config file (snapshotter.pc) and the
libsnapshotter.so link, to build programs against libsnapshotter:
  cc app.c $(pkg-config --cflags --libs snapshotter)
TXT
control snapshotctl utils "$ctl_depends" "snapshot and restore sets of files (command-line tool)" <<'TXT'
snapshotctl snapshots, restores, lists, verifies and garbage-collects
libsnapshotter stores, and publishes snapshots to OCI registries. The
library is linked in. With a man page and bash, zsh and fish completions.
TXT

rm -f "$out"/*.deb
for pkg in libsnapshotter0 libsnapshotter-dev snapshotctl; do
    (cd "$work/$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z | xargs -0 md5sum >DEBIAN/md5sums)
    find "$work/$pkg" -type d -exec chmod 0755 {} +
    chmod 0644 "$work/$pkg"/DEBIAN/*
    dpkg-deb --root-owner-group -Zxz --build "$work/$pkg" "$out/${pkg}_${version}_${arch}.deb" >/dev/null
    echo "deb: $out/${pkg}_${version}_${arch}.deb"
done
