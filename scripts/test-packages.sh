#!/usr/bin/env bash
# Builds the Python wheel and the Debian packages (`make wheel deb`, on the
# release build already in .build: scripts/test.sh runs this after the C
# tests made it) and checks them as a user gets them:
#   - one version everywhere: header, CHANGELOG.md, pyproject, wheel, debs,
#     the packaged snapshotter.pc and snapshotctl --version;
#   - the license in every package, one homepage URL;
#   - the wheel, installed into a fresh venv in a mount namespace where
#     neither the Swift toolchain, the repository's .build nor the system's
#     liblmdb, libxxhash and libcurl can be seen (bind-mounted over), runs
#     examples/python with its own copies, and with the registry services
#     running (SERVICES_ENV or SNAPSHOTTER_TEST_SERVICES, as scripts/test.sh
#     sets), publishes to and fetches from the TLS registry;
#   - the debs, installed with `apt-get install ./*.deb` in a mount namespace
#     whose /usr, /etc and /var are overlays on a tmpfs (the machine itself
#     is never changed), with no toolchain and no .build: examples/c builds
#     with pkg-config alone and runs, snapshotctl --version answers, and
#     `apt-get purge` removes them again.
# Then prints each package's size, its Depends and the wheel's bundled
# libraries, and "packages: N passed, M failed". Needs root (mount
# namespaces), as scripts/test.sh's CI run has.
#
#   scripts/test-packages.sh            # alone: builds what is missing first
set -euo pipefail
# (pipelines into grep read all their input: with pipefail, a grep -q that
# stops early fails its writer with SIGPIPE)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

VERSION="$(sed -n 's/^#define SNAPSHOTTER_VERSION_STRING "\(.*\)"/\1/p' include/snapshotter.h)"
OUT="$REPO_ROOT/.build/packages"
SELF="$REPO_ROOT/scripts/test-packages.sh"
CLEAN_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

# ---- inside a mount namespace (this script runs itself there) ------------

# What a user of a package has: no Swift toolchain, no build tree, no
# variables that point at one.
hide_build_tree() {
    [ -d /opt/swift ] && mount -t tmpfs -o ro,size=4k tmpfs /opt/swift
    mount -t tmpfs -o ro,size=4k tmpfs "$REPO_ROOT/.build"
    export PATH="$CLEAN_PATH"
    unset PKG_CONFIG_PATH SNAPSHOTTER_LIBRARY LD_LIBRARY_PATH LIBRARY_PATH
    if command -v swift >/dev/null 2>&1; then echo "a swift is still on PATH: $(command -v swift)" >&2; return 1; fi
    if [ -e "$REPO_ROOT/.build/release" ]; then echo ".build is still visible" >&2; return 1; fi
}

inside_wheel() {
    local work="$1" services="${2:-}" lib path
    hide_build_tree
    # The system's copies of what the wheel bundles read as empty files.
    for lib in liblmdb.so.0 libxxhash.so.0 libcurl.so.4; do
        path="$(ldconfig -p | awk -v l="$lib" '$1 == l && !p { print $NF; p = 1 }')"
        [ -n "$path" ] || { echo "no system $lib to hide" >&2; return 1; }
        mount --bind /dev/null "$(readlink -f "$path")"
    done
    python3 -m venv "$work/venv"
    "$work/venv/bin/pip" install -q --no-index --no-deps --disable-pip-version-check "$work"/snapshotter-*.whl
    cd "$work"
    "$work/venv/bin/python" - "$VERSION" <<'PY'
import os, sys
import snapshotter
want = sys.argv[1]
path = snapshotter.library_path()
pkg = os.path.dirname(snapshotter.__file__)
assert path == os.path.join(pkg, "_lib", "libsnapshotter.so.0"), path
assert snapshotter.library_version() == want == snapshotter.__version__, (snapshotter.library_version(), want)
libs = os.path.join(os.path.dirname(pkg), "snapshotter.libs")
maps = open("/proc/self/maps").read().split()
for name in ("liblmdb", "libxxhash", "libcurl"):
    mapped = {m for m in maps if os.path.basename(m).startswith(name)}
    assert mapped and all(m.startswith(libs + "/") for m in mapped), (name, mapped)
print("wheel: library", path, "version", want, "with lmdb, xxhash and curl from", libs)
PY
    "$work/venv/bin/python" "$work/snapshot_example.py" "$work/example" >"$work/example.log" 2>&1 ||
        { cat "$work/example.log" >&2; return 1; }
    grep -q "every file matches" "$work/example.log" || { cat "$work/example.log" >&2; return 1; }
    echo "wheel: examples/python ran: $(grep "every file matches" "$work/example.log")"
    if [ -z "$services" ]; then
        echo "wheel: no SERVICES_ENV: the HTTPS registry round trip is skipped"
        return 0
    fi
    # The bundled libcurl and OpenSSL over HTTPS with a CA file and Basic
    # auth: publish, forget the local record, fetch the config back.
    "$work/venv/bin/python" - "$services" "$work/tls" <<'PY'
import filecmp, os, sys, uuid
from snapshotter import File, Registry, Snapshotter
env = dict(l.split("=", 1) for l in open(sys.argv[1]).read().splitlines() if "=" in l and not l.startswith("#"))
work = sys.argv[2]
base = os.path.join(work, "base")
os.makedirs(base)
with open(os.path.join(base, "state.bin"), "wb") as f:
    f.write(os.urandom(1 << 16))
registry = Registry(env["REGISTRY_TLS"], namespace="wheel", username=env["REGISTRY_TLS_USER"],
                    password=env["REGISTRY_TLS_PASSWORD"], ca_file=env["REGISTRY_TLS_CA"])
name = "tls-" + uuid.uuid4().hex[:12]
with Snapshotter(os.path.join(work, "store"), registry=registry) as s:
    s.snapshot(name, "v1", base, [File("state.bin")])
    s.snapshot(name, "keep", base, [File("state.bin")])
    s.delete(name, "v1")
    s.restore(name, "v1", os.path.join(work, "out"))
assert filecmp.cmp(os.path.join(base, "state.bin"), os.path.join(work, "out", "state.bin"), shallow=False)
print("wheel: published to and fetched from", env["REGISTRY_TLS"], "(HTTPS, CA file, Basic auth) with the bundled libcurl")
PY
}

