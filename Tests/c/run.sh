#!/usr/bin/env bash
# C-level checks of an installed libsnapshotter (PREFIX): the header
# compiles strictly, exports are exactly the header's functions, the library
# needs no Swift toolchain, and the C test suite passes under
# AddressSanitizer/LeakSanitizer.
set -euo pipefail
: "${PREFIX:?PREFIX of an installed libsnapshotter}"
here=$(cd "$(dirname "$0")" && pwd)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export PKG_CONFIG_PATH="$PREFIX/lib/pkgconfig"
lib="$PREFIX/lib/libsnapshotter.so"
header="$PREFIX/include/snapshotter.h"
pass=0
fail=0
ok() { echo "ok $1"; pass=$((pass + 1)); }
bad() { echo "not ok $1"; fail=$((fail + 1)); }

# 1. The header alone compiles as strict C99 and as C++17.
printf '#include <snapshotter.h>\nint main(void){return snapshotter_version() > 0 ? 0 : 1;}\n' > "$out/h.c"
if gcc -std=c99 -pedantic -Wall -Wextra -Werror $(pkg-config --cflags snapshotter) -c "$out/h.c" -o "$out/h.o"; then
  ok header-c99-pedantic; else bad header-c99-pedantic; fi
cp "$out/h.c" "$out/h.cpp"
if g++ -std=c++17 -pedantic -Wall -Wextra -Werror $(pkg-config --cflags snapshotter) -c "$out/h.cpp" -o "$out/hpp.o"; then
  ok header-cxx17; else bad header-cxx17; fi

# 2. Exported (global, defined) symbols are exactly the header's functions.
nm -D --defined-only "$lib" | awk '$2 ~ /^[A-Z]$/ {print $3}' | sort -u > "$out/exported"
grep -oE '\bsnapshotter_[a-z0-9_]+\(' "$header" | tr -d '(' | sort -u > "$out/declared"
if diff -u "$out/declared" "$out/exported"; then ok exports-match-header; else bad exports-match-header; fi
if readelf -d "$lib" | grep -q 'SONAME.*libsnapshotter.so.0'; then ok soname; else bad soname; fi

# 3. No Swift toolchain needed: no libswift dependency, loads with the
# toolchain's directories absent from every search path.
if env -i PATH=/usr/bin:/bin ldd "$lib" | grep -qi swift; then bad no-libswift; else ok no-libswift; fi

# 4. The suite, built through pkg-config only, under ASan and LSan.
if gcc -std=c11 -g -O1 -Wall -Wextra -Werror -fsanitize=address -fno-omit-frame-pointer \
    "$here/test_abi.c" -o "$out/test_abi" $(pkg-config --cflags --libs snapshotter) -lpthread; then
  ok build-test-suite
  if env -i PATH=/usr/bin:/bin TMPDIR="${TMPDIR:-/tmp}" \
      ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 "$out/test_abi"; then
    ok c-test-suite; else bad c-test-suite; fi
else
  bad build-test-suite
fi

echo "c-abi: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
