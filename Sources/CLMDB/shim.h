#ifndef SNAPSHOTTER_CLMDB_SHIM_H
#define SNAPSHOTTER_CLMDB_SHIM_H
#include <lmdb.h>
#endif