inside_deb() {
    local work="$1" d
    mount -t tmpfs tmpfs "$work/overlay"
    for d in usr etc var; do
        mkdir -p "$work/overlay/upper/$d" "$work/overlay/work/$d"
        mount -t overlay overlay -o "lowerdir=/$d,upperdir=$work/overlay/upper/$d,workdir=$work/overlay/work/$d" "/$d"
    done
    hide_build_tree
    cd "$work/debs"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
        ./libsnapshotter0_*.deb ./libsnapshotter-dev_*.deb ./snapshotctl_*.deb >"$work/apt.log" 2>&1 ||
        { cat "$work/apt.log" >&2; return 1; }
    [ "$(pkg-config --modversion snapshotter)" = "$VERSION" ] || { echo "pkg-config: $(pkg-config --modversion snapshotter)" >&2; return 1; }
    # shellcheck disable=SC2046
    gcc -std=c11 -Wall -Wextra -Werror -O2 -o "$work/c-example" "$work/snapshot_example.c" \
        $(pkg-config --cflags --libs snapshotter) -lpthread
    # /lib is /usr/lib on Debian 12 (merged /usr); ld.so's cache names either.
    ldd "$work/c-example" | grep -E 'libsnapshotter\.so\.0 => (/usr)?/lib/libsnapshotter\.so\.0 ' >/dev/null ||
        { ldd "$work/c-example" >&2; return 1; }
    mkdir "$work/c-example-run"
    "$work/c-example" "$work/c-example-run" >"$work/c-example.log" 2>&1 || { cat "$work/c-example.log" >&2; return 1; }
    grep -q "^libsnapshotter $VERSION\$" "$work/c-example.log" || { cat "$work/c-example.log" >&2; return 1; }
    echo "deb: examples/c built with pkg-config alone ($(pkg-config --cflags --libs snapshotter)) and ran"
    [ "$(snapshotctl --version)" = "$VERSION" ] || { echo "snapshotctl --version: $(snapshotctl --version)" >&2; return 1; }
    for f in /usr/share/man/man1/snapshotctl.1.gz /usr/share/bash-completion/completions/snapshotctl \
        /usr/share/zsh/vendor-completions/_snapshotctl /usr/share/fish/vendor_completions.d/snapshotctl.fish; do
        [ -s "$f" ] || { echo "missing $f" >&2; return 1; }
    done
    echo "deb: snapshotctl --version: $(snapshotctl --version); man page and completions in place"
    DEBIAN_FRONTEND=noninteractive apt-get purge -y -q snapshotctl libsnapshotter-dev libsnapshotter0 >>"$work/apt.log" 2>&1 ||
        { cat "$work/apt.log" >&2; return 1; }
    if [ -e /usr/lib/libsnapshotter.so.0 ] || ldconfig -p | grep libsnapshotter >/dev/null; then
        echo "purge left the library behind" >&2; return 1
    fi
    echo "deb: apt-get purge removed all three"
}

case "${1:-}" in
--inside-wheel) inside_wheel "$2" "${3:-}"; exit ;;
--inside-deb) inside_deb "$2"; exit ;;
esac

# ---- checks ----------------------------------------------------------------
# Each check returns non-zero itself (errexit does not apply inside `if`).

