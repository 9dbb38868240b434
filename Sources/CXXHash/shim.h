#ifndef SNAPSHOTTER_CXXHASH_SHIM_H
#define SNAPSHOTTER_CXXHASH_SHIM_H
/* Debian's libxxhash exports XXH3_*_dispatch entry points that pick AVX2 at
 * run time; the plain XXH3_* symbols are built for SSE2 only. */
#include <xxhash.h>
#include <xxh_x86dispatch.h>
#endif
