/*
 * libsnapshotter: snapshot sets of files into a content-addressed store and
 * restore them, locally or on another machine.
 *
 * This header is the whole contract. Everything here is stable within a
 * major version: status codes, option numbers, phase numbers and the fields
 * of the structs below (structs only ever grow at the end, and the library
 * allocates every struct it hands out, so a caller compiled against an
 * older header keeps working).
 *
 * Conventions
 * - Functions return an int status: SNAPSHOTTER_OK (0) or a negative code
 *   from the reserved range below. The message of the last failure on the
 *   calling thread is snapshotter_last_error().
 * - Strings passed in are UTF-8, NUL-terminated, and only read during the
 *   call. Strings handed out are owned by the library; each function says
 *   how long they stay valid.
 * - Every *_free function accepts NULL.
 * - Handles are opaque. Passing a freed handle, or one that did not come
 *   from this library, is detected and fails with SNAPSHOTTER_EINVAL while
 *   its address has not been reused for a new handle (it is a bug in the
 *   caller all the same). A call that races the free of its handle on
 *   another thread never touches freed memory: either it fails with
 *   SNAPSHOTTER_EINVAL, or it holds the object until it returns (a store
 *   being closed then refuses new work with SNAPSHOTTER_ECLOSED, and the
 *   free completes after the call). The address-reuse caveat above still
 *   applies, so the caller must order its frees after its other calls.
 * - The library never writes to stdout or stderr; install a log callback
 *   to see what it does.
 *
 * Threads
 * - A snapshotter_t may be used from many threads at once; many operations
 *   may run at once on one store, and several processes may open the same
 *   root directory.
 * - Callbacks run on library threads, never on the thread that started
 *   the operation, and never while the library holds a lock on store state.
 *   A callback may call snapshotter_op_cancel, snapshotter_op_status,
 *   snapshotter_op_error, snapshotter_op_report, snapshotter_last_error,
 *   snapshotter_strerror, snapshotter_active_operations,
 *   snapshotter_reconfigure, the snapshotter_options_* and
 *   snapshotter_files_* functions, and start new async operations. It must
 *   not call snapshotter_close, wait for an operation (snapshotter_op_wait)
 *   or make a synchronous call (snapshotter_snapshot, snapshotter_list,
 *   snapshotter_files, snapshotter_stats, ...): those return
 *   SNAPSHOTTER_EBUSY when called from a callback. Callbacks should return
 *   quickly: they run on the library's I/O threads.
 *
 * Fork
 * - A store and its operations belong to the process that opened the
 *   store: their I/O threads and the store's LMDB environment do not
 *   survive fork(). In a forked child (e.g. Python multiprocessing with the
 *   "fork" start method), every call on a parent's snapshotter_t or
 *   snapshotter_op_t fails with SNAPSHOTTER_EFORKED (snapshotter_op_report
 *   returns NULL, snapshotter_op_error a message saying so), without
 *   blocking. snapshotter_close and snapshotter_op_free on such a handle
 *   return at once (close returns SNAPSHOTTER_OK): they forget the handle
 *   in the child and deliberately leak its memory, leaving the parent's
 *   store, threads and locks untouched. Nothing is canceled in the parent.
 * - The child may open stores of its own (the same root too); they work
 *   normally. Options and file lists (snapshotter_options_t,
 *   snapshotter_files_t) are plain memory and stay usable in the child.
 * - The library's process-wide tables are locked across fork(), so a child
 *   forked while another thread was inside the library does not find them
 *   locked. Swift tasks in the child run on threads of its own.
 */
#ifndef SNAPSHOTTER_H
#define SNAPSHOTTER_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SNAPSHOTTER_API __attribute__((visibility("default")))
#else
#define SNAPSHOTTER_API
#endif

/* ---- Version ----------------------------------------------------------- */

