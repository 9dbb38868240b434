/* C test suite for libsnapshotter's public ABI: every entry point and
 * status code, async completion and progress order, cancellation from a
 * callback and from another thread, many operations from several threads,
 * close with operations pending, and hostile inputs. */
#define _GNU_SOURCE
#include <snapshotter.h>

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int passed, failed;
static const char *current;

#define CHECK(cond)                                                                            \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            fprintf(stderr, "FAIL %s (%s:%d): %s [last error: %s]\n", current, __FILE__,       \
                    __LINE__, #cond, snapshotter_last_error());                                \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

#define CHECK_RC(expr, want)                                                                   \
    do {                                                                                       \
        int rc_ = (expr);                                                                      \
        if (rc_ != (want)) {                                                                   \
            fprintf(stderr, "FAIL %s (%s:%d): %s returned %d (%s), want %d (%s) [last error: %s]\n", \
                    current, __FILE__, __LINE__, #expr, rc_, snapshotter_strerror(rc_), (want), \
                    snapshotter_strerror(want), snapshotter_last_error());                     \
            return 1;                                                                          \
        }                                                                                      \
    } while (0)

static char base[512];

static void path_join(char *out, size_t n, const char *a, const char *b) { snprintf(out, n, "%s/%s", a, b); }

static int write_file(const char *dir, const char *rel, size_t size, unsigned seed) {
    char p[4096];
    path_join(p, sizeof p, dir, rel);
    char *slash = strrchr(p, '/');
    if (slash) {
        *slash = 0;
        char cmd[4200];
        snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
        if (system(cmd) != 0) return -1;
        *slash = '/';
    }
    FILE *f = fopen(p, "wb");
    if (!f) return -1;
    unsigned x = seed * 2654435761u + 1;
    char buf[65536];
    size_t left = size;
    while (left > 0) {
        size_t n = left < sizeof buf ? left : sizeof buf;
        for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; buf[i] = (char)(x >> 16); }
        if (fwrite(buf, 1, n, f) != n) { fclose(f); return -1; }
        left -= n;
    }
    return fclose(f);
}

static int same_file(const char *a, const char *b) {
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", a, b);
    return system(cmd) == 0;
}

static snapshotter_t *open_store(const char *name) {
    char root[4096];
    path_join(root, sizeof root, base, name);
    snapshotter_options_t *o = snapshotter_options_new();
    snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0);
    snapshotter_t *s = NULL;
    int rc = snapshotter_open(root, o, &s);
    snapshotter_options_free(o);
    if (rc != SNAPSHOTTER_OK) {
        fprintf(stderr, "open %s: %s\n", root, snapshotter_last_error());
        return NULL;
    }
    return s;
}

/* A source tree: two read-only files and two read-write ones. */
static int make_source(const char *dir, size_t big) {
    if (write_file(dir, "ckpt/mem", big, 1) || write_file(dir, "ckpt/state", 4096, 2) ||
        write_file(dir, "disk.img", big, 3) || write_file(dir, "meta.json", 17, 4))
        return -1;
    return 0;
}

static snapshotter_files_t *source_files(void) {
    snapshotter_files_t *f = snapshotter_files_new();
    snapshotter_files_add(f, "ckpt/mem", 1);
    snapshotter_files_add(f, "ckpt/state", 1);
    snapshotter_files_add(f, "disk.img", 0);
    snapshotter_files_add(f, "meta.json", 0);
    return f;
}

/* ---- basics ------------------------------------------------------------ */

static int test_version_and_errors(void) {
    CHECK(snapshotter_version() == SNAPSHOTTER_VERSION_NUMBER);
    CHECK(SNAPSHOTTER_VERSION_CHECK(0, 1, 0));
    CHECK(strcmp(snapshotter_version_string(), SNAPSHOTTER_VERSION_STRING) == 0);
    int codes[] = {SNAPSHOTTER_OK, SNAPSHOTTER_EINVAL, SNAPSHOTTER_ENOTFOUND, SNAPSHOTTER_EEXISTS,
                   SNAPSHOTTER_EIO, SNAPSHOTTER_ECORRUPT, SNAPSHOTTER_EREGISTRY, SNAPSHOTTER_ETRANSPORT,
                   SNAPSHOTTER_ECANCELED, SNAPSHOTTER_EBUSY, SNAPSHOTTER_ECLOSED, SNAPSHOTTER_ENOSPACE,
                   SNAPSHOTTER_EPERM, SNAPSHOTTER_EUNSUPPORTED, SNAPSHOTTER_EINTERNAL,
                   SNAPSHOTTER_ETIMEDOUT, SNAPSHOTTER_EINPROGRESS, SNAPSHOTTER_ENOMEM,
                   SNAPSHOTTER_EFORKED};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *n = snapshotter_strerror(codes[i]);
        CHECK(n != NULL && strncmp(n, "SNAPSHOTTER_", 12) == 0);
        CHECK(strstr(n, "unknown") == NULL);
    }
    CHECK(strstr(snapshotter_strerror(12345), "unknown") != NULL);
    CHECK(snapshotter_last_error() != NULL);
    return 0;
}

