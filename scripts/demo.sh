#!/usr/bin/env bash
# The demo: installs what is missing, builds snapshotctl (release), lays out
# a checkpoint like a sandbox's, snapshots it into a fresh store, restores it
# into a new directory and checks the result byte for byte, inode for inode.
# Prints each step and how long it took; exits non-zero on any mismatch.
# Set KEEP=1 to keep the temporary directory for a look afterwards.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO_ROOT"

STEPS=()
step_start() { STEP_NAME="$1"; STEP_T0=$(now_ns); section "$1"; }
step_end() { local ms; ms=$(elapsed_ms "$STEP_T0" "$(now_ns)"); STEPS+=("$(printf '%-44s %9s ms' "$STEP_NAME" "$ms")"); echo "    ($ms ms)"; }
fail() { echo "demo: FAILED: $*" >&2; exit 1; }

step_start "Install what is missing (scripts/setup.sh)"
scripts/setup.sh
ensure_swift_on_path
step_end

step_start "Build snapshotctl (release)"
BIN="$(build_release_snapshotctl)"
echo "    $BIN"
step_end

WORK="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-demo.XXXXXX")"
if [ "${KEEP:-0}" = 1 ]; then trap 'echo "kept $WORK"' EXIT; else trap 'rm -rf "$WORK"' EXIT; fi
SRC="$WORK/sandbox"     # the sandbox's checkpoint
ROOT="$WORK/store"      # a fresh snapshot store
OUT="$WORK/restored"    # where it comes back
export SNAPSHOTTER_ROOT="$ROOT"
NAME=demo/sandbox
# "Remote" metadata and content in directories: an OCI image layout as the
# registry and a directory as object storage, so a second, empty store can
# restore the snapshot with no services at all.
REMOTE=(--registry "file://$WORK/registry" --content "file://$WORK/content")
ROOT2="$WORK/store-elsewhere"; OUT2="$WORK/restored-elsewhere"

step_start "Create a sample sandbox checkpoint"
echo "    in $SRC (read-only: ${SAMPLE_RO[*]})"
make_sample_checkpoint "$SRC"
(cd "$SRC" && for f in "${SAMPLE_RO[@]}" "${SAMPLE_RW[@]}"; do
    printf '    %-24s %9s bytes, %6s KiB on disk, mode %s\n' "$f" "$(stat -c %s "$f")" "$(du -k "$f" | cut -f1)" "$(stat -c %a "$f")"
done)
step_end

ro_args=(); for f in "${SAMPLE_RO[@]}"; do ro_args+=(--ro "$f"); done
rw_args=(); for f in "${SAMPLE_RW[@]}"; do rw_args+=(--rw "$f"); done

step_start "Snapshot it as $NAME:v1"
echo "    into a fresh store at $ROOT"
"$BIN" snapshot --name "$NAME" --version v1 --base-dir "$SRC" "${ro_args[@]}" "${rw_args[@]}" "${REMOTE[@]}" | sed 's/^/    /'
echo "    published to $WORK/registry, content uploaded to $WORK/content"
step_end

step_start "Restore $NAME:v1 into a new directory"
echo "    $OUT"
"$BIN" restore --name "$NAME" --version v1 --output "$OUT" | sed 's/^/    /'
step_end

step_start "Check the restored files"
"$BIN" info --name "$NAME" --version v1 >"$WORK/config.json"
digest_of() {  # the store's hex name of a file, from the snapshot's config
    python3 -c 'import json,sys
files = json.load(open(sys.argv[1]))["files"]
print(next(f["digest"] for f in files if f["relativePath"] == sys.argv[2]).split(":", 1)[1])' "$WORK/config.json" "$1"
}
for f in "${SAMPLE_RO[@]}" "${SAMPLE_RW[@]}"; do
    cmp -s "$SRC/$f" "$OUT/$f" || fail "$f differs from the original"
    [ "$(stat -c '%a %Y' "$SRC/$f")" = "$(stat -c '%a %Y' "$OUT/$f")" ] || fail "$f: mode or mtime not restored"
    echo "    same bytes, mode and mtime: $f"
done
for f in "${SAMPLE_RO[@]}"; do
    link="$ROOT/storage/snapshot/xxh3/$(digest_of "$f")"
    [ -f "$link" ] || fail "$f: the store has no read-only link $link"
    [ "$(stat -c %i "$OUT/$f")" = "$(stat -c %i "$link")" ] || fail "$f: restored file is not a hard link to the store"
    echo "    hard link to the store (inode $(stat -c %i "$OUT/$f"), $(stat -c %h "$OUT/$f") links): $f"
done
for f in "${SAMPLE_RW[@]}"; do
    [ "$(stat -c %i "$OUT/$f")" != "$(stat -c %i "$SRC/$f")" ] || fail "$f: a read-write file must be a copy"
done
disk_kib=$(du -k "$OUT/rootfs/disk.img" | cut -f1)
[ "$disk_kib" -lt $((20 * 1024)) ] || fail "rootfs/disk.img lost its holes ($disk_kib KiB on disk)"
echo "    read-write files are copies; rootfs/disk.img is still sparse ($disk_kib KiB of 50 MiB on disk)"
step_end

step_start "Restore $NAME:v1 on a store that never saw it"
echo "    empty store $ROOT2 -> $OUT2 (manifest and config from the registry, content downloaded and verified)"
"$BIN" restore --root "$ROOT2" --name "$NAME" --version v1 --output "$OUT2" "${REMOTE[@]}" | sed 's/^/    /'
for f in "${SAMPLE_RO[@]}" "${SAMPLE_RW[@]}"; do
    cmp -s "$SRC/$f" "$OUT2/$f" || fail "$f differs from the original after the remote restore"
done
"$BIN" verify --root "$ROOT2" | sed 's/^/    /'
echo "    every file identical; the second store recorded the snapshot and its content"
step_end

step_start "Change the disk image, snapshot as v2"
printf 'new data written by the sandbox' | dd of="$SRC/rootfs/disk.img" bs=1 seek=$((30 << 20)) conv=notrunc status=none
"$BIN" snapshot --name "$NAME" --version v2 --base-dir "$SRC" "${ro_args[@]}" "${rw_args[@]}" | sed 's/^/    /'
echo "    (unchanged read-only files are recognised by inode: a stat each, no read)"
step_end

step_start "List the store and verify all content"
"$BIN" list | sed 's/^/    /'
"$BIN" verify | sed 's/^/    /'
echo "    store layout:"
(cd "$ROOT" && find . -maxdepth 3 -type d | sort | sed 's/^/      /')
step_end

section "Summary"
printf '    %s\n' "${STEPS[@]}"
echo
echo "demo: OK: snapshot and restore of a sandbox checkpoint, all files checked"
