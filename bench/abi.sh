#!/usr/bin/env bash
# Measures the C ABI's overhead against an installed release build, and the
# size of the stripped library.
set -euo pipefail
cd "$(dirname "$0")/.."
make -s install PREFIX="$PWD/.build/test-prefix" >/dev/null
export PKG_CONFIG_PATH="$PWD/.build/test-prefix/lib/pkgconfig"
gcc -std=c11 -O2 -Wall -Wextra -Werror bench/abi_bench.c -o .build/abi-bench $(pkg-config --cflags --libs snapshotter)
.build/abi-bench
lib=$(readlink -f .build/test-prefix/lib/libsnapshotter.so)
echo "  stripped libsnapshotter.so       $(stat -c %s "$lib") bytes ($(numfmt --to=iec-i --suffix=B "$(stat -c %s "$lib")"))"