#define SNAPSHOTTER_VERSION_MAJOR 0
#define SNAPSHOTTER_VERSION_MINOR 2
#define SNAPSHOTTER_VERSION_PATCH 0
#define SNAPSHOTTER_VERSION_STRING "0.2.0"
/* MAJOR * 10000 + MINOR * 100 + PATCH */
#define SNAPSHOTTER_VERSION_NUMBER                                                          \
    (SNAPSHOTTER_VERSION_MAJOR * 10000 + SNAPSHOTTER_VERSION_MINOR * 100 + SNAPSHOTTER_VERSION_PATCH)
/* True when the header is at least version major.minor.patch. */
#define SNAPSHOTTER_VERSION_CHECK(major, minor, patch)                                      \
    (SNAPSHOTTER_VERSION_NUMBER >= ((major) * 10000 + (minor) * 100 + (patch)))

/* The library's version number as SNAPSHOTTER_VERSION_NUMBER computes it,
 * so a binding can refuse a library older than the header it was built
 * against. */
SNAPSHOTTER_API int snapshotter_version(void);
/* The library's version as text ("MAJOR.MINOR.PATCH"); static storage. */
SNAPSHOTTER_API const char *snapshotter_version_string(void);

/* ---- Status codes ------------------------------------------------------ */

/* 0 is success. Errors are negative, in the reserved range -30600..-30699,
 * and these values are promised stable. */
#define SNAPSHOTTER_OK 0
#define SNAPSHOTTER_EINVAL (-30601)       /* invalid argument, handle or name */
#define SNAPSHOTTER_ENOTFOUND (-30602)    /* snapshot, file or object not found */
#define SNAPSHOTTER_EEXISTS (-30603)      /* snapshot or target file already exists */
#define SNAPSHOTTER_EIO (-30604)          /* file-system or system error */
#define SNAPSHOTTER_ECORRUPT (-30605)     /* content or metadata fails its checks */
#define SNAPSHOTTER_EREGISTRY (-30606)    /* the OCI registry failed or refused */
#define SNAPSHOTTER_ETRANSPORT (-30607)   /* the content transport failed */
#define SNAPSHOTTER_ECANCELED (-30608)    /* canceled by the caller or by close */
#define SNAPSHOTTER_EBUSY (-30609)        /* not allowed now (e.g. from a callback) */
#define SNAPSHOTTER_ECLOSED (-30610)      /* the store is closed */
#define SNAPSHOTTER_ENOSPACE (-30611)     /* no space left */
#define SNAPSHOTTER_EPERM (-30612)        /* permission denied */
#define SNAPSHOTTER_EUNSUPPORTED (-30613) /* not supported here */
#define SNAPSHOTTER_EINTERNAL (-30614)    /* a bug in the library */
#define SNAPSHOTTER_ETIMEDOUT (-30615)    /* snapshotter_op_wait timed out */
#define SNAPSHOTTER_EINPROGRESS (-30616)  /* the operation has not finished */
#define SNAPSHOTTER_ENOMEM (-30617)       /* out of memory */
#define SNAPSHOTTER_EFORKED (-30618)      /* handle opened in another process (fork) */

/* A short name for any status code ("SNAPSHOTTER_ENOTFOUND: not found");
 * static storage; never NULL, also for unknown codes. */
SNAPSHOTTER_API const char *snapshotter_strerror(int status);

/* The message of the last failure on the calling thread: it names what
 * failed (the snapshot, the file, the operation). Never NULL ("" when no
 * call on this thread has failed). Valid until the next failing call on
 * this thread. */
SNAPSHOTTER_API const char *snapshotter_last_error(void);

/* ---- Logging ----------------------------------------------------------- */

#define SNAPSHOTTER_LOG_ERROR 0
#define SNAPSHOTTER_LOG_WARN 1
#define SNAPSHOTTER_LOG_INFO 2
#define SNAPSHOTTER_LOG_DEBUG 3

/* Called for each message at or below the installed level. `message` is
 * valid during the call only. Runs on library threads. */
typedef void (*snapshotter_log_cb)(int level, const char *message, void *payload);

/* Installs (or with NULL removes) the process-wide log callback. Messages
 * above max_level are not produced. Never logs secrets. A message being
 * delivered while the callback is replaced may still reach the old one, so
 * keep its payload valid until every store is closed. */
