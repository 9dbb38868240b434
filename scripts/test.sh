#!/usr/bin/env bash
# Runs every test: installs what is missing, checks the layers' imports and
# the sources' shape, builds every product and runs the Swift test suite
# (Swift Testing) under AddressSanitizer, then under ThreadSanitizer, then
# the fuzzers, the C ABI, the installed CLI, the bindings' suites and the
# wheel and Debian packages. Exits non-zero when anything fails. The services the tests need (registry, S3, Dragonfly
# stand-in) are started with scripts/services.sh; the trap stops them however
# the script ends.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

# ---------------------------------------------------------------- services --
# scripts/services.sh starts the services below; stop_services (the trap)
# stops them and removes the scratch directory however the script ends.
TEST_TMP="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-test.XXXXXX")"
export TEST_TMP
stop_services() {
    local status=$?
    if [ -n "${SERVICES_DIR:-}" ]; then scripts/services.sh stop "$SERVICES_DIR" >/dev/null 2>&1 || true; fi
    rm -rf "$TEST_TMP"
    exit "$status"
}
trap stop_services EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILED=()
# run_suite NAME CMD...: runs one suite, records a failure and goes on, so
# one failing suite does not hide the others' results.
run_suite() {
    local name="$1"; shift
    section "$name"
    local t0; t0=$(now_ns)
    if "$@"; then
        echo "--> $name: passed ($(elapsed_ms "$t0" "$(now_ns)") ms)"
    else
        echo "--> $name: FAILED (exit $?)"
        FAILED+=("$name")
    fi
}

# ------------------------------------------------------------------- setup --
section "setup"
scripts/setup.sh
ensure_swift_on_path
swift --version 2>&1 | head -1

# ---------------------------------------------------------------- services --
# Real servers on 127.0.0.1 (scripts/services.sh): docker-registry plain,
# TLS + Basic and token auth, a fault proxy and a hostile registry; moto's
# S3 server in strict signature mode behind a fault proxy, and the Dragonfly
# daemon stand-in. Tests find them through the env file; the trap stops
# them.
section "services"
SERVICES_DIR="$TEST_TMP/services"
scripts/services.sh start "$SERVICES_DIR"
export SNAPSHOTTER_TEST_SERVICES="$SERVICES_DIR/services.env"

# ------------------------------------------------------------------ layout --
# The layers import only what docs/design-notes.md ("Targets") allows, and
# no Swift file or function outgrows the shape the style asks for.
run_suite "layers and shape" sh -c 'scripts/check-layers.py && scripts/check-shape.py'

# ------------------------------------------------------------- Swift tests --
# swift test, then one plain "swift: N passed, N failed" line from Swift
# Testing's own summary (XCTest, with no tests, prints "Executed 0 tests").
swift_tests() {  # LABEL [swift test arguments...]
    local label="$1" log="$TEST_TMP/swift-test-$RANDOM.log" rc total failed
    shift
    swift test "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
    total=$(grep -aoE 'Test run with [0-9]+ tests?' "$log" | tail -n 1 | grep -oE '[0-9]+' || true)
    if [ -n "$total" ]; then
        failed=$(grep -aE 'Test .* failed after' "$log" | grep -avc 'Test run with' || true)
        echo "$label: $((total - failed)) passed, $failed failed"
    fi
    return "$rc"
}
# The one Swift pass: every suite, Dragonfly's included, built and run
# under AddressSanitizer (there is one build of the library; this also
# builds every product: snapshotctl, the bench tool, the lease tests'
# child). LeakSanitizer stays on; scripts/lsan.supp silences only leaks
# inside the toolchain's Foundation and XCTest, which the library does not
# link.
asan_tests() {
    (
        export ASAN_OPTIONS="${ASAN_OPTIONS:-}${ASAN_OPTIONS:+:}detect_leaks=1"
        export LSAN_OPTIONS="suppressions=$REPO_ROOT/scripts/lsan.supp${LSAN_OPTIONS:+:}${LSAN_OPTIONS:-}"
        swift build --build-tests --sanitize=address --scratch-path .build/asan &&
            swift_tests "swift (ASan)" --skip-build --sanitize=address --scratch-path .build/asan
    )
}
run_suite "swift test, AddressSanitizer" asan_tests

# The engine's threads under ThreadSanitizer: every suite but "Registry
# against real servers" (RegistryServiceTests), whose stall and cancel tests
# bound how long a transfer may take and fail under TSan's 5-10x slowdown;
# the engine's threads are exercised by the other suites.
TSAN_SKIP="${TSAN_SKIP:-RegistryServiceTests}"
tsan_tests() {
    (
        swift build --build-tests --sanitize=thread --scratch-path .build/tsan &&
            swift_tests "swift (TSan)" --skip-build --sanitize=thread --scratch-path .build/tsan \
                --skip "$TSAN_SKIP"
    )
}
run_suite "swift test, ThreadSanitizer" tsan_tests

# -------------------------------------------------------------------- fuzz --
# libFuzzer over the parsers of outside data (scripts/fuzz.sh): each target
# runs FUZZ_SECONDS (15 here) from its seed corpus; a crash fails the suite
# and prints the input's path.
run_suite "fuzz (libFuzzer)" env FUZZ_SECONDS="${FUZZ_SECONDS:-15}" scripts/fuzz.sh

# ------------------------------------------------------------------ C tests --
# Release libsnapshotter.so (Swift runtime linked in), installed into a
# private prefix; the header, export, toolchain-free and C suites run against
# that copy through pkg-config (Tests/c/run.sh).
run_suite "C ABI tests" make test-c

# snapshotctl as installed (the same private prefix): run with the Swift
# toolchain out of the environment, its man page and completions.
run_suite "installed snapshotctl" make test-cli

# ------------------------------------------------------------ Go / Python --
# The bindings link the library installed by the C section, through
# pkg-config, and run end to end against the registry services.
export PKG_CONFIG_PATH="$REPO_ROOT/.build/test-prefix/lib/pkgconfig"
export SERVICES_ENV="$SNAPSHOTTER_TEST_SERVICES"
run_suite "Go binding tests" bash bindings/go/test.sh
run_suite "Python binding tests" env PREFIX="$REPO_ROOT/.build/test-prefix" bash bindings/python/test.sh

# ---------------------------------------------------------------- packages --
# The wheel and the Debian packages, built from the release build the C
# section made (make wheel deb), installed where no Swift toolchain or build
# tree is visible (mount namespaces; the debs into overlays, so the machine
# is unchanged), running the Python and C examples (scripts/test-packages.sh).
run_suite "packages (wheel, deb)" scripts/test-packages.sh

# ----------------------------------------------------------------- summary --
section "summary"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "FAILED: ${FAILED[*]}"
    exit 1
fi
echo "all test suites passed"
