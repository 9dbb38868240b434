#!/usr/bin/env bash
# Measures the C ABI's overhead against an installed release build, the
# size of the stripped library and the threads a process has after opening
# a store (bench/threads.c). PREFIX: measure a library installed there
# instead (an older build, for a before/after).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PREFIX:-}" ]; then
    PREFIX="$PWD/.build/test-prefix"
    make -s install PREFIX="$PREFIX" >/dev/null
fi
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
mkdir -p .build
gcc -std=c11 -O2 -Wall -Wextra -Werror bench/abi_bench.c -o .build/abi-bench $(pkg-config --cflags --libs snapshotter)
gcc -std=c11 -O2 -Wall -Wextra -Werror bench/threads.c -o .build/threads-bench $(pkg-config --cflags --libs snapshotter)
.build/abi-bench
root="$(mktemp -d "${TMPDIR:-/tmp}/snapshotter-threads.XXXXXX")"
LD_LIBRARY_PATH="$PREFIX/lib" .build/threads-bench "$root/store"
rm -rf "$root"
lib=$(readlink -f "$PREFIX/lib/libsnapshotter.so")
echo "  stripped libsnapshotter.so       $(stat -c %s "$lib") bytes ($(numfmt --to=iec-i --suffix=B "$(stat -c %s "$lib")"))"