SNAPSHOTTER_API int snapshotter_set_log_callback(snapshotter_log_cb cb, int max_level, void *payload);

/* ---- Options ------------------------------------------------------------
 * Options are numbered, curl- and zstd-style: an options object holds
 * settings set one at a time, so new settings are new numbers and no struct
 * ever changes size. Bindings (cgo, ctypes) set them without mirroring any
 * struct layout. Setting a number the library does not know, or with the
 * wrong type, fails with SNAPSHOTTER_EINVAL naming the option, so a caller
 * can tell an old library from a bad value.
 */
typedef struct snapshotter_options snapshotter_options_t;

typedef enum snapshotter_option {
    /* int: files processed at once within one snapshot (default 4). */
    SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY = 1,
    /* int: files processed at once within one restore (default 4). */
    SNAPSHOTTER_OPT_RESTORE_CONCURRENCY = 2,
    /* int: largest size of the metadata database in bytes (default 64 GiB;
     * address space only). */
    SNAPSHOTTER_OPT_METADATA_MAP_SIZE = 3,
    /* int: least microseconds between two intermediate progress events
     * (default 2000; 0 reports every step). Phase changes and the final
     * event always go out. */
    SNAPSHOTTER_OPT_PROGRESS_INTERVAL_US = 4,
    /* int: a group id that may read the store (-1, the default: none, only
     * the owner may). Without it directories are 0700, content files 0400
     * and the metadata files 0600; with it 0750, 0440 and 0640, owned by
     * that group (the process must belong to it). */
    SNAPSHOTTER_OPT_STORE_GROUP = 5,
    /* int: largest snapshot config (its JSON, in bytes) a snapshot may
     * publish and a restore may fetch; one limit for both sides (default
     * 512 MiB, about a million files; 64 KiB to 3 GiB). A larger config is
     * refused before anything is pushed. */
    SNAPSHOTTER_OPT_MAX_CONFIG_BYTES = 6,
    /* int, 0 or 1 (default 0): a restore fsyncs every file it writes before
     * renaming it into place, and every directory it changed (with the
     * parents of those it made) before it reports success. Off, as with
     * cp: a power loss soon after a restore may leave files empty under
     * their final names. On costs one fsync per written file
     * (docs/store-health.md). */
    SNAPSHOTTER_OPT_DURABLE_RESTORE = 7,
    /* int, 1 to 3 (default 1): the format of the snapshot records the store
     * writes. 1 is read by every 0.x release. 3 keeps a snapshot's files
     * in parts, so a local snapshot of any number of files commits a group
     * of parts at a time in bounded memory (a million files: under 64 MiB),
     * and keeps no second copy of its config; 2 keeps no copy of the config
     * either. Releases before 0.3 refuse snapshots of formats 2 and 3 (they
     * report them corrupt, and change nothing). Every format is read
     * whatever this says. */
    SNAPSHOTTER_OPT_RECORD_FORMAT = 8,

    /* 100-199: OCI registry settings (string unless noted). The endpoint is
     * http://host[:port], https://host[:port], or file:///dir for an OCI
     * image layout directory; snapshots go to <namespace>/<name>:<version>.
     * The password is never logged or put in an error message. */
    SNAPSHOTTER_OPT_REGISTRY_ENDPOINT = 100,
    SNAPSHOTTER_OPT_REGISTRY_NAMESPACE = 101,
    SNAPSHOTTER_OPT_REGISTRY_USERNAME = 102,
    SNAPSHOTTER_OPT_REGISTRY_PASSWORD = 103,
    SNAPSHOTTER_OPT_REGISTRY_INSECURE = 104, /* int, 0 or 1 */
    SNAPSHOTTER_OPT_REGISTRY_CA_FILE = 105,

    /* 200-299: content transport settings (string unless noted). The URL
     * is s3://bucket (S3-compatible storage, Signature V4) or file:///dir
     * (a directory); content lives under <bucket or dir>/xxh3/<hex>. With
     * a Dragonfly endpoint (206: a gRPC target, unix:///path to the
     * dfdaemon socket, or host:port / dns:///host:port over TCP)
     * content goes through the Dragonfly peer daemon, backed by the object
     * storage of the URL (s3://, oss://, obs://, cos://, gs://, abs://
     * bucket); 207 set to 1 uses the object storage directly (s3:// only)
     * when the daemon cannot be reached; 208 is the number of persistent
     * replicas asked for on upload (default 3, 1-1000); 209 the TTL of
     * uploaded tasks in seconds (default 0: the daemon's default).
     * Secrets are never logged or put in an error message. */
    SNAPSHOTTER_OPT_CONTENT_URL = 200,
    SNAPSHOTTER_OPT_CONTENT_ENDPOINT = 201,
    SNAPSHOTTER_OPT_CONTENT_REGION = 202,
    SNAPSHOTTER_OPT_CONTENT_ACCESS_KEY_ID = 203,
    SNAPSHOTTER_OPT_CONTENT_SECRET_ACCESS_KEY = 204,
    SNAPSHOTTER_OPT_CONTENT_SESSION_TOKEN = 205,
    SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT = 206,      /* unix:///path */
    SNAPSHOTTER_OPT_DRAGONFLY_FALLBACK = 207,      /* int, 0 or 1 */
    SNAPSHOTTER_OPT_DRAGONFLY_REPLICAS = 208,      /* int */
    SNAPSHOTTER_OPT_DRAGONFLY_TTL_SECONDS = 209,   /* int */
    SNAPSHOTTER_OPT_DOWNLOAD_CONCURRENCY = 210,    /* int */

    /* 300-399: garbage collection settings (int). */
    SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS = 300,      /* 0 disables the background collector */
    SNAPSHOTTER_OPT_GC_HIGH_WATERMARK_PERCENT = 301,
    SNAPSHOTTER_OPT_GC_LOW_WATERMARK_PERCENT = 302,
    SNAPSHOTTER_OPT_GC_BATCH_SIZE = 303,
    SNAPSHOTTER_OPT_GC_MIN_RETENTION_SECONDS = 304,
    SNAPSHOTTER_OPT_GC_MAX_STORE_BYTES = 305,       /* 0: no budget */
    /* Temporary and orphan files younger than this are left alone by the
     * sweep (default 3600): they may belong to an operation in flight. */
    SNAPSHOTTER_OPT_GC_ORPHAN_GRACE_SECONDS = 306
} snapshotter_option;

