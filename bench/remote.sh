#!/usr/bin/env bash
# Restore from remote through the direct S3 path and through the Dragonfly
# stand-in, against plain curl downloads of the same objects from the same
# server, in the same run. Starts the content services (moto S3 in strict
# signature mode, the dfdaemon stand-in) in a temp directory and stops them
# at the end. BENCH_MB sets the data size (256); SNAPSHOTCTL a binary to
# measure instead of a fresh release build. Also reports the bytes each
# restore process wrote to storage per restored byte (write_bytes of
# /proc/PID/io, read through GNU time's block output count, %O x 512).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/lib.sh"
cd "$REPO_ROOT"
"$REPO_ROOT/scripts/setup.sh"
ensure_swift_on_path
# SNAPSHOTCTL: measure that binary instead (an older build, for a before/after).
BIN="${SNAPSHOTCTL:-$(build_release_snapshotctl)}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-remote-bench.XXXXXX")"
SVC="$WORK/services"
trap 'scripts/services.sh stop "$SVC" >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
scripts/services.sh start-content "$SVC" >/dev/null
set -a; . "$SVC/services.env"; set +a
export AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY_ID" AWS_SECRET_ACCESS_KEY="$S3_SECRET_ACCESS_KEY"
MB="${BENCH_MB:-256}"
mkdir -p "$WORK/src"
n=8
for i in $(seq 1 $n); do head -c $((MB * 1024 * 1024 / n)) /dev/urandom > "$WORK/src/f$i"; done
files=(); for i in $(seq 1 $n); do files+=(--rw "f$i"); done
REMOTE=(--registry "file://$WORK/registry" --content "s3://$S3_BUCKET" --content-endpoint "$S3_ENDPOINT" --content-region "$S3_REGION")
"$BIN" snapshot -q --root "$WORK/a" --name bench --version v1 --base-dir "$WORK/src" "${files[@]}" "${REMOTE[@]}" >/dev/null
digests=$("$BIN" info --root "$WORK/a" --name bench --version v1 | python3 -c 'import json,sys; print(" ".join(f["digest"][5:] for f in json.load(sys.stdin)["files"]))')
now() { date +%s.%N; }
curl_all() {  # the same objects, signed by curl, 4 at a time like the restore
    local d
    for d in $digests; do
        curl -sS -f --aws-sigv4 "aws:amz:$S3_REGION:s3" --user "$S3_ACCESS_KEY_ID:$S3_SECRET_ACCESS_KEY" \
            -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -o "$WORK/curl/$d" "$S3_ENDPOINT/$S3_BUCKET/xxh3/$d" &
        while [ "$(jobs -rp | wc -l)" -ge 4 ]; do wait -n; done
    done
    wait
}
restore_times=(); curl_times=(); df_times=(); dfget_times=(); s3_writes=(); df_writes=()
for r in 1 2 3; do
    rm -rf "$WORK/curl" && mkdir -p "$WORK/curl"
    t0=$(now); curl_all; t1=$(now)
    curl_times+=("$(python3 -c "print($t1 - $t0)")")
    rm -rf "$WORK/b" "$WORK/out"
    t0=$(now)
    /usr/bin/time -f %O -o "$WORK/io" "$BIN" restore -q --root "$WORK/b" --name bench --version v1 --output "$WORK/out" "${REMOTE[@]}" >/dev/null
    t1=$(now)
    restore_times+=("$(python3 -c "print($t1 - $t0)")")
    s3_writes+=("$(tail -n 1 "$WORK/io")")
    # Through the stand-in, on a root in the daemon's directory (its output
    # must share the daemon cache's filesystem), with its cache cleared.
    curl -sS -X POST "$DRAGONFLY_CONTROL/cache/clear" >/dev/null
    rm -rf "$SVC/bench-b" "$WORK/out-df"
    t0=$(now)
    /usr/bin/time -f %O -o "$WORK/io" "$BIN" restore -q --root "$SVC/bench-b" --name bench --version v1 --output "$WORK/out-df" \
        "${REMOTE[@]}" --dragonfly "$DRAGONFLY_ENDPOINT" >/dev/null
    t1=$(now)
    df_times+=("$(python3 -c "print($t1 - $t0)")")
    df_writes+=("$(tail -n 1 "$WORK/io")")
    # The stand-in on its own: the same downloads from a gRPC client
    # (cache cleared too), what the restore through it cannot beat.
    curl -sS -X POST "$DRAGONFLY_CONTROL/cache/clear" >/dev/null
    rm -rf "$SVC/dfget" && mkdir -p "$SVC/dfget"
    dfget_times+=("$("$SERVICES_PYTHON" bench/dfget.py "$SVC/services.env" "$SVC/dfget" 4 $digests)")
done
for i in $(seq 1 $n); do cmp -s "$WORK/src/f$i" "$WORK/out-df/f$i" || { echo "f$i differs (Dragonfly)" >&2; exit 1; }; done
for i in $(seq 1 $n); do cmp -s "$WORK/src/f$i" "$WORK/out/f$i" || { echo "f$i differs" >&2; exit 1; }; done
python3 - "$MB" "${curl_times[*]}" "${restore_times[*]}" "${df_times[*]}" "${dfget_times[*]}" "${s3_writes[*]}" "${df_writes[*]}" <<'PY'
import statistics, sys
mb = int(sys.argv[1]); c, r, d, g, ws, wd = ([float(x) for x in a.split()] for a in sys.argv[2:8])
mc, mr, md, mg = statistics.median(c), statistics.median(r), statistics.median(d), statistics.median(g)
print(f"restore from remote, {mb} MiB in 8 objects (medians of 3, same moto server)")
print(f"  curl downloads (4 at a time)              {mc:7.2f} s  ({mb / mc:6.0f} MiB/s)")
print(f"  restore on an empty root, direct S3       {mr:7.2f} s  ({mb / mr:6.0f} MiB/s)   ratio {mc / mr:.2f}  (target >= 0.85)")
print(f"  restore on an empty root, via stand-in    {md:7.2f} s  ({mb / md:6.0f} MiB/s)   ratio {mc / md:.2f}  (target >= 0.85)")
print(f"  the stand-in alone (gRPC client, 4 at a time) {mg:5.2f} s  ({mb / mg:6.0f} MiB/s)   restore via stand-in / this: {mg / md:.2f}")
print(f"  bytes written by the restore process per restored byte: direct S3 {statistics.median(ws) * 512 / (mb << 20):.3f}, "
      f"via stand-in {statistics.median(wd) * 512 / (mb << 20):.3f}  (target via stand-in <= 1.05)")
print(f"  runs: curl {', '.join(f'{x:.2f}' for x in c)}; S3 {', '.join(f'{x:.2f}' for x in r)}; stand-in {', '.join(f'{x:.2f}' for x in d)}; stand-in alone {', '.join(f'{x:.2f}' for x in g)}")
PY
