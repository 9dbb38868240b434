/* Cost of crossing the C ABI, measured against a plain C call in the same
 * run: a synchronous no-op round trip (handle lookup and back), and one
 * progress callback (library-side cost per delivered event). */
#define _GNU_SOURCE
#include <snapshotter.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

__attribute__((noinline)) static int plain_c_call(volatile int *x) { return *x + 1; }

static long events;
static int count_progress(const snapshotter_progress_t *p, void *payload) {
    (void)p;
    (void)payload;
    events++;
    return 0;
}

static double median(double *v, int n) {
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            if (v[j] < v[i]) { double t = v[i]; v[i] = v[j]; v[j] = t; }
    return v[n / 2];
}

int main(void) {
    char base[] = "/tmp/snapshotter-abibench-XXXXXX";
    if (!mkdtemp(base)) return 1;
    char root[256], src[256], out[256];
    snprintf(root, sizeof root, "%s/root", base);
    snprintf(src, sizeof src, "%s/src", base);
    mkdir(src, 0755);
    snapshotter_options_t *o = snapshotter_options_new();
    snapshotter_options_set_int(o, SNAPSHOTTER_OPT_PROGRESS_INTERVAL_US, 0);
    snapshotter_options_set_int(o, SNAPSHOTTER_OPT_GC_INTERVAL_SECONDS, 0);
    snapshotter_t *s = NULL;
    if (snapshotter_open(root, o, &s)) { fprintf(stderr, "%s\n", snapshotter_last_error()); return 1; }
    snapshotter_options_free(o);

    /* 1. No-op round trip. */
    const long N = 2000000;
    volatile int x = 0;
    double t0 = now_ns();
    for (long i = 0; i < N; i++) x = plain_c_call(&x);
    double plain = (now_ns() - t0) / (double)N;
    t0 = now_ns();
    for (long i = 0; i < N; i++) x += snapshotter_active_operations(s);
    double roundtrip = (now_ns() - t0) / (double)N;
    t0 = now_ns();
    for (long i = 0; i < N; i++) x += snapshotter_version();
    double version = (now_ns() - t0) / (double)N;

    /* 2. Progress callbacks: verify passes over many tiny content files
     * with every step reported (two events a file), with and without a
     * callback, alternating; CPU time of the process, median of 9 each. */
    enum { FILES = 4000, REPS = 9 };
    snapshotter_files_t *files = snapshotter_files_new();
    for (int i = 0; i < FILES; i++) {
        char p[512], rel[32];
        snprintf(rel, sizeof rel, "f%05d", i);
        snprintf(p, sizeof p, "%s/%s", src, rel);
        FILE *f = fopen(p, "w");
        fprintf(f, "%d\n", i);
        fclose(f);
        snapshotter_files_add(files, rel, 0);
    }
    if (snapshotter_snapshot(s, "bench", "v1", src, files, NULL)) { fprintf(stderr, "%s\n", snapshotter_last_error()); return 1; }
    double with[REPS], without[REPS];
    long per_run_events = 0;
    for (int r = 0; r < REPS * 2; r++) {
        int cb = r % 2;
        snapshotter_op_t *op = NULL;
        events = 0;
        double c0 = cpu_ns();
        snapshotter_verify_async(s, cb ? count_progress : NULL, NULL, NULL, &op);
        snapshotter_op_wait(op, -1);
        double t = cpu_ns() - c0;
        snapshotter_op_free(op);
        if (cb) { with[r / 2] = t; per_run_events = events; } else without[r / 2] = t;
    }
    (void)out;
    double mw = median(with, REPS), mo = median(without, REPS);
    double per_event = (mw - mo) / (double)(per_run_events ? per_run_events : 1);

    printf("C ABI overhead (medians; plain C call measured in the same run)\n");
    printf("  plain C function call            %8.1f ns\n", plain);
    printf("  snapshotter_version()            %8.1f ns  (%.1fx a plain call)\n", version, version / plain);
    printf("  no-op round trip (handle lookup) %8.1f ns  (%.1fx a plain call)\n", roundtrip, roundtrip / plain);
    printf("  verify of %d files (CPU time): %.2f ms without progress, %.2f ms with %ld callbacks\n", FILES, mo / 1e6, mw / 1e6, per_run_events);
    printf("  one progress callback            %8.1f ns  (CPU, library side, per delivered event)\n", per_event);
    snapshotter_files_free(files);
    snapshotter_close(s);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    return system(cmd) == 0 ? 0 : 1;
}