/* A new options object with every default; NULL only when out of memory.
 * Free with snapshotter_options_free. */
SNAPSHOTTER_API snapshotter_options_t *snapshotter_options_new(void);
SNAPSHOTTER_API void snapshotter_options_free(snapshotter_options_t *opts);
SNAPSHOTTER_API int snapshotter_options_set_int(snapshotter_options_t *opts, int option, int64_t value);
/* `value` is copied; NULL resets the option to its default. */
SNAPSHOTTER_API int snapshotter_options_set_string(snapshotter_options_t *opts, int option, const char *value);

/* ---- The store --------------------------------------------------------- */

typedef struct snapshotter snapshotter_t;

/* Opens (creating when needed) the store under `root_dir`. `opts` may be
 * NULL for defaults; it is read during the call only. On success *out is a
 * handle to free with snapshotter_close. */
SNAPSHOTTER_API int snapshotter_open(const char *root_dir, const snapshotter_options_t *opts, snapshotter_t **out);

/* Closes the store: operations still running are canceled, and close waits
 * until each has finished (their done callbacks run, with
 * SNAPSHOTTER_ECANCELED). Operation handles stay valid and must still be
 * freed. To let operations finish instead, wait for them before closing.
 * Returns SNAPSHOTTER_EBUSY, closing nothing, when called from a callback.
 * NULL is a no-op. */
SNAPSHOTTER_API int snapshotter_close(snapshotter_t *s);

/* ---- Requests ---------------------------------------------------------- */

