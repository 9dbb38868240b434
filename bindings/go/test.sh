#!/usr/bin/env bash
# Go binding tests: go vet and go test -race in bindings/go, then go vet,
# build and run of examples/go. Exits non-zero when anything fails.
#
#   PKG_CONFIG_PATH=<prefix>/lib/pkgconfig [SERVICES_ENV=DIR/services.env] bindings/go/test.sh
#
# PKG_CONFIG_PATH   must find snapshotter.pc of an installed libsnapshotter
#                   (make install PREFIX=<prefix>).
# SERVICES_ENV      optional: the file `scripts/services.sh start-registry DIR`
#                   writes (DIR/services.env). With it the end-to-end tests
#                   also run against its plain HTTP, TLS+Basic and token
#                   registries; the file:/// registry tests always run.
# GO_TEST_FLAGS     optional extra flags for go test (-run X, -count 3, ...).
# GO_BUILD_ALL=1    optional: go build -a (rebuild everything, std included).
#
# Go is Debian's golang-go (1.19), installed when missing. The build is
# offline (GOPROXY=off, GOFLAGS=-mod=mod): the module has no dependencies.
# Go 1.19's build cache does not notice a changed library, header or .pc
# file, so a digest of the three goes into CGO_CFLAGS: what links against
# libsnapshotter is rebuilt whenever it changes, the rest stays cached.
# Prints "go: N passed, N failed, N skipped".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$HERE/../.." && pwd)"

say() { printf '%s\n' "go: $*"; }
die() { printf '%s\n' "go: $*" >&2; exit 1; }

if ! command -v go >/dev/null 2>&1; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    say "installing golang-go (apt)"
    export DEBIAN_FRONTEND=noninteractive
    if ! $SUDO apt-get install -y -qq golang-go >/dev/null 2>&1; then
        $SUDO apt-get update -qq >/dev/null
        $SUDO apt-get install -y -qq golang-go >/dev/null
    fi
fi
go version

command -v pkg-config >/dev/null 2>&1 || die "pkg-config is missing (apt-get install pkg-config)"
pkg-config --exists snapshotter ||
    die "pkg-config cannot find snapshotter (PKG_CONFIG_PATH=${PKG_CONFIG_PATH:-}): run make install PREFIX=<prefix> and set PKG_CONFIG_PATH=<prefix>/lib/pkgconfig"
PC_FLAGS="$(pkg-config --cflags --libs snapshotter)"
HEADER="$(pkg-config --variable=includedir snapshotter)/snapshotter.h"
LIBRARY="$(readlink -f "$(pkg-config --variable=libdir snapshotter)/libsnapshotter.so")"
[ -f "$HEADER" ] || die "$HEADER is missing"
[ -f "$LIBRARY" ] || die "libsnapshotter.so is missing from $(pkg-config --variable=libdir snapshotter)"
LIB_ID="$( { printf '%s\n' "$PC_FLAGS"; cat "$HEADER" "$LIBRARY"; } | sha256sum | cut -c1-16)"
say "libsnapshotter $(pkg-config --modversion snapshotter) at $LIBRARY (id $LIB_ID)"

if [ -n "${SERVICES_ENV:-}" ]; then
    [ -f "$SERVICES_ENV" ] || die "SERVICES_ENV=$SERVICES_ENV does not exist"
    say "registry services from $SERVICES_ENV"
else
    say "SERVICES_ENV is not set: the plain, TLS and token registry tests are skipped"
fi

export GOFLAGS=-mod=mod GOPROXY=off GOSUMDB=off GO111MODULE=on CGO_ENABLED=1
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g} -DSNAPSHOTTER_GO_LIBRARY_ID=$LIB_ID"
BUILD_FLAGS=()
[ "${GO_BUILD_ALL:-}" = 1 ] && BUILD_FLAGS=(-a)

TMP="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-go-test.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT

rc=0
cd "$HERE"
say "go vet (bindings/go)"
go vet "${BUILD_FLAGS[@]}" ./... || rc=1

say "go test -race (bindings/go)"
# -v for the per-test lines the count below is made from; RUN lines dropped.
# shellcheck disable=SC2086
go test "${BUILD_FLAGS[@]}" -race -count=1 -timeout 170s -v ${GO_TEST_FLAGS:-} ./... >"$TMP/test.log" 2>&1 || rc=1
grep -avE '^=== (RUN|PAUSE|CONT)' "$TMP/test.log" || true
passed=$(grep -acE '^\s*--- PASS' "$TMP/test.log" || true)
failed=$(grep -acE '^\s*--- FAIL' "$TMP/test.log" || true)
skipped=$(grep -acE '^\s*--- SKIP' "$TMP/test.log" || true)

cd "$REPO_ROOT/examples/go"
say "go vet and build (examples/go)"
if go vet "${BUILD_FLAGS[@]}" ./... && go build "${BUILD_FLAGS[@]}" -o "$TMP/example" .; then
    say "run examples/go"
    if TMPDIR="$TMP" "$TMP/example"; then
        passed=$((passed + 1))
    else
        say "examples/go FAILED"
        failed=$((failed + 1))
        rc=1
    fi
else
    say "examples/go does not build"
    failed=$((failed + 1))
    rc=1
fi

say "$passed passed, $failed failed, $skipped skipped"
exit "$rc"
