#!/usr/bin/env bash
# The installed snapshotctl (PREFIX) as a user gets it: it runs with the
# Swift toolchain absent from PATH and every library search path, reports
# the header's version, snapshots and restores, and its man page and
# bash/zsh/fish completions are installed.
set -euo pipefail
: "${PREFIX:?PREFIX of an installed libsnapshotter (make install PREFIX=...)}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
ctl="$PREFIX/bin/snapshotctl"
pass=0
fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1${2:+: $2}"; fail=$((fail + 1)); }
# No toolchain: a minimal environment, /opt/swift nowhere.
bare() { env -i PATH=/usr/bin:/bin HOME="$out" "$@"; }

want=$(sed -n 's/^#define SNAPSHOTTER_VERSION_STRING "\(.*\)"/\1/p' "$repo/include/snapshotter.h")
got=$(bare "$ctl" --version 2>&1) || true
if [ -n "$want" ] && [ "$got" = "$want" ]; then ok version; else bad version "got '$got', want '$want'"; fi

if bare ldd "$ctl" | grep -qi swift; then bad no-libswift "$(bare ldd "$ctl" | grep -i swift)"; else ok no-libswift; fi

mkdir -p "$out/base/ckpt"
head -c 100000 /dev/urandom > "$out/base/ckpt/mem"
echo '{"a":1}' > "$out/base/config.json"
if bare "$ctl" snapshot --root "$out/store" -q --name app --version v1 --base-dir "$out/base" --ro ckpt/mem --rw config.json >/dev/null &&
   bare "$ctl" restore --root "$out/store" -q --name app --version v1 --output "$out/restored" >/dev/null &&
   cmp -s "$out/base/ckpt/mem" "$out/restored/ckpt/mem" && cmp -s "$out/base/config.json" "$out/restored/config.json"; then
  ok snapshot-restore; else bad snapshot-restore; fi

# --files-from: comments, blank and CRLF lines, no newline at the end; a bad
# line is refused naming its number.
printf '# the list\n\nro ckpt/mem\r\nrw config.json' > "$out/list"
if bare "$ctl" snapshot --root "$out/store" -q --name app --version v2 --base-dir "$out/base" --files-from "$out/list" >/dev/null &&
   bare "$ctl" restore --root "$out/store" -q --name app --version v2 --output "$out/restored2" >/dev/null &&
   cmp -s "$out/base/ckpt/mem" "$out/restored2/ckpt/mem" && cmp -s "$out/base/config.json" "$out/restored2/config.json" &&
   [ -z "$(find "$out/restored2" -type f ! -path '*/ckpt/mem' ! -name config.json)" ]; then
  ok files-from; else bad files-from; fi
printf 'ro ckpt/mem\n\nxx config.json\n' > "$out/badlist"
set +e
msg=$(bare "$ctl" snapshot --root "$out/store" -q --name app --version v3 --base-dir "$out/base" --files-from "$out/badlist" 2>&1)
rc=$?
set -e
if [ "$rc" -eq 11 ] && echo "$msg" | grep -q "badlist:3: expected 'ro PATH' or 'rw PATH'"; then ok files-from-bad-line; else bad files-from-bad-line "$rc $msg"; fi

# Without libcurl (the system's copy reads as an empty file, in a mount
# namespace): local snapshots and restores work, and a registry request
# fails naming what is missing (exit 10 + 13, unsupported). Needs root.
if [ "$(id -u)" -eq 0 ] && command -v unshare >/dev/null; then
  curl_so=$(ldconfig -p | awk '$1 == "libcurl.so.4" && !p { print $NF; p = 1 }')
  set +e
  msg=$(unshare --mount --propagation private bash -c '
    mount --bind /dev/null "$(readlink -f "$1")" || exit 90
    env -i PATH=/usr/bin:/bin HOME="$2" "$3" snapshot --root "$2/nocurl" -q --name app --version v1 \
      --base-dir "$2/base" --ro ckpt/mem >/dev/null || exit 91
    env -i PATH=/usr/bin:/bin HOME="$2" "$3" restore --root "$2/nocurl" -q --name app --version v1 \
      --output "$2/nocurl-out" >/dev/null || exit 92
    cmp -s "$2/base/ckpt/mem" "$2/nocurl-out/ckpt/mem" || exit 93
    env -i PATH=/usr/bin:/bin HOME="$2" "$3" inspect --root "$2/nocurl" -q --registry http://127.0.0.1:1 \
      --name app --version v1' _ "$curl_so" "$out" "$ctl" 2>&1)
  rc=$?
  set -e
  if [ -n "$curl_so" ] && [ "$rc" -eq 23 ] && echo "$msg" | grep -q "HTTP needs libcurl: libcurl.so.4 could not be loaded"; then
    ok without-libcurl; else bad without-libcurl "$rc $msg"; fi
else
  echo "skip without-libcurl (needs root for a mount namespace)"
fi

man="$PREFIX/share/man/man1/snapshotctl.1"
if [ -s "$man" ] && grep -q '^\.Dt SNAPSHOTCTL 1' "$man" && grep -q 'restore' "$man"; then ok man-page; else bad man-page; fi
if command -v man >/dev/null && ! bare man -l "$man" >/dev/null 2>&1; then bad man-page-renders; fi

bash_c="$PREFIX/share/bash-completion/completions/snapshotctl"
if [ -s "$bash_c" ] && bash -n "$bash_c" && grep -q snapshotctl "$bash_c"; then ok bash-completion; else bad bash-completion; fi
zsh_c="$PREFIX/share/zsh/site-functions/_snapshotctl"
if [ -s "$zsh_c" ] && head -1 "$zsh_c" | grep -q '^#compdef snapshotctl'; then ok zsh-completion; else bad zsh-completion; fi
fish_c="$PREFIX/share/fish/vendor_completions.d/snapshotctl.fish"
if [ -s "$fish_c" ] && grep -q "^complete -c 'snapshotctl'" "$fish_c"; then ok fish-completion; else bad fish-completion; fi

echo "cli: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