/* The list of files of a snapshot request. */
typedef struct snapshotter_files snapshotter_files_t;

SNAPSHOTTER_API snapshotter_files_t *snapshotter_files_new(void);
/* Adds a file by its path relative to the base directory. A read-only file
 * is hard-linked into the store (the caller promises not to change it in
 * place) so restoring it costs a link(2). */
SNAPSHOTTER_API int snapshotter_files_add(snapshotter_files_t *files, const char *relative_path, int read_only);
SNAPSHOTTER_API void snapshotter_files_free(snapshotter_files_t *files);

/* Flags of snapshotter_restore. */
#define SNAPSHOTTER_RESTORE_OVERWRITE 0x1u /* replace files that exist */

/* ---- Operations in flight ---------------------------------------------- */

typedef struct snapshotter_op snapshotter_op_t;

typedef enum snapshotter_phase {
    SNAPSHOTTER_PHASE_PREPARING = 0,
    SNAPSHOTTER_PHASE_STORING = 1,
    SNAPSHOTTER_PHASE_UPLOADING = 2,
    SNAPSHOTTER_PHASE_PUBLISHING = 3,
    SNAPSHOTTER_PHASE_COMMITTING = 4,
    SNAPSHOTTER_PHASE_FETCHING = 5,
    SNAPSHOTTER_PHASE_EXPORTING = 6,
    SNAPSHOTTER_PHASE_VERIFYING = 7,
    SNAPSHOTTER_PHASE_COLLECTING = 8,
    SNAPSHOTTER_PHASE_DONE = 9
} snapshotter_phase;

/* A progress event. Counters never go backwards within an operation; the
 * last event (phase DONE) carries the totals. Fields are only ever added at
 * the end; `size` is sizeof the struct the library filled. */
typedef struct snapshotter_progress {
    uint32_t size;
    int32_t phase;
    int64_t files_done;
    int64_t files_total;
    int64_t bytes_done;
    int64_t bytes_total;
    /* Read-only files copied (not linked) because the output directory is
     * on another filesystem than the store. */
    int64_t files_copied;
} snapshotter_progress_t;

/* Progress of an async operation; `progress` is valid during the call only.
 * Returning non-zero cancels the operation, which then completes with
 * SNAPSHOTTER_ECANCELED. Calls for one operation never overlap. */
typedef int (*snapshotter_progress_cb)(const snapshotter_progress_t *progress, void *payload);

/* Called once when an async operation finishes, after its last progress
 * event, with its final status. The operation's results can be read from
 * `op` during the call and afterwards, until it is freed. */
typedef void (*snapshotter_done_cb)(snapshotter_op_t *op, int status, void *payload);

/* Waits until `op` finishes or `timeout_ms` passes (negative: no limit).
 * Returns the operation's status, or SNAPSHOTTER_ETIMEDOUT. */
SNAPSHOTTER_API int snapshotter_op_wait(snapshotter_op_t *op, int64_t timeout_ms);
/* Asks the operation to stop; it then completes with SNAPSHOTTER_ECANCELED
 * unless it had already finished. Returns at once. */
SNAPSHOTTER_API int snapshotter_op_cancel(snapshotter_op_t *op);
/* The status: SNAPSHOTTER_EINPROGRESS while running, then its result. */
SNAPSHOTTER_API int snapshotter_op_status(const snapshotter_op_t *op);
/* The failure message of a finished operation ("" on success or while
 * running); valid until the op is freed. */
SNAPSHOTTER_API const char *snapshotter_op_error(const snapshotter_op_t *op);
/* Frees an operation handle. One still running is canceled and waited for
 * first, so no callback of it runs after this returns. Called from a
 * callback, it cannot wait: the op is canceled and released when it
 * finishes (from its own done callback, when that returns). NULL is a
 * no-op. The first progress event may arrive before the *_async call that
 * started the op has returned. */
SNAPSHOTTER_API void snapshotter_op_free(snapshotter_op_t *op);

/* ---- Results ----------------------------------------------------------- */

