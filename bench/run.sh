#!/usr/bin/env bash
# The benchmark: installs what is missing, builds snapshotctl in release
# mode, makes the sample checkpoint, a 1 GiB set of files and 2,004
# read-only files, and prints snapshotctl against cp, cp + fsync and cat on
# the same files, measured in this run (see bench/bench.py). Takes a few
# minutes and about 5 GiB of disk under $BENCH_DIR (default: $TMPDIR or
# /tmp), all removed at the end. BENCH_REPS sets the runs per side (5).
# Then the many-small-files section (bench/many_files.py): BENCH_MANY_FILES
# read-only and as many read-write files (100000; 0 skips it),
# BENCH_MANY_REPS runs per side (3), BENCH_MANY_SETS (ro,rw),
# BENCH_MANY_TMPFS=SIZE to work on a tmpfs (root; for a million files),
# BENCH_MANY_FORMAT=3 for stores that write record format 3.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/setup.sh"
ensure_swift_on_path
section "Build snapshotctl (release)"
BIN="$(build_release_snapshotctl)"
section "Benchmark"
python3 "$REPO_ROOT/bench/bench.py" --bin "$BIN" --repo "$REPO_ROOT" --reps "${BENCH_REPS:-5}"
# Many small files (bench/many_files.py): BENCH_MANY_FILES per set, 0 skips.
if [ "${BENCH_MANY_FILES:-100000}" != 0 ]; then
    section "Benchmark: many small files"
    python3 "$REPO_ROOT/bench/many_files.py" --bin "$BIN" --files "${BENCH_MANY_FILES:-100000}" \
        --reps "${BENCH_MANY_REPS:-3}" --sets "${BENCH_MANY_SETS:-ro,rw}" ${BENCH_MANY_TMPFS:+--tmpfs "$BENCH_MANY_TMPFS"} \
        ${BENCH_MANY_FORMAT:+--record-format "$BENCH_MANY_FORMAT"}
fi