[ "$(id -u)" -eq 0 ] || { echo "test-packages: needs root (mount namespaces, apt-get in an overlay)" >&2; exit 2; }
TMP="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-packages.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

PASSED=0
FAILED=()
check() {  # NAME CMD...: one check, its output indented
    local name="$1"; shift
    if "$@" 2>&1 | sed 's/^/    /'; [ "${PIPESTATUS[0]}" -eq 0 ]; then
        echo "ok: $name"; PASSED=$((PASSED + 1))
    else
        echo "FAILED: $name"; FAILED+=("$name")
    fi
}

ensure_swift_on_path
make -s wheel deb >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log" >&2; echo "test-packages: make wheel deb failed" >&2; exit 1; }
WHEEL="$(ls "$OUT"/snapshotter-*.whl)"
DEBS=("$OUT/libsnapshotter0_${VERSION}_"*.deb "$OUT/libsnapshotter-dev_${VERSION}_"*.deb "$OUT/snapshotctl_${VERSION}_"*.deb)
for f in "$WHEEL" "${DEBS[@]}"; do [ -f "$f" ] || { echo "test-packages: $f was not built" >&2; exit 1; }; done
python3 -m zipfile -e "$WHEEL" "$TMP/wheel"
dpkg-deb -x "${DEBS[1]}" "$TMP/dev"