/* Every result below is one allocation: walk it, then free it with one
 * call. Arrays are arrays of pointers, so structs can grow at the end
 * without changing how a caller walks them. */

typedef struct snapshotter_snapshot_info {
    const char *name;
    const char *version;
    int64_t created_ns;       /* nanoseconds since the Unix epoch */
    int64_t last_accessed_ns;
    int64_t file_count;
    int64_t total_size;       /* logical bytes of all files */
} snapshotter_snapshot_info_t;

typedef struct snapshotter_snapshot_list {
    size_t count;
    const snapshotter_snapshot_info_t *const *items;
} snapshotter_snapshot_list_t;

typedef struct snapshotter_file_info {
    const char *relative_path;
    const char *digest; /* "xxh3:<hex>" */
    int read_only;
    uint32_t mode;      /* permission bits */
    uint32_t uid;
    uint32_t gid;
    int64_t size;
    int64_t mtime_ns;
} snapshotter_file_info_t;

typedef struct snapshotter_file_list {
    size_t count;
    const snapshotter_file_info_t *const *items;
    /* The snapshot config JSON (the OCI config blob), NUL-terminated. */
    const char *config_json;
    size_t config_json_size;
} snapshotter_file_list_t;

/* Filled by sync calls into a struct the caller owns: set `size` to
 * sizeof(snapshotter_report_t) first (SNAPSHOTTER_REPORT_INIT does); the
 * library writes no more than that many bytes, so a caller built against
 * an older, smaller struct stays safe. */
typedef struct snapshotter_report {
    uint32_t size;
    /* snapshot */
    int64_t files_stored;          /* content new to the store */
    int64_t files_known_by_inode;  /* read-only files recognised without reading */
    int64_t bytes_read;
    /* restore */
    int64_t files_linked;
    int64_t files_copied;
    int64_t files_decoded;
    int64_t bytes_written;
    /* delete and gc */
    int64_t snapshots_evicted;
    int64_t content_files_removed;
    int64_t bytes_freed;
    int64_t orphans_removed;
    int64_t elapsed_ns;
} snapshotter_report_t;

typedef struct snapshotter_problem {
    const char *kind;     /* "missing-content", "corrupt-content", ... */
    const char *digest;   /* NULL when no digest is involved */
    const char *snapshot; /* "name:version", or NULL */
    const char *message;
} snapshotter_problem_t;

typedef struct snapshotter_verify_report {
    int64_t snapshots_checked;
    int64_t content_files_checked;
    int64_t bytes_checked;
    size_t problem_count;
    const snapshotter_problem_t *const *problems;
    /* What snapshotter_repair did, one line per action (0 for verify). */
    size_t repair_count;
    const char *const *repairs;
} snapshotter_verify_report_t;

/* Caller-owned like snapshotter_report_t: set `size` first
 * (SNAPSHOTTER_STATS_INIT does). */
typedef struct snapshotter_stats {
    uint32_t size;
    int64_t store_bytes;     /* bytes the store's files use on disk */
    int64_t content_files;
    int64_t snapshots;
    int64_t oldest_access_ns; /* 0 when there are no snapshots */
    int64_t disk_total_bytes; /* the filesystem holding the root */
    int64_t disk_used_bytes;
} snapshotter_stats_t;

#define SNAPSHOTTER_REPORT_INIT {sizeof(snapshotter_report_t), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
#define SNAPSHOTTER_STATS_INIT {sizeof(snapshotter_stats_t), 0, 0, 0, 0, 0, 0}

SNAPSHOTTER_API void snapshotter_snapshot_list_free(snapshotter_snapshot_list_t *list);
SNAPSHOTTER_API void snapshotter_file_list_free(snapshotter_file_list_t *list);
SNAPSHOTTER_API void snapshotter_verify_report_free(snapshotter_verify_report_t *report);

/* The counters of a finished snapshot, restore, delete or gc operation;
 * valid until the op is freed. NULL when the operation has no report (not
 * finished, failed, or another kind). */
