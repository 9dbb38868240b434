#ifndef SNAPSHOTTER_CXXHASH_SHIM_H
#define SNAPSHOTTER_CXXHASH_SHIM_H
/* Debian's libxxhash exports XXH3_*_dispatch entry points that pick AVX2 at
 * run time; the plain XXH3_* symbols are built for SSE2 only. */
/* The state's size is public so the hasher allocates it itself (no
 * XXH3_createState, whose only failure is malloc's); Swift cannot import
 * the 64-byte-aligned struct, so its size comes from here. */
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>
#include <xxh_x86dispatch.h>

static inline unsigned long cxxhash_xxh3_state_size(void) { return sizeof(XXH3_state_t); }
static inline unsigned long cxxhash_xxh3_state_alignment(void) { return _Alignof(XXH3_state_t); }
#endif
