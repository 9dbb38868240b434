#include "shim.h"
#include "_cgo_export.h"

/* Library threads call these; each only forwards to Go. */
static int sgo_progress(const snapshotter_progress_t *p, void *payload) {
    return snapshotterGoProgress((uintptr_t)payload, (snapshotter_progress_t *)p);
}

static void sgo_done(snapshotter_op_t *op, int status, void *payload) {
    (void)op;
    snapshotterGoDone((uintptr_t)payload, status);
}

static void sgo_log(int level, const char *message, void *payload) {
    (void)payload;
    snapshotterGoLog(level, (char *)message);
}

int sgo_snapshot_async(snapshotter_t *s, const char *name, const char *version, const char *base_dir,
                       const snapshotter_files_t *files, const snapshotter_options_t *opts, int with_progress,
                       uintptr_t payload, snapshotter_op_t **op_out) {
    return snapshotter_snapshot_with_options_async(s, name, version, base_dir, files, opts,
                                                   with_progress ? sgo_progress : NULL, sgo_done, (void *)payload,
                                                   op_out);
}

int sgo_restore_async(snapshotter_t *s, const char *name, const char *version, const char *output_dir,
                      unsigned int flags, const snapshotter_options_t *opts, int with_progress, uintptr_t payload,
                      snapshotter_op_t **op_out) {
    return snapshotter_restore_with_options_async(s, name, version, output_dir, flags, opts,
                                                  with_progress ? sgo_progress : NULL, sgo_done, (void *)payload,
                                                  op_out);
}

int sgo_delete_async(snapshotter_t *s, const char *name, const char *version, uintptr_t payload,
                     snapshotter_op_t **op_out) {
    return snapshotter_delete_async(s, name, version, sgo_done, (void *)payload, op_out);
}

int sgo_verify_async(snapshotter_t *s, int with_progress, uintptr_t payload, snapshotter_op_t **op_out) {
    return snapshotter_verify_async(s, with_progress ? sgo_progress : NULL, sgo_done, (void *)payload, op_out);
}

int sgo_gc_async(snapshotter_t *s, int with_progress, uintptr_t payload, snapshotter_op_t **op_out) {
    return snapshotter_gc_async(s, with_progress ? sgo_progress : NULL, sgo_done, (void *)payload, op_out);
}

int sgo_set_log_callback(int enable, int max_level) {
    return snapshotter_set_log_callback(enable ? sgo_log : NULL, max_level, NULL);
}
