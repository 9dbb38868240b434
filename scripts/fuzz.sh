#!/usr/bin/env bash
# Builds the libFuzzer driver (SnapshotterCore, with
# -sanitize=fuzzer,address, in .build/fuzz) and runs each fuzz target
# (FuzzHarness.targets) for FUZZ_SECONDS (default 20) from its seed corpus in
# Tests/fuzz/corpus/<target>. New inputs go to a temporary directory, not the
# committed corpus. Exits non-zero when any target crashes, printing the
# input's path; copy it to Tests/fuzz/crashes/<target>/ so the regular test
# (FuzzRegressionTests) replays it. FUZZ_TARGETS limits the targets run.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"
ensure_swift_on_path

SECONDS_EACH="${FUZZ_SECONDS:-20}"
TARGETS="${FUZZ_TARGETS:-spf1 json config manifest rfc3339 www-authenticate s3-xml records daemon-proto grpc-frames}"
B=.build/fuzz/debug
FLAGS=(-sanitize=fuzzer,address)
WORK="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-fuzz.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# The engine's objects, instrumented; then the driver, linked by swiftc so
# libFuzzer supplies main.
if ! swift build --scratch-path .build/fuzz --target SnapshotterCore \
    $(printf -- '-Xswiftc %s ' "${FLAGS[@]}") >"$WORK/build.log" 2>&1; then
    grep -v "^\[" "$WORK/build.log" | tail -30
    echo "fuzz: building SnapshotterCore failed" >&2
    exit 1
fi
rm -f "$B/snapshotter-fuzz"
# The objects SwiftPM lists for the current sources (no stale ones).
# The engine and every layer target below it.
mapfile -t OBJECTS < <(python3 -c 'import json, sys
for f in sys.argv[1:]:
    m = json.load(open(f))
    print("\n".join(v["object"] for k, v in m.items() if k and "object" in v))' \
    "$B"/Snapshotter{System,Store,Metadata,Remote,Core}.build/output-file-map.json)
# shellcheck disable=SC2046
swiftc "${FLAGS[@]}" -parse-as-library -g Tests/fuzz/driver/FuzzDriver.swift -module-name snapshotter_fuzz_driver \
    -I "$B/Modules" -I Sources/CXXHash -I Sources/CLMDB \
    -Xcc -fmodule-map-file="$B/CShim.build/module.modulemap" \
    -Xcc -fmodule-map-file="$B/CCurl.build/module.modulemap" \
    -o "$B/snapshotter-fuzz" "${OBJECTS[@]}" "$B"/CShim.build/*.o "$B"/CCurl.build/*.o \
    $(pkg-config --libs libxxhash lmdb) 2>&1 | grep -v "Cannot export local symbol" || true
test -x "$B/snapshotter-fuzz" || { echo "fuzz: linking the driver failed" >&2; exit 1; }

passed=0
failed=0
for t in $TARGETS; do
    mkdir -p "$WORK/$t/new" "$WORK/$t/artifacts"
    log="$WORK/$t/log"
    if FUZZ_TARGET="$t" "$B/snapshotter-fuzz" -max_total_time="$SECONDS_EACH" -print_final_stats=1 \
        -artifact_prefix="$WORK/$t/artifacts/" "$WORK/$t/new" "Tests/fuzz/corpus/$t" >"$log" 2>&1; then
        stats=$(grep -E "^#[0-9]+.*(DONE|pulse|NEW)" "$log" | tail -1 | sed -E 's/^#([0-9]+)\s+\S+\s+/\1 execs, /')
        echo "fuzz $t: ok ($stats)"
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        tail -40 "$log"
        keep="${TMPDIR:-/tmp}/snapshotter-fuzz-crashes/$t"
        mkdir -p "$keep"
        for a in "$WORK/$t/artifacts"/*; do
            [ -e "$a" ] || continue
            cp "$a" "$keep/"
            echo "fuzz $t: CRASH, input saved at $keep/$(basename "$a") (add it to Tests/fuzz/crashes/$t/)"
        done
    fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
