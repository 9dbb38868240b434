# shellcheck shell=bash
# Helpers shared by the scripts in scripts/ and bench/. Source it; it does
# nothing on its own.

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export REPO_ROOT

# Puts the Swift toolchain on PATH when it is installed at /opt/swift but
# not on PATH yet (a fresh shell, CI).
ensure_swift_on_path() {
    if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
        export PATH="/opt/swift/usr/bin:$PATH"
    fi
    if ! command -v swift >/dev/null 2>&1; then
        echo "error: no Swift toolchain found (expected swift on PATH or at /opt/swift/usr/bin)" >&2
        return 1
    fi
}

# Nanoseconds since the epoch.
now_ns() { date +%s%N; }

# Milliseconds between two now_ns readings, with one decimal.
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) / 1e6 }'; }

# A banner line for a section of output.
section() { printf '\n==> %s\n' "$*"; }

# Builds snapshotctl in release mode as it ships (the Makefile's `ctl`:
# the Swift runtime linked in, as in the packages and the library) and
# prints the path of the binary. Benchmarks measure that build: a build on
# the toolchain's shared runtime maps ~3 MB more, and switching between
# the two rebuilds everything in .build/release.
build_release_snapshotctl() {
    local bin_dir
    (cd "$REPO_ROOT" && swift build -c release --product snapshotctl -Xswiftc -static-stdlib >&2) || return 1
    bin_dir="$(cd "$REPO_ROOT" && swift build -c release -Xswiftc -static-stdlib --show-bin-path)" || return 1
    [ -x "$bin_dir/snapshotctl" ] || { echo "error: $bin_dir/snapshotctl was not built" >&2; return 1; }
    echo "$bin_dir/snapshotctl"
}

# make_sample_checkpoint DIR
# Lays out a checkpoint like a sandbox's under DIR:
#   checkpoint/memory.img   10 MiB memory dump     read-only (0444)
#   checkpoint/state.bin   256 KiB runtime state   read-only (0444)
#   rootfs/disk.img         50 MiB disk image      read-write, sparse with data
#   config.json, metadata.json   small JSON files  read-write
# The read-only and read-write lists are in SAMPLE_RO and SAMPLE_RW.
SAMPLE_RO=(checkpoint/memory.img checkpoint/state.bin)
SAMPLE_RW=(rootfs/disk.img config.json metadata.json)
make_sample_checkpoint() {
    local dir="$1"
    mkdir -p "$dir/checkpoint" "$dir/rootfs"
    head -c $((10 << 20)) /dev/urandom >"$dir/checkpoint/memory.img"
    head -c $((256 << 10)) /dev/urandom >"$dir/checkpoint/state.bin"
    chmod 0444 "$dir/checkpoint/memory.img" "$dir/checkpoint/state.bin"
    # 50 MiB, mostly holes: 4 MiB of data at the start (boot blocks and
    # file-system metadata), 1 MiB at 20 MiB, 512 KiB at the very end.
    local img="$dir/rootfs/disk.img"
    truncate -s 50M "$img"
    head -c $((4 << 20)) /dev/urandom | dd of="$img" bs=1M seek=0 conv=notrunc status=none
    head -c $((1 << 20)) /dev/urandom | dd of="$img" bs=1M seek=20 conv=notrunc status=none
    head -c $((512 << 10)) /dev/urandom | dd of="$img" bs=512K seek=99 conv=notrunc status=none
    chmod 0644 "$img"
    cat >"$dir/config.json" <<'EOF'
{"sandbox":"sb-demo","image":"python:3.11-slim","cpus":2,"memoryMiB":10,"disk":"rootfs/disk.img"}
EOF
    cat >"$dir/metadata.json" <<EOF
{"checkpointedAt":"$(date -u +%Y-%m-%dT%H:%M:%SZ)","host":"$(uname -n)","reason":"demo"}
EOF
}
