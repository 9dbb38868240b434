/* Async starters that take the payload as an integer (a runtime/cgo.Handle)
 * and plug in the Go trampolines, so Go never converts an integer to a
 * pointer or takes the address of an exported function. */
#ifndef SNAPSHOTTER_GO_SHIM_H
#define SNAPSHOTTER_GO_SHIM_H

#include <stdint.h>
#include <snapshotter.h>

int sgo_snapshot_async(snapshotter_t *s, const char *name, const char *version, const char *base_dir,
                       const snapshotter_files_t *files, const snapshotter_options_t *opts, int with_progress,
                       uintptr_t payload, snapshotter_op_t **op_out);
int sgo_restore_async(snapshotter_t *s, const char *name, const char *version, const char *output_dir,
                      unsigned int flags, const snapshotter_options_t *opts, int with_progress, uintptr_t payload,
                      snapshotter_op_t **op_out);
int sgo_delete_async(snapshotter_t *s, const char *name, const char *version, uintptr_t payload,
                     snapshotter_op_t **op_out);
int sgo_verify_async(snapshotter_t *s, int with_progress, uintptr_t payload, snapshotter_op_t **op_out);
int sgo_gc_async(snapshotter_t *s, int with_progress, uintptr_t payload, snapshotter_op_t **op_out);
/* Installs the Go log trampoline (enable != 0) or removes it. */
int sgo_set_log_callback(int enable, int max_level);

#endif