static int test_options(void) {
    snapshotter_options_t *o = snapshotter_options_new();
    CHECK(o != NULL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY, 8), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY, 0), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "snapshot concurrency") != NULL);
    CHECK_RC(snapshotter_options_set_int(o, 9999, 1), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "unknown option 9999") != NULL);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_RESTORE_CONCURRENCY, "4"), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_STORE_GROUP, -1), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_STORE_GROUP, -2), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_STORE_GROUP, 1LL << 32), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_HIGH_WATERMARK_PERCENT, 95), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_HIGH_WATERMARK_PERCENT, 101), SNAPSHOTTER_EINVAL);
    /* One config size limit for publish and fetch: 64 KiB to 3 GiB. */
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_MAX_CONFIG_BYTES, 64 << 20), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_MAX_CONFIG_BYTES, 1000), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "max config bytes") != NULL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_MAX_CONFIG_BYTES, (int64_t)4 << 30), SNAPSHOTTER_EINVAL);
    /* Dragonfly settings are checked. An endpoint without the object
     * storage behind it (no content URL) opens, and a call that moves
     * content fails then (EINVAL), not ignored. */
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DRAGONFLY_FALLBACK, 2), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DRAGONFLY_REPLICAS, 0), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DRAGONFLY_REPLICAS, 3), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DRAGONFLY_TTL_SECONDS, 3600), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DRAGONFLY_FALLBACK, 0), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT, "unix:///x"), SNAPSHOTTER_OK);
    {
        char root[4096];
        path_join(root, sizeof root, base, "dragonfly-without-content");
        snapshotter_t *s = NULL;
        /* No background collector: its sleeping task would outlive close. */
        CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0), SNAPSHOTTER_OK);
        CHECK_RC(snapshotter_open(root, o, &s), SNAPSHOTTER_OK);
        char src[4096];
        path_join(src, sizeof src, base, "dragonfly-source");
        CHECK(make_source(src, 4096) == 0);
        snapshotter_files_t *f = source_files();
        CHECK_RC(snapshotter_snapshot(s, "df", "v1", src, f, NULL), SNAPSHOTTER_EINVAL);
        CHECK(strstr(snapshotter_last_error(), "object storage") != NULL);
        snapshotter_files_free(f);
        CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    }
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT, ""), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, "http://127.0.0.1:1"), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_REGISTRY_INSECURE, 2), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_options_set_int(NULL, SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY, 1), SNAPSHOTTER_EINVAL);
    snapshotter_options_free(o);
    snapshotter_options_free(NULL);
    /* A freed handle is detected. */
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_SNAPSHOT_CONCURRENCY, 1), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "freed") != NULL);
    return 0;
}

