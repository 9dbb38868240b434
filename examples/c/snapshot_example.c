/* Snapshot a sandbox checkpoint and restore it, printing progress.
 *
 *   cc snapshot_example.c $(pkg-config --cflags --libs snapshotter) -o example
 *   ./example [work-dir]
 */
#define _GNU_SOURCE
#include <snapshotter.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int make_file(const char *dir, const char *name, size_t size, int sparse) {
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    if (sparse) {
        /* A disk image: mostly holes, some data. */
        if (ftruncate(fileno(f), (off_t)size) != 0) { fclose(f); return -1; }
        char block[65536];
        for (size_t off = 0; off < size; off += size / 8) {
            memset(block, (int)(off / 4096), sizeof block);
            if (fseek(f, (long)off, SEEK_SET) != 0 || fwrite(block, 1, sizeof block, f) != sizeof block) { fclose(f); return -1; }
        }
    } else {
        unsigned x = (unsigned)size;
        char buf[65536];
        for (size_t done = 0; done < size; done += sizeof buf) {
            size_t n = size - done < sizeof buf ? size - done : sizeof buf;
            for (size_t i = 0; i < n; i++) { x = x * 1103515245u + 12345u; buf[i] = (char)(x >> 16); }
            if (fwrite(buf, 1, n, f) != n) { fclose(f); return -1; }
        }
    }
    return fclose(f);
}

static int on_progress(const snapshotter_progress_t *p, void *payload) {
    const char *verb = payload;
    printf("\r%s: %lld/%lld files, %.1f/%.1f MiB", verb, (long long)p->files_done, (long long)p->files_total,
           (double)p->bytes_done / 1048576.0, (double)p->bytes_total / 1048576.0);
    if (p->phase == SNAPSHOTTER_PHASE_DONE) printf("\n");
    fflush(stdout);
    return 0; /* non-zero would cancel */
}

static int fail(const char *what, int rc) {
    fprintf(stderr, "%s failed: %s (%s)\n", what, snapshotter_last_error(), snapshotter_strerror(rc));
    return 1;
}

int main(int argc, char **argv) {
    char work[1024], src[1100], root[1100], out[1100];
    if (argc > 1) snprintf(work, sizeof work, "%s", argv[1]);
    else {
        snprintf(work, sizeof work, "/tmp/snapshotter-example-XXXXXX");
        if (!mkdtemp(work)) { perror("mkdtemp"); return 1; }
    }
    snprintf(src, sizeof src, "%s/sandbox", work);
    snprintf(root, sizeof root, "%s/store", work);
    snprintf(out, sizeof out, "%s/restored", work);
    mkdir(src, 0755);
    char ckpt[1200];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", src);
    mkdir(ckpt, 0755);
    if (make_file(src, "checkpoint/memory.dump", 10 << 20, 0) || make_file(src, "checkpoint/state", 256 << 10, 0) ||
        make_file(src, "disk.img", 50 << 20, 1) || make_file(src, "config.json", 64, 0) ||
        make_file(src, "metadata.json", 128, 0)) {
        perror("writing the sample checkpoint");
        return 1;
    }
    printf("libsnapshotter %s\n", snapshotter_version_string());

    snapshotter_t *s = NULL;
    int rc = snapshotter_open(root, NULL, &s);
    if (rc) return fail("open", rc);

    snapshotter_files_t *files = snapshotter_files_new();
    snapshotter_files_add(files, "checkpoint/memory.dump", 1); /* read-only: hard-linked */
    snapshotter_files_add(files, "checkpoint/state", 1);
    snapshotter_files_add(files, "disk.img", 0);
    snapshotter_files_add(files, "config.json", 0);
    snapshotter_files_add(files, "metadata.json", 0);

    double t0 = now();
    snapshotter_op_t *op = NULL;
    rc = snapshotter_snapshot_async(s, "sandbox", "v1", src, files, on_progress, NULL, "snapshot", &op);
    snapshotter_files_free(files);
    if (rc) return fail("snapshot", rc);
    rc = snapshotter_op_wait(op, -1);
    if (rc) return fail("snapshot", rc);
    const snapshotter_report_t *r = snapshotter_op_report(op);
    printf("snapshot sandbox:v1: %lld new content files in %.3f s\n", (long long)r->files_stored, now() - t0);
    snapshotter_op_free(op);

    t0 = now();
    rc = snapshotter_restore_async(s, "sandbox", "v1", out, 0, on_progress, NULL, "restore", &op);
    if (rc) return fail("restore", rc);
    rc = snapshotter_op_wait(op, -1);
    if (rc) return fail("restore", rc);
    r = snapshotter_op_report(op);
    printf("restore: %lld linked, %lld decoded in %.3f s into %s\n", (long long)r->files_linked,
           (long long)r->files_decoded, now() - t0, out);
    snapshotter_op_free(op);

    snapshotter_file_list_t *list = NULL;
    rc = snapshotter_files(s, "sandbox", "v1", &list);
    if (rc) return fail("files", rc);
    for (size_t i = 0; i < list->count; i++) {
        const snapshotter_file_info_t *f = list->items[i];
        printf("  %-24s %10lld bytes  %s%s\n", f->relative_path, (long long)f->size, f->digest, f->read_only ? "  (read-only)" : "");
    }
    snapshotter_file_list_free(list);
    snapshotter_close(s);
    return 0;
}