SNAPSHOTTER_API const snapshotter_report_t *snapshotter_op_report(const snapshotter_op_t *op);
/* The verify report of a finished verify operation, owned by the op; valid
 * until the op is freed. NULL otherwise. */
SNAPSHOTTER_API const snapshotter_verify_report_t *snapshotter_op_verify_report(const snapshotter_op_t *op);

/* ---- Long operations: async and sync forms ------------------------------
 * The async form returns at once with *op_out set (free it with
 * snapshotter_op_free); progress and done callbacks may be NULL. It fails
 * without starting only on arguments it can check at once. The sync form
 * blocks until the operation finishes and returns its status; `report` may
 * be NULL.
 */

/* Snapshots the files of `files` under `base_dir` as name:version. `name`
 * must be an OCI repository name and `version` an OCI tag. The files list
 * is read during the call only. */
SNAPSHOTTER_API int snapshotter_snapshot_async(snapshotter_t *s, const char *name, const char *version,
                                               const char *base_dir, const snapshotter_files_t *files,
                                               snapshotter_progress_cb progress, snapshotter_done_cb done,
                                               void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_snapshot(snapshotter_t *s, const char *name, const char *version,
                                         const char *base_dir, const snapshotter_files_t *files,
                                         snapshotter_report_t *report);

/* Restores name:version into `output_dir` (created when missing). `flags`
 * is 0 or SNAPSHOTTER_RESTORE_OVERWRITE. */
SNAPSHOTTER_API int snapshotter_restore_async(snapshotter_t *s, const char *name, const char *version,
                                              const char *output_dir, unsigned int flags,
                                              snapshotter_progress_cb progress, snapshotter_done_cb done,
                                              void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_restore(snapshotter_t *s, const char *name, const char *version,
                                        const char *output_dir, unsigned int flags, snapshotter_report_t *report);

/* Per-call settings: snapshot and restore with the registry (100-199) and
 * content (200-299) settings of `opts` instead of the store's, for this
 * operation only; the store keeps its own, and operations with different
 * settings run side by side. The other settings of `opts` are not read
 * (they are fixed at open). NULL `opts` is the store's settings. `opts` is
 * read during the call only. */
SNAPSHOTTER_API int snapshotter_snapshot_with_options_async(snapshotter_t *s, const char *name, const char *version,
                                                            const char *base_dir, const snapshotter_files_t *files,
                                                            const snapshotter_options_t *opts,
                                                            snapshotter_progress_cb progress, snapshotter_done_cb done,
                                                            void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_restore_with_options_async(snapshotter_t *s, const char *name, const char *version,
                                                           const char *output_dir, unsigned int flags,
                                                           const snapshotter_options_t *opts,
                                                           snapshotter_progress_cb progress, snapshotter_done_cb done,
                                                           void *payload, snapshotter_op_t **op_out);

/* ---- Registry and content clients --------------------------------------
 * Blocking calls without a store, with the registry (100-199) or content
 * (200-299) settings of `opts` (for the Go API's oci.Client and
 * dragonfly.Client). SNAPSHOTTER_EBUSY from a callback.
 * - Blobs and manifests of repository <namespace>/<name>: a push returns
 *   the sha256 digest ("sha256:<hex>") in *digest_out; a pull returns the
 *   bytes, checked against their digest, in *data_out and *len_out.
 *   `reference` is a tag (or, to pull, a sha256 digest). Pulled blobs are
 *   limited by SNAPSHOTTER_OPT_MAX_CONFIG_BYTES's default, manifests to
 *   1 MiB. Free what is returned with snapshotter_free.
 * - Content by digest ("xxh3:<hex>") through the content transport: upload
 *   sends the content file at `path` (an SPF1 stream, as in a store), which
 *   must hash to the digest; download writes it to `output_path`
 *   (replaced) only once it hashes to the digest. */
SNAPSHOTTER_API int snapshotter_registry_push_blob(const snapshotter_options_t *opts, const char *name,
                                                   const void *data, size_t len, char **digest_out);
SNAPSHOTTER_API int snapshotter_registry_pull_blob(const snapshotter_options_t *opts, const char *name,
                                                   const char *digest, void **data_out, size_t *len_out);
SNAPSHOTTER_API int snapshotter_registry_push_manifest(const snapshotter_options_t *opts, const char *name,
                                                       const char *reference, const void *data, size_t len,
                                                       char **digest_out);
SNAPSHOTTER_API int snapshotter_registry_pull_manifest(const snapshotter_options_t *opts, const char *name,
                                                       const char *reference, void **data_out, size_t *len_out);
SNAPSHOTTER_API int snapshotter_content_upload(const snapshotter_options_t *opts, const char *digest, const char *path);
SNAPSHOTTER_API int snapshotter_content_download(const snapshotter_options_t *opts, const char *digest,
                                                 const char *output_path);
/* Frees memory returned by the library (NULL is a no-op). */
SNAPSHOTTER_API void snapshotter_free(void *p);

/* Deletes name:version and the content nothing else references. */
SNAPSHOTTER_API int snapshotter_delete_async(snapshotter_t *s, const char *name, const char *version,
                                             snapshotter_done_cb done, void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_delete(snapshotter_t *s, const char *name, const char *version,
                                       snapshotter_report_t *report);

/* Re-hashes all content and checks every record. The sync form sets *out
 * to a report to free with snapshotter_verify_report_free. A store with
 * problems is SNAPSHOTTER_OK: read the report's problems. */
SNAPSHOTTER_API int snapshotter_verify_async(snapshotter_t *s, snapshotter_progress_cb progress,
                                             snapshotter_done_cb done, void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_verify(snapshotter_t *s, snapshotter_verify_report_t **out);

/* Verifies, then fixes what it found: snapshots whose content is missing
 * or corrupt are dropped (they can never be restored from this store; a
 * registry copy can be restored again later), missing content records,
 * references and read-only links are rebuilt from the content, dangling
 * references are removed. The report lists the problems found before
 * repairing and the repairs made. */
SNAPSHOTTER_API int snapshotter_repair_async(snapshotter_t *s, snapshotter_progress_cb progress,
                                             snapshotter_done_cb done, void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_repair(snapshotter_t *s, snapshotter_verify_report_t **out);

/* Runs a garbage collection now, with the store's GC settings: evicts
 * least recently used snapshots while the disk is above the high
 * watermark (or the store above its byte budget) and removes orphans. */
SNAPSHOTTER_API int snapshotter_gc_async(snapshotter_t *s, snapshotter_progress_cb progress,
                                         snapshotter_done_cb done, void *payload, snapshotter_op_t **op_out);
SNAPSHOTTER_API int snapshotter_gc(snapshotter_t *s, snapshotter_report_t *report);

/* ---- Quick queries (synchronous only) ---------------------------------- */

/* All snapshots, sorted by name then version. Free *out with
 * snapshotter_snapshot_list_free. */
SNAPSHOTTER_API int snapshotter_list(snapshotter_t *s, snapshotter_snapshot_list_t **out);
/* The files of name:version, sorted by path, and its config JSON. Free
 * *out with snapshotter_file_list_free. */
SNAPSHOTTER_API int snapshotter_files(snapshotter_t *s, const char *name, const char *version,
                                      snapshotter_file_list_t **out);
/* Store usage. */
SNAPSHOTTER_API int snapshotter_stats(snapshotter_t *s, snapshotter_stats_t *out);
/* Applies the registry and content settings of `opts` to operations
 * started after this call (options with no registry endpoint mean no
 * registry; with neither a content URL nor a Dragonfly endpoint, no content
 * transport); operations already running keep the settings they started with. Settings fixed at open (concurrency,
 * GC) are not changed. `opts` is read during the call only. */
SNAPSHOTTER_API int snapshotter_reconfigure(snapshotter_t *s, const snapshotter_options_t *opts);
/* Operations running on this store now (for leak checks in bindings). */
SNAPSHOTTER_API int snapshotter_active_operations(snapshotter_t *s);

#ifdef __cplusplus
}
#endif
#endif /* SNAPSHOTTER_H */