static int test_bad_inputs(void) {
    snapshotter_t *s = NULL;
    CHECK_RC(snapshotter_open(NULL, NULL, &s), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_open("", NULL, &s), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_open("/tmp/x", NULL, NULL), SNAPSHOTTER_EINVAL);
    /* A foreign pointer is not a handle. */
    int junk = 42;
    snapshotter_t *foreign = (snapshotter_t *)&junk;
    snapshotter_report_t rep = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_delete(foreign, "a", "b", &rep), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_close(foreign), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_close(NULL), SNAPSHOTTER_OK);

    s = open_store("bad");
    CHECK(s != NULL);
    snapshotter_files_t *f = snapshotter_files_new();
    CHECK_RC(snapshotter_files_add(f, NULL, 0), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_files_add(f, "\xff\xfe", 0), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "UTF-8") != NULL);
    CHECK_RC(snapshotter_files_add(f, "", 0), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_snapshot(s, NULL, "v1", base, f, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_snapshot(s, "", "v1", base, f, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_snapshot(s, "Bad Name", "v1", base, f, NULL), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "Bad Name") != NULL);
    CHECK_RC(snapshotter_snapshot(s, "ok", "-bad", base, f, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_snapshot(s, "ok", "v1", base, NULL, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_files_add(f, "../escape", 0), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_snapshot(s, "ok", "v1", base, f, NULL), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "escapes") != NULL);
    snapshotter_files_free(f);
    snapshotter_files_free(NULL);
    CHECK_RC(snapshotter_restore(s, "ok", "v1", base, 0x80, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_restore(s, "missing", "v1", base, 0, NULL), SNAPSHOTTER_ENOTFOUND);
    CHECK(strstr(snapshotter_last_error(), "missing:v1") != NULL);
    CHECK_RC(snapshotter_delete(s, "missing", "v1", NULL), SNAPSHOTTER_ENOTFOUND);
    snapshotter_file_list_t *fl = NULL;
    CHECK_RC(snapshotter_files(s, "missing", "v1", &fl), SNAPSHOTTER_ENOTFOUND);
    CHECK(fl == NULL);
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_verify_async(s, NULL, NULL, NULL, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_op_wait(NULL, 0), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_op_cancel(NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_op_status(NULL), SNAPSHOTTER_EINVAL);
    CHECK(snapshotter_op_error(NULL) != NULL);
    CHECK(snapshotter_op_report(NULL) == NULL);
    snapshotter_op_free(NULL);
    (void)op;
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    /* A closed store's handle is detected. */
    CHECK_RC(snapshotter_delete(s, "a", "b", NULL), SNAPSHOTTER_EINVAL);
    return 0;
}

/* ---- sync round trip and every query ------------------------------------ */

static int test_sync_round_trip(void) {
    char src[4096], out[4096], a[4096], b[4096];
    path_join(src, sizeof src, base, "sync-src");
    path_join(out, sizeof out, base, "sync-out");
    CHECK(make_source(src, 1 << 20) == 0);
    snapshotter_t *s = open_store("sync-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    snapshotter_report_t rep = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_snapshot(s, "sandbox", "v1", src, f, &rep), SNAPSHOTTER_OK);
    CHECK(rep.files_stored == 4);
    CHECK_RC(snapshotter_snapshot(s, "sandbox", "v1", src, f, &rep), SNAPSHOTTER_EEXISTS);
    CHECK(strstr(snapshotter_last_error(), "sandbox:v1") != NULL);
    snapshotter_report_t rep2 = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_snapshot(s, "sandbox", "v2", src, f, &rep2), SNAPSHOTTER_OK);
    CHECK(rep2.files_known_by_inode == 2);
    snapshotter_files_free(f);

    snapshotter_report_t rr = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_restore(s, "sandbox", "v1", out, 0, &rr), SNAPSHOTTER_OK);
    CHECK(rr.files_linked == 2 && rr.files_decoded == 2);
    const char *names[] = {"ckpt/mem", "ckpt/state", "disk.img", "meta.json"};
    for (int i = 0; i < 4; i++) {
        path_join(a, sizeof a, src, names[i]);
        path_join(b, sizeof b, out, names[i]);
        CHECK(same_file(a, b));
    }
    struct stat st;
    path_join(b, sizeof b, out, "ckpt/mem");
    CHECK(stat(b, &st) == 0 && st.st_nlink >= 2);
    CHECK_RC(snapshotter_restore(s, "sandbox", "v1", out, 0, NULL), SNAPSHOTTER_EEXISTS);
    CHECK_RC(snapshotter_restore(s, "sandbox", "v1", out, SNAPSHOTTER_RESTORE_OVERWRITE, NULL), SNAPSHOTTER_OK);

    snapshotter_snapshot_list_t *l = NULL;
    CHECK_RC(snapshotter_list(s, &l), SNAPSHOTTER_OK);
    CHECK(l->count == 2);
    CHECK(strcmp(l->items[0]->name, "sandbox") == 0 && strcmp(l->items[0]->version, "v1") == 0);
    CHECK(strcmp(l->items[1]->version, "v2") == 0);
    CHECK(l->items[0]->file_count == 4 && l->items[0]->total_size == (2 << 20) + 4096 + 17);
    CHECK(l->items[0]->created_ns > 0 && l->items[0]->last_accessed_ns >= l->items[0]->created_ns);
    snapshotter_snapshot_list_free(l);
    snapshotter_snapshot_list_free(NULL);

    snapshotter_file_list_t *fl = NULL;
    CHECK_RC(snapshotter_files(s, "sandbox", "v1", &fl), SNAPSHOTTER_OK);
    CHECK(fl->count == 4);
    CHECK(strcmp(fl->items[0]->relative_path, "ckpt/mem") == 0 && fl->items[0]->read_only == 1);
    CHECK(strncmp(fl->items[0]->digest, "xxh3:", 5) == 0);
    CHECK(strcmp(fl->items[3]->relative_path, "meta.json") == 0 && fl->items[3]->size == 17);
    CHECK(fl->config_json_size == strlen(fl->config_json));
    CHECK(strncmp(fl->config_json, "{\"files\":[{\"digest\":\"xxh3:", 26) == 0);
    snapshotter_file_list_free(fl);

    snapshotter_stats_t stats = SNAPSHOTTER_STATS_INIT;
    CHECK_RC(snapshotter_stats(s, &stats), SNAPSHOTTER_OK);
    CHECK(stats.snapshots == 2 && stats.content_files == 4);
    CHECK(stats.store_bytes >= (2 << 20) && stats.disk_total_bytes > 0);
    CHECK(stats.oldest_access_ns > 0);

    snapshotter_verify_report_t *vr = NULL;
    CHECK_RC(snapshotter_verify(s, &vr), SNAPSHOTTER_OK);
    CHECK(vr->problem_count == 0 && vr->snapshots_checked == 2 && vr->content_files_checked == 4);
    snapshotter_verify_report_free(vr);

    snapshotter_report_t dr = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_delete(s, "sandbox", "v1", &dr), SNAPSHOTTER_OK);
    CHECK(dr.content_files_removed == 0);
    CHECK_RC(snapshotter_delete(s, "sandbox", "v2", &dr), SNAPSHOTTER_OK);
    CHECK(dr.content_files_removed == 4);
    snapshotter_report_t gr = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_gc(s, &gr), SNAPSHOTTER_OK);
    CHECK(gr.elapsed_ns > 0);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* The durable-restore option is checked, and a restore with it works. */
static int test_durable_restore(void) {
    char src[4096], out[4096], root[4096], a[4096], b[4096];
    path_join(src, sizeof src, base, "durable-src");
    path_join(out, sizeof out, base, "durable-out/deeper");
    path_join(root, sizeof root, base, "durable-root");
    CHECK(make_source(src, 64 << 10) == 0);
    snapshotter_options_t *o = snapshotter_options_new();
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DURABLE_RESTORE, 2), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "durable restore") != NULL);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_DURABLE_RESTORE, 1), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0), SNAPSHOTTER_OK);
    snapshotter_t *s = NULL;
    CHECK_RC(snapshotter_open(root, o, &s), SNAPSHOTTER_OK);
    snapshotter_options_free(o);
    snapshotter_files_t *f = source_files();
    CHECK_RC(snapshotter_snapshot(s, "durable", "v1", src, f, NULL), SNAPSHOTTER_OK);
    snapshotter_files_free(f);
    snapshotter_report_t rr = SNAPSHOTTER_REPORT_INIT;
    CHECK_RC(snapshotter_restore(s, "durable", "v1", out, 0, &rr), SNAPSHOTTER_OK);
    CHECK(rr.files_linked == 2 && rr.files_decoded == 2);
    const char *names[] = {"ckpt/mem", "ckpt/state", "disk.img", "meta.json"};
    for (int i = 0; i < 4; i++) {
        path_join(a, sizeof a, src, names[i]);
        path_join(b, sizeof b, out, names[i]);
        CHECK(same_file(a, b));
    }
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* A report struct from an older, smaller header is filled no further. */
static int test_report_size_is_respected(void) {
    char src[4096];
    path_join(src, sizeof src, base, "small-src");
    CHECK(write_file(src, "f", 100, 9) == 0);
    snapshotter_t *s = open_store("small-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = snapshotter_files_new();
    snapshotter_files_add(f, "f", 0);
    struct { snapshotter_report_t r; char guard[64]; } buf;
    memset(&buf, 0x5a, sizeof buf);
    buf.r.size = (uint32_t)(offsetof(snapshotter_report_t, files_known_by_inode));
    CHECK_RC(snapshotter_snapshot(s, "small", "v1", src, f, &buf.r), SNAPSHOTTER_OK);
    CHECK(buf.r.files_stored == 1);
    /* files_known_by_inode lies past the declared size: untouched. */
    unsigned char *after = (unsigned char *)&buf.r.files_known_by_inode;
    CHECK(after[0] == 0x5a && after[7] == 0x5a);
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

static int test_corrupt_content(void) {
    char src[4096], out[4096], content[4096], fp[8300], target[4096];
    path_join(src, sizeof src, base, "corrupt-src");
    path_join(out, sizeof out, base, "corrupt-out");
    CHECK(write_file(src, "data", 100000, 7) == 0);
    snapshotter_t *s = open_store("corrupt-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = snapshotter_files_new();
    snapshotter_files_add(f, "data", 0);
    CHECK_RC(snapshotter_snapshot(s, "c", "v1", src, f, NULL), SNAPSHOTTER_OK);
    snapshotter_files_free(f);
    snapshotter_file_list_t *fl = NULL;
    CHECK_RC(snapshotter_files(s, "c", "v1", &fl), SNAPSHOTTER_OK);
    path_join(content, sizeof content, base, "corrupt-root/storage/content/xxh3");
    snprintf(fp, sizeof fp, "%s/%s", content, fl->items[0]->digest + 5);
    snapshotter_file_list_free(fl);
    int fd = open(fp, O_RDWR);
    CHECK(fd >= 0);
    chmod(fp, 0644);
    char byte = 'Z';
    CHECK(pwrite(fd, &byte, 1, 5000) == 1);
    close(fd);
    CHECK_RC(snapshotter_restore(s, "c", "v1", out, 0, NULL), SNAPSHOTTER_ECORRUPT);
    CHECK(strstr(snapshotter_last_error(), "corrupt") != NULL);
    path_join(target, sizeof target, out, "data");
    CHECK(access(target, F_OK) != 0);
    snapshotter_verify_report_t *vr = NULL;
    CHECK_RC(snapshotter_verify(s, &vr), SNAPSHOTTER_OK);
    CHECK(vr->problem_count == 1 && strcmp(vr->problems[0]->kind, "corrupt-content") == 0);
    CHECK(vr->problems[0]->digest != NULL && vr->problems[0]->snapshot == NULL);
    CHECK(vr->repair_count == 0);
    snapshotter_verify_report_free(vr);
    /* Repair drops the snapshot whose content is corrupt, and says so. */
    CHECK_RC(snapshotter_repair(s, &vr), SNAPSHOTTER_OK);
    CHECK(vr->problem_count == 1 && vr->repair_count >= 2);
    CHECK(strstr(vr->repairs[0], "dropped snapshot c:v1") != NULL);
    snapshotter_verify_report_free(vr);
    CHECK_RC(snapshotter_verify(s, &vr), SNAPSHOTTER_OK);
    CHECK(vr->problem_count == 0);
    snapshotter_verify_report_free(vr);
    CHECK(access(fp, F_OK) != 0);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* ---- async ------------------------------------------------------------- */

struct progress_log {
    pthread_mutex_t mu;
    int events;
    int monotonic;
    int overlapped;
    int in_cb;
    snapshotter_progress_t last;
    int cancel_after;  /* return non-zero at this event (0: never) */
    int done_calls;
    int done_status;
    pthread_t caller;
    int on_caller_thread;
    int busy_close, busy_wait;
    int status_in_cb, report_in_cb;
    snapshotter_t *store;
};

static int on_progress(const snapshotter_progress_t *p, void *payload) {
    struct progress_log *lg = payload;
    if (__atomic_fetch_add(&lg->in_cb, 1, __ATOMIC_SEQ_CST) != 0) lg->overlapped = 1;
    pthread_mutex_lock(&lg->mu);
    if (pthread_equal(pthread_self(), lg->caller)) lg->on_caller_thread = 1;
    if (lg->events > 0) {
        if (p->files_done < lg->last.files_done || p->bytes_done < lg->last.bytes_done ||
            p->files_total < lg->last.files_total || p->bytes_total < lg->last.bytes_total)
            lg->monotonic = 0;
    }
    if (p->size < sizeof(snapshotter_progress_t)) lg->monotonic = 0;
    lg->last = *p;
    lg->events++;
    int stop = lg->cancel_after && lg->events >= lg->cancel_after;
    pthread_mutex_unlock(&lg->mu);
    if (lg->store && lg->events == 1) {
        lg->busy_close = snapshotter_close(lg->store) == SNAPSHOTTER_EBUSY;
        snapshotter_report_t r = SNAPSHOTTER_REPORT_INIT;
        lg->busy_wait = snapshotter_gc(lg->store, &r) == SNAPSHOTTER_EBUSY;
    }
    __atomic_fetch_sub(&lg->in_cb, 1, __ATOMIC_SEQ_CST);
    return stop;
}

static void on_done(snapshotter_op_t *op, int status, void *payload) {
    struct progress_log *lg = payload;
    pthread_mutex_lock(&lg->mu);
    lg->done_calls++;
    lg->done_status = status;
    /* Results are readable from inside the done callback. */
    lg->status_in_cb = snapshotter_op_status(op);
    lg->report_in_cb = snapshotter_op_report(op) != NULL;
    pthread_mutex_unlock(&lg->mu);
}

static void log_init(struct progress_log *lg) {
    memset(lg, 0, sizeof *lg);
    pthread_mutex_init(&lg->mu, NULL);
    lg->monotonic = 1;
    lg->caller = pthread_self();
}

static int test_async_progress_and_done(void) {
    char src[4096], out[4096];
    path_join(src, sizeof src, base, "async-src");
    path_join(out, sizeof out, base, "async-out");
    CHECK(make_source(src, 8 << 20) == 0);
    snapshotter_t *s = open_store("async-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    struct progress_log lg;
    log_init(&lg);
    lg.store = s; /* the callback checks that close and sync calls are refused */
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_snapshot_async(s, "a", "v1", src, f, on_progress, on_done, &lg, &op), SNAPSHOTTER_OK);
    snapshotter_files_free(f); /* read during the call only */
    CHECK(op != NULL);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    CHECK(lg.done_calls == 1 && lg.done_status == SNAPSHOTTER_OK);
    CHECK(lg.status_in_cb == SNAPSHOTTER_OK && lg.report_in_cb);
    CHECK(lg.events >= 2 && lg.monotonic && !lg.overlapped && !lg.on_caller_thread);
    CHECK(lg.busy_close && lg.busy_wait);
    CHECK(lg.last.phase == SNAPSHOTTER_PHASE_DONE);
    CHECK(lg.last.files_done == 4 && lg.last.files_total == 4);
    CHECK(lg.last.bytes_total == (16 << 20) + 4096 + 17 && lg.last.bytes_done == lg.last.bytes_total);
    CHECK_RC(snapshotter_op_status(op), SNAPSHOTTER_OK);
    CHECK(strcmp(snapshotter_op_error(op), "") == 0);
    const snapshotter_report_t *r = snapshotter_op_report(op);
    CHECK(r != NULL && r->files_stored == 4 && r->size == sizeof(snapshotter_report_t));
    CHECK(snapshotter_op_verify_report(op) == NULL);
    snapshotter_op_free(op);
    /* A freed op is detected, not dereferenced. */
    CHECK_RC(snapshotter_op_status(op), SNAPSHOTTER_EINVAL);

    log_init(&lg);
    CHECK_RC(snapshotter_restore_async(s, "a", "v1", out, 0, on_progress, on_done, &lg, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    CHECK(lg.last.phase == SNAPSHOTTER_PHASE_DONE && lg.last.files_done == 4 && lg.monotonic);
    r = snapshotter_op_report(op);
    CHECK(r != NULL && r->files_linked == 2 && r->files_decoded == 2);
    snapshotter_op_free(op);

    log_init(&lg);
    CHECK_RC(snapshotter_verify_async(s, on_progress, on_done, &lg, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    const snapshotter_verify_report_t *vr = snapshotter_op_verify_report(op);
    CHECK(vr != NULL && vr->problem_count == 0 && vr->content_files_checked == 4);
    snapshotter_op_free(op);

    log_init(&lg);
    CHECK_RC(snapshotter_gc_async(s, on_progress, on_done, &lg, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    CHECK(lg.done_calls == 1);
    snapshotter_op_free(op);

    log_init(&lg);
    CHECK_RC(snapshotter_delete_async(s, "a", "v1", on_done, &lg, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    r = snapshotter_op_report(op);
    CHECK(r != NULL && r->content_files_removed == 4 && lg.done_calls == 1);
    snapshotter_op_free(op);

    /* A failing async op reports its status and message. */
    log_init(&lg);
    CHECK_RC(snapshotter_restore_async(s, "a", "v1", out, 0, NULL, on_done, &lg, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_ENOTFOUND);
    CHECK(lg.done_status == SNAPSHOTTER_ENOTFOUND);
    CHECK(strstr(snapshotter_op_error(op), "a:v1") != NULL);
    CHECK(snapshotter_op_report(op) == NULL);
    snapshotter_op_free(op);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

static int test_cancel_from_progress_callback(void) {
    char src[4096];
    path_join(src, sizeof src, base, "cancel-src");
    CHECK(make_source(src, 32 << 20) == 0);
    snapshotter_t *s = open_store("cancel-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    struct progress_log lg;
    log_init(&lg);
    lg.cancel_after = 2;
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_snapshot_async(s, "c", "v1", src, f, on_progress, on_done, &lg, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_ECANCELED);
    CHECK(lg.done_status == SNAPSHOTTER_ECANCELED && lg.done_calls == 1);
    snapshotter_op_free(op);
    snapshotter_snapshot_list_t *l = NULL;
    CHECK_RC(snapshotter_list(s, &l), SNAPSHOTTER_OK);
    CHECK(l->count == 0); /* nothing recorded */
    snapshotter_snapshot_list_free(l);
    /* The same snapshot then succeeds. */
    CHECK_RC(snapshotter_snapshot(s, "c", "v1", src, f, NULL), SNAPSHOTTER_OK);
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* A progress callback that holds the operation at its first event until
 * released, so the test decides what happens while it is surely running. */
struct hold {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int started, released;
    snapshotter_op_t *op;
};

static void hold_init(struct hold *h) {
    memset(h, 0, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
}

static int held_progress(const snapshotter_progress_t *p, void *payload) {
    (void)p;
    struct hold *h = payload;
    pthread_mutex_lock(&h->mu);
    h->started = 1;
    pthread_cond_broadcast(&h->cv);
    while (!h->released) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
    return 0;
}

static void hold_wait_started(struct hold *h) {
    pthread_mutex_lock(&h->mu);
    while (!h->started) pthread_cond_wait(&h->cv, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

static void hold_release(struct hold *h) {
    pthread_mutex_lock(&h->mu);
    h->released = 1;
    pthread_cond_broadcast(&h->cv);
    pthread_mutex_unlock(&h->mu);
}

/* Cancels the held operation from this thread, then lets it go on. */
static void *cancel_thread(void *arg) {
    struct hold *h = arg;
    hold_wait_started(h);
    snapshotter_op_cancel(h->op);
    hold_release(h);
    return NULL;
}

static int slow_progress(const snapshotter_progress_t *p, void *payload) {
    (void)p;
    (void)payload;
    usleep(2000);
    return 0;
}

static int test_cancel_from_another_thread_and_timeouts(void) {
    char src[4096];
    path_join(src, sizeof src, base, "cancel-src"); /* made by the test before */
    snapshotter_t *s = open_store("cancel2-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    snapshotter_op_t *op = NULL;
    struct hold h;
    hold_init(&h);
    CHECK_RC(snapshotter_snapshot_async(s, "c", "v1", src, f, held_progress, NULL, &h, &op), SNAPSHOTTER_OK);
    hold_wait_started(&h); /* running, and held there */
    CHECK_RC(snapshotter_op_status(op), SNAPSHOTTER_EINPROGRESS);
    CHECK_RC(snapshotter_op_wait(op, 0), SNAPSHOTTER_ETIMEDOUT);
    CHECK_RC(snapshotter_op_wait(op, 1), SNAPSHOTTER_ETIMEDOUT);
    CHECK(snapshotter_op_report(op) == NULL);
    CHECK(snapshotter_active_operations(s) >= 1);
    h.op = op;
    pthread_t t;
    pthread_create(&t, NULL, cancel_thread, &h);
    pthread_join(t, NULL);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_ECANCELED);
    snapshotter_op_free(op);
    CHECK_RC(snapshotter_active_operations(s), 0);
    /* Freeing a running op cancels it and waits. */
    CHECK_RC(snapshotter_snapshot_async(s, "c", "v2", src, f, slow_progress, NULL, NULL, &op), SNAPSHOTTER_OK);
    snapshotter_op_free(op);
    CHECK_RC(snapshotter_active_operations(s), 0);
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

static int test_close_with_operations_pending(void) {
    char src[4096];
    path_join(src, sizeof src, base, "cancel-src");
    snapshotter_t *s = open_store("close-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    struct progress_log lg[3];
    snapshotter_op_t *ops[3];
    const char *versions[] = {"v1", "v2", "v3"};
    for (int i = 0; i < 3; i++) {
        log_init(&lg[i]);
        CHECK_RC(snapshotter_snapshot_async(s, "p", versions[i], src, f, slow_progress, on_done, &lg[i], &ops[i]), SNAPSHOTTER_OK);
    }
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    for (int i = 0; i < 3; i++) {
        CHECK(lg[i].done_calls == 1); /* close waited for every done callback */
        int st = snapshotter_op_status(ops[i]);
        CHECK(st == SNAPSHOTTER_ECANCELED || st == SNAPSHOTTER_OK);
        snapshotter_op_free(ops[i]);
    }
    return 0;
}

/* The op freed inside its own done callback is released afterwards. */
static void free_in_done(snapshotter_op_t *op, int status, void *payload) {
    (void)status;
    snapshotter_op_free(op);
    hold_release(payload);
}

static int test_free_from_done_callback(void) {
    snapshotter_t *s = open_store("freecb-root");
    CHECK(s != NULL);
    struct hold h;
    hold_init(&h);
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_gc_async(s, NULL, free_in_done, &h, &op), SNAPSHOTTER_OK);
    pthread_mutex_lock(&h.mu);
    while (!h.released) pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    CHECK_RC(snapshotter_op_status(op), SNAPSHOTTER_EINVAL); /* already freed */
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* ---- many operations from many threads ---------------------------------- */

struct worker {
    snapshotter_t *s;
    int id;
    int result;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    char src[1024], out[1024], version[32], a[8192], b[8192];
    snprintf(src, sizeof src, "%s/mt-src-%d", base, w->id);
    snprintf(out, sizeof out, "%s/mt-out-%d", base, w->id);
    snprintf(version, sizeof version, "v%d", w->id);
    w->result = 1;
    /* Half the content is shared between workers. */
    if (write_file(src, "shared", 1 << 20, 99) || write_file(src, "own", 300000, 1000 + w->id)) return NULL;
    snapshotter_files_t *f = snapshotter_files_new();
    snapshotter_files_add(f, "shared", w->id % 2);
    snapshotter_files_add(f, "own", 0);
    for (int round = 0; round < 3; round++) {
        snprintf(version, sizeof version, "v%d-%d", w->id, round);
        snapshotter_op_t *op = NULL;
        if (snapshotter_snapshot_async(w->s, "mt", version, src, f, NULL, NULL, NULL, &op) != SNAPSHOTTER_OK) goto out;
        int st = snapshotter_op_wait(op, -1);
        snapshotter_op_free(op);
        if (st != SNAPSHOTTER_OK) goto out;
        char dir[4400];
        snprintf(dir, sizeof dir, "%s-%d", out, round);
        if (snapshotter_restore(w->s, "mt", version, dir, 0, NULL) != SNAPSHOTTER_OK) goto out;
        snprintf(a, sizeof a, "%s/own", src);
        snprintf(b, sizeof b, "%s/own", dir);
        if (!same_file(a, b)) goto out;
        snprintf(a, sizeof a, "%s/shared", src);
        snprintf(b, sizeof b, "%s/shared", dir);
        if (!same_file(a, b)) goto out;
    }
    w->result = 0;
out:
    if (w->result) fprintf(stderr, "worker %d: %s\n", w->id, snapshotter_last_error());
    snapshotter_files_free(f);
    return NULL;
}

static int test_many_threads(void) {
    snapshotter_t *s = open_store("mt-root");
    CHECK(s != NULL);
    enum { N = 8 };
    pthread_t t[N];
    struct worker w[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct worker){s, i, 1};
        pthread_create(&t[i], NULL, worker_main, &w[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < N; i++) CHECK(w[i].result == 0);
    snapshotter_snapshot_list_t *l = NULL;
    CHECK_RC(snapshotter_list(s, &l), SNAPSHOTTER_OK);
    CHECK(l->count == N * 3);
    snapshotter_snapshot_list_free(l);
    snapshotter_verify_report_t *vr = NULL;
    CHECK_RC(snapshotter_verify(s, &vr), SNAPSHOTTER_OK);
    CHECK(vr->problem_count == 0);
    snapshotter_verify_report_free(vr);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* ---- fork ---------------------------------------------------------------- */

/* The child's half of test_fork: the parent's store and operation fail
 * with EFORKED, closing and freeing them returns at once, and a store of
 * its own works. Returns the child's exit status. */
static int fork_child(snapshotter_t *parent, snapshotter_op_t *parent_op, const char *src) {
    snapshotter_snapshot_list_t *l = NULL;
    CHECK_RC(snapshotter_list(parent, &l), SNAPSHOTTER_EFORKED);
    CHECK(strstr(snapshotter_last_error(), "another process") != NULL);
    snapshotter_files_t *f = source_files();
    CHECK_RC(snapshotter_snapshot(parent, "f", "child", src, f, NULL), SNAPSHOTTER_EFORKED);
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_gc_async(parent, NULL, NULL, NULL, &op), SNAPSHOTTER_EFORKED);
    CHECK(op == NULL);
    CHECK_RC(snapshotter_active_operations(parent), SNAPSHOTTER_EFORKED);
    CHECK_RC(snapshotter_op_status(parent_op), SNAPSHOTTER_EFORKED);
    CHECK_RC(snapshotter_op_wait(parent_op, -1), SNAPSHOTTER_EFORKED);
    CHECK_RC(snapshotter_op_cancel(parent_op), SNAPSHOTTER_EFORKED);
    CHECK(snapshotter_op_report(parent_op) == NULL);
    CHECK(strstr(snapshotter_op_error(parent_op), "another process") != NULL);
    snapshotter_op_free(parent_op);                      /* must not wait */
    CHECK_RC(snapshotter_close(parent), SNAPSHOTTER_OK); /* must not hang */
    CHECK_RC(snapshotter_close(parent), SNAPSHOTTER_EINVAL);
    /* A store opened in the child works, on the parent's root too. */
    snapshotter_t *own = open_store("fork-root");
    CHECK(own != NULL);
    CHECK_RC(snapshotter_snapshot(own, "f", "child", src, f, NULL), SNAPSHOTTER_OK);
    char out[4096];
    path_join(out, sizeof out, base, "fork-child-out");
    CHECK_RC(snapshotter_restore(own, "f", "child", out, 0, NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_restore(own, "f", "v1", out, SNAPSHOTTER_RESTORE_OVERWRITE, NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_close(own), SNAPSHOTTER_OK);
    snapshotter_files_free(f);
    return 0;
}

static int test_fork(void) {
    char src[4096];
    path_join(src, sizeof src, base, "fork-src");
    CHECK(make_source(src, 1 << 20) == 0);
    snapshotter_t *s = open_store("fork-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_snapshot_async(s, "f", "v1", src, f, NULL, NULL, NULL, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK); /* the pool's threads run */
    fflush(NULL);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(fork_child(s, op, src));
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* The parent's handles are untouched by the child's close. */
    CHECK_RC(snapshotter_op_status(op), SNAPSHOTTER_OK);
    snapshotter_op_free(op);
    CHECK_RC(snapshotter_snapshot(s, "f", "v2", src, f, NULL), SNAPSHOTTER_OK);
    snapshotter_snapshot_list_t *l = NULL;
    CHECK_RC(snapshotter_list(s, &l), SNAPSHOTTER_OK);
    CHECK(l->count == 3); /* v1, the child's, v2 */
    snapshotter_snapshot_list_free(l);
    snapshotter_verify_report_t *vr = NULL;
    CHECK_RC(snapshotter_verify(s, &vr), SNAPSHOTTER_OK);
    CHECK(vr->problem_count == 0);
    snapshotter_verify_report_free(vr);
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* A wait longer than any clock can count is a wait without limit. */
static int test_huge_timeout(void) {
    snapshotter_t *s = open_store("timeout-root");
    CHECK(s != NULL);
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_gc_async(s, NULL, NULL, NULL, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, INT64_MAX), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, INT64_MAX / 1000), SNAPSHOTTER_OK);
    snapshotter_op_free(op);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* ---- libcurl opened when needed ----------------------------------------- */

static int curl_mapped(void) {
    void *h = dlopen("libcurl.so.4", RTLD_LAZY | RTLD_NOLOAD);
    if (h) dlclose(h);
    return h != NULL;
}

/* Local snapshots and restores never map libcurl (nor the libraries it
 * pulls in); the first HTTP request opens it. Runs first: nothing before
 * it may have made a request. */
static int test_curl_opened_when_needed(void) {
    char src[4096], out[4096], root[4096];
    CHECK(!curl_mapped());
    path_join(src, sizeof src, base, "curl-src");
    path_join(out, sizeof out, base, "curl-out");
    CHECK(make_source(src, 1 << 16) == 0);
    snapshotter_t *s = open_store("curl-root");
    CHECK(s != NULL);
    snapshotter_files_t *f = source_files();
    CHECK_RC(snapshotter_snapshot(s, "local", "v1", src, f, NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_restore(s, "local", "v1", out, 0, NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    CHECK(!curl_mapped());

    /* A registry on a port nobody listens on: the request is made (and
     * fails), so libcurl is open now. */
    path_join(root, sizeof root, base, "curl-root-remote");
    snapshotter_options_t *o = snapshotter_options_new();
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, "http://127.0.0.1:1"), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_open(root, o, &s), SNAPSHOTTER_OK);
    snapshotter_options_free(o);
    int rc = snapshotter_restore(s, "remote", "v1", out, 0, NULL);
    CHECK(rc == SNAPSHOTTER_EREGISTRY || rc == SNAPSHOTTER_ETRANSPORT);
    CHECK(curl_mapped());
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* ---- registry in a directory --------------------------------------------- */

static int test_registry_directory(void) {
    char src[1024], reg[1024], url[1100], out[1024], idx[1100], a[2100], b[2100];
    snprintf(src, sizeof src, "%s/reg-src", base);
    snprintf(reg, sizeof reg, "%s/reg", base);
    snprintf(url, sizeof url, "file://%s", reg);
    snprintf(out, sizeof out, "%s/reg-out", base);
    CHECK(make_source(src, 1 << 16) == 0);
    char root[1024];
    snprintf(root, sizeof root, "%s/reg-root", base);
    snapshotter_options_t *o = snapshotter_options_new();
    CHECK_RC(snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, url), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_REGISTRY_NAMESPACE, "team"), SNAPSHOTTER_OK);
    snapshotter_t *s = NULL;
    CHECK_RC(snapshotter_open(root, o, &s), SNAPSHOTTER_OK);
    snapshotter_files_t *f = source_files();
    CHECK_RC(snapshotter_snapshot(s, "sb", "v1", src, f, NULL), SNAPSHOTTER_OK);
    snprintf(idx, sizeof idx, "%s/index.json", reg);
    CHECK(access(idx, F_OK) == 0);
    /* Keep the content through a second, unpublished snapshot. */
    snapshotter_options_t *none = snapshotter_options_new();
    CHECK_RC(snapshotter_reconfigure(s, none), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_snapshot(s, "sb", "v2", src, f, NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_delete(s, "sb", "v1", NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_restore(s, "sb", "v1", out, 0, NULL), SNAPSHOTTER_ENOTFOUND);
    /* With the registry back, v1 is found there and recorded again. */
    CHECK_RC(snapshotter_reconfigure(s, o), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_restore(s, "sb", "v1", out, 0, NULL), SNAPSHOTTER_OK);
    snprintf(a, sizeof a, "%s/disk.img", src);
    snprintf(b, sizeof b, "%s/disk.img", out);
    CHECK(same_file(a, b));
    snapshotter_snapshot_list_t *l = NULL;
    CHECK_RC(snapshotter_list(s, &l), SNAPSHOTTER_OK);
    CHECK(l->count == 2);
    snapshotter_snapshot_list_free(l);
    CHECK_RC(snapshotter_options_set_string(none, SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, "ftp://nowhere"), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_reconfigure(s, none), SNAPSHOTTER_EINVAL);
    CHECK(strstr(snapshotter_last_error(), "ftp://nowhere") != NULL);
    snapshotter_options_free(none);
    snapshotter_options_free(o);
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

/* ---- logging ------------------------------------------------------------ */

static atomic_int log_lines;
static void on_log(int level, const char *message, void *payload) {
    (void)payload;
    if (level >= SNAPSHOTTER_LOG_ERROR && level <= SNAPSHOTTER_LOG_DEBUG && message && *message) atomic_fetch_add(&log_lines, 1);
}

/* Per-call settings: a snapshot and a restore with their own registry use
 * it for that operation only; the store keeps its settings (none here). */
static int test_per_call_options(void) {
    char src[1024], reg[1024], url[1100], out[1024], idx[1100], a[2100], b[2100];
    snprintf(src, sizeof src, "%s/call-src", base);
    snprintf(reg, sizeof reg, "%s/call-reg", base);
    snprintf(url, sizeof url, "file://%s", reg);
    snprintf(out, sizeof out, "%s/call-out", base);
    CHECK(make_source(src, 1 << 16) == 0);
    snapshotter_t *s = open_store("call-root");
    CHECK(s != NULL);
    snapshotter_options_t *o = snapshotter_options_new();
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, url), SNAPSHOTTER_OK);
    snapshotter_files_t *f = source_files();
    snapshotter_op_t *op = NULL;
    CHECK_RC(snapshotter_snapshot_with_options_async(s, "sb", "v1", src, f, o, NULL, NULL, NULL, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    snapshotter_op_free(op);
    snprintf(idx, sizeof idx, "%s/index.json", reg);
    CHECK(access(idx, F_OK) == 0);
    /* The store has no registry: v2 stays local, and v1 once deleted is
     * not found without the call's registry. */
    CHECK_RC(snapshotter_snapshot(s, "sb", "v2", src, f, NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_delete(s, "sb", "v1", NULL), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_restore(s, "sb", "v1", out, 0, NULL), SNAPSHOTTER_ENOTFOUND);
    CHECK_RC(snapshotter_restore_with_options_async(s, "sb", "v1", out, 0, o, NULL, NULL, NULL, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    snapshotter_op_free(op);
    snprintf(a, sizeof a, "%s/disk.img", src);
    snprintf(b, sizeof b, "%s/disk.img", out);
    CHECK(same_file(a, b));
    /* NULL options are the store's; bad ones fail before starting. */
    CHECK_RC(snapshotter_restore_with_options_async(s, "sb", "v2", out, SNAPSHOTTER_RESTORE_OVERWRITE, NULL, NULL,
                                                    NULL, NULL, &op), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_op_wait(op, -1), SNAPSHOTTER_OK);
    snapshotter_op_free(op);
    CHECK_RC(snapshotter_options_set_string(o, SNAPSHOTTER_OPT_REGISTRY_ENDPOINT, "ftp://nowhere"), SNAPSHOTTER_OK);
    CHECK_RC(snapshotter_snapshot_with_options_async(s, "sb", "v3", src, f, o, NULL, NULL, NULL, &op), SNAPSHOTTER_EINVAL);
    CHECK(op == NULL);
    CHECK(strstr(snapshotter_last_error(), "ftp://nowhere") != NULL);
    snapshotter_options_free(o);
    snapshotter_files_free(f);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

static int test_log_callback(void) {
    CHECK_RC(snapshotter_set_log_callback(on_log, 99, NULL), SNAPSHOTTER_EINVAL);
    CHECK_RC(snapshotter_set_log_callback(on_log, SNAPSHOTTER_LOG_INFO, NULL), SNAPSHOTTER_OK);
    snapshotter_t *s = open_store("log-root");
    CHECK(s != NULL);
    CHECK_RC(snapshotter_gc(s, NULL), SNAPSHOTTER_OK);
    CHECK(atomic_load(&log_lines) >= 1);
    CHECK_RC(snapshotter_set_log_callback(NULL, 0, NULL), SNAPSHOTTER_OK);
    int before = atomic_load(&log_lines);
    CHECK_RC(snapshotter_gc(s, NULL), SNAPSHOTTER_OK);
    CHECK(atomic_load(&log_lines) == before);
    CHECK_RC(snapshotter_close(s), SNAPSHOTTER_OK);
    return 0;
}

#define RUN(fn)                                                 \
    do {                                                        \
        current = #fn;                                          \
        if (fn() == 0) {                                        \
            passed++;                                           \
            printf("ok %s\n", #fn);                             \
        } else {                                                \
            failed++;                                           \
            printf("not ok %s\n", #fn);                         \
        }                                                       \
        fflush(stdout);                                         \
    } while (0)

int main(void) {
    const char *tmp = getenv("TMPDIR");
    snprintf(base, sizeof base, "%s/snapshotter-ctest-XXXXXX", tmp ? tmp : "/tmp");
    if (!mkdtemp(base)) { perror("mkdtemp"); return 2; }
    RUN(test_curl_opened_when_needed);
    RUN(test_version_and_errors);
    RUN(test_options);
    RUN(test_bad_inputs);
    RUN(test_sync_round_trip);
    RUN(test_durable_restore);
    RUN(test_report_size_is_respected);
    RUN(test_corrupt_content);
    RUN(test_async_progress_and_done);
    RUN(test_cancel_from_progress_callback);
    RUN(test_cancel_from_another_thread_and_timeouts);
    RUN(test_close_with_operations_pending);
    RUN(test_free_from_done_callback);
    RUN(test_many_threads);
    RUN(test_registry_directory);
    RUN(test_per_call_options);
    RUN(test_log_callback);
    RUN(test_huge_timeout);
    RUN(test_fork);
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