versions_agree() {
    local got=() v
    got+=("CHANGELOG.md=$(sed -n '/^## [0-9]/{s/^## \([^ ]*\).*/\1/p;q}' CHANGELOG.md)")
    got+=("pyproject=$(sed -n 's/^version = "\(.*\)"/\1/p' bindings/python/pyproject.toml)")
    got+=("wheel name=$(basename "$WHEEL" | cut -d- -f2)")
    got+=("wheel METADATA=$(sed -n 's/^Version: //p' "$TMP"/wheel/snapshotter-*.dist-info/METADATA)")
    for d in "${DEBS[@]}"; do got+=("$(dpkg-deb -f "$d" Package)=$(dpkg-deb -f "$d" Version)"); done
    got+=("snapshotter.pc=$(sed -n 's/^Version: //p' "$TMP/dev/usr/lib/pkgconfig/snapshotter.pc")")
    echo "header: $VERSION; ${got[*]}"
    for v in "${got[@]}"; do [ "${v#*=}" = "$VERSION" ] || { echo "$v differs from the header's $VERSION"; return 1; }; done
    [ "$(grep -c "^## $VERSION " CHANGELOG.md)" -eq 1 ] || { echo "CHANGELOG.md has no single '## $VERSION ' entry"; return 1; }
}
check "one version: header, CHANGELOG, pyproject, wheel, debs, snapshotter.pc" versions_agree

license_everywhere() {
    local url d
    grep -q "Apache License" LICENSE || return 1
    cmp LICENSE bindings/python/LICENSE && cmp LICENSE bindings/go/LICENSE || return 1
    cmp LICENSE "$TMP"/wheel/snapshotter-*.dist-info/licenses/LICENSE || return 1
    grep -qx 'License-Expression: Apache-2.0' "$TMP"/wheel/snapshotter-*.dist-info/METADATA || { echo "wheel: no Apache-2.0 license"; return 1; }
    for d in liblmdb0 libxxhash0 libcurl4 libssl3; do
        [ -s "$TMP/wheel/snapshotter.libs/licenses/$d.copyright" ] || { echo "wheel: no license of the bundled $d"; return 1; }
    done
    url="$(sed -n 's/^URL: //p' "$TMP/dev/usr/lib/pkgconfig/snapshotter.pc")"
    [[ "$url" == https://* ]] && [[ "$url" != *.invalid* ]] || { echo "snapshotter.pc URL: $url"; return 1; }
    grep -qx "Project-URL: Homepage, $url" "$TMP"/wheel/snapshotter-*.dist-info/METADATA || { echo "wheel: homepage is not $url"; return 1; }
    for d in "${DEBS[@]}"; do
        [ "$(dpkg-deb -f "$d" Homepage)" = "$url" ] || { echo "$d: Homepage differs from $url"; return 1; }
        dpkg-deb --fsys-tarfile "$d" | tar -xO --wildcards './usr/share/doc/*/copyright' | grep '^License: Apache-2.0$' >/dev/null ||
            { echo "$d: no Apache-2.0 copyright file"; return 1; }
    done
    echo "Apache-2.0 in the wheel and each deb, $(ls "$TMP/wheel/snapshotter.libs/licenses" | wc -l) licenses of bundled libraries in the wheel; homepage $url"
}
check "license and homepage in every package" license_everywhere

deb_depends() {
    local lib ctl dev
    lib="$(dpkg-deb -f "${DEBS[0]}" Depends)"; dev="$(dpkg-deb -f "${DEBS[1]}" Depends)"; ctl="$(dpkg-deb -f "${DEBS[2]}" Depends)"
    for dep in liblmdb0 libxxhash0 libcurl4 libc6; do
        [[ "$lib" == *"$dep "* ]] && [[ "$ctl" == *"$dep "* ]] || { echo "missing $dep: $lib / $ctl"; return 1; }
    done
    [[ "$dev" == "libsnapshotter0 (= $VERSION),"* ]] || { echo "libsnapshotter-dev: $dev"; return 1; }
    dpkg-deb -c "${DEBS[0]}" | grep "usr/lib/libsnapshotter.so.0 -> libsnapshotter.so.$VERSION" >/dev/null || { echo "no SONAME link"; return 1; }
    dpkg-deb -c "${DEBS[1]}" | grep "usr/lib/libsnapshotter.so -> libsnapshotter.so.0" >/dev/null || { echo "no dev link"; return 1; }
    [ "$(readelf -d "$TMP/wheel/snapshotter/_lib/libsnapshotter.so.0" | sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')" = libsnapshotter.so.0 ] ||
        { echo "the wheel's library has another SONAME"; return 1; }
    echo "Depends of the library and snapshotctl: liblmdb0, libxxhash0 and libc6 (dpkg-shlibdeps) and libcurl4"
}
check "package dependencies and the SONAME" deb_depends

# libcurl is opened when first needed, never linked: no DT_NEEDED on it and
# no curl_ symbol left for the dynamic linker (one would bind to whatever
# libcurl the process happens to have, or fail to load without one).
curl_not_linked() {
    local f
    dpkg-deb -x "${DEBS[0]}" "$TMP/lib"
    dpkg-deb -x "${DEBS[2]}" "$TMP/ctl"
    for f in "$TMP"/lib/usr/lib/libsnapshotter.so.* "$TMP/ctl/usr/bin/snapshotctl"; do
        [ -f "$f" ] && [ ! -L "$f" ] || continue
        if readelf -d "$f" | grep -E 'NEEDED.*libcurl' >/dev/null; then echo "$f needs libcurl"; return 1; fi
        if nm -D --undefined-only "$f" | grep -E ' curl_' >/dev/null; then
            echo "$f leaves curl_ symbols undefined: $(nm -D --undefined-only "$f" | grep -E ' curl_' | tr -s ' ' | tr '\n' ' ')"; return 1
        fi
    done
    echo "neither the library nor snapshotctl links libcurl or leaves a curl_ symbol undefined"
}
check "libcurl is opened when needed, not linked" curl_not_linked

cp "$WHEEL" examples/python/snapshot_example.py "$TMP/"
# The registry services of scripts/services.sh, when running (scripts/test.sh
# starts them): the wheel's libcurl then also talks HTTPS to one.
SERVICES="${SERVICES_ENV:-${SNAPSHOTTER_TEST_SERVICES:-}}"
check "wheel in a fresh venv without toolchain, .build or system lmdb/xxhash/curl: examples/python, HTTPS registry" \
    unshare --mount --propagation private bash "$SELF" --inside-wheel "$TMP" "$SERVICES"

mkdir -p "$TMP/debs" "$TMP/overlay"
cp "${DEBS[@]}" "$TMP/debs/"
cp examples/c/snapshot_example.c "$TMP/"
check "apt-get install ./*.deb (overlay namespace) without toolchain: examples/c via pkg-config, snapshotctl" \
    unshare --mount --propagation private bash "$SELF" --inside-deb "$TMP"

# ---- measurements ----------------------------------------------------------
section "packages: sizes and dependencies"
for f in "$WHEEL" "${DEBS[@]}"; do
    printf '%-58s %9s bytes\n' "$(basename "$f")" "$(stat -c %s "$f")"
done
for d in "${DEBS[@]}"; do printf '%s Depends: %s\n' "$(dpkg-deb -f "$d" Package)" "$(dpkg-deb -f "$d" Depends)"; done
python3 - "$WHEEL" <<'PY'
import sys, zipfile
z = zipfile.ZipFile(sys.argv[1])
print("wheel: %d bytes unpacked; bundled in snapshotter.libs/:" % sum(i.file_size for i in z.infolist()))
for i in z.infolist():
    if i.filename.startswith("snapshotter.libs/lib") and not i.is_dir():
        print("    %-44s %9d bytes" % (i.filename[len("snapshotter.libs/"):], i.file_size))
PY
"$OUT/tools-venv/bin/auditwheel" show "$WHEEL" | sed -n '1,3p'

echo "packages: $PASSED passed, ${#FAILED[@]} failed"
[ "${#FAILED[@]}" -eq 0 ]
