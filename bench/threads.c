/* Threads a process has after loading libsnapshotter and opening a store
 * (with a Dragonfly endpoint set, as a user of it would), and their names:
 * what embedding the library costs in threads. Usage: threads ROOT */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <snapshotter.h>

static int list_threads(const char *when) {
    DIR *d = opendir("/proc/self/task");
    if (!d) return -1;
    int n = 0;
    char names[4096] = "";
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        char path[300], comm[64] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fgets(comm, sizeof comm, f)) comm[strcspn(comm, "\n")] = 0;
            fclose(f);
        }
        if (strlen(names) + strlen(comm) + 3 < sizeof names) {
            if (n) strcat(names, ", ");
            strcat(names, comm);
        }
        n++;
    }
    closedir(d);
    printf("  threads %-28s %2d  (%s)\n", when, n, names);
    return n;
}

int main(int argc, char **argv) {
    if (argc != 2) { fprintf(stderr, "usage: threads ROOT\n"); return 2; }
    list_threads("before open");
    snapshotter_options_t *o = snapshotter_options_new();
    snapshotter_options_set_string(o, SNAPSHOTTER_OPT_CONTENT_URL, "s3://bucket");
    snapshotter_options_set_string(o, SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT, "unix:///run/dragonfly/dfdaemon.sock");
    snapshotter_t *s = NULL;
    int rc = snapshotter_open(argv[1], o, &s);
    snapshotter_options_free(o);
    if (rc != SNAPSHOTTER_OK) { fprintf(stderr, "open: %s\n", snapshotter_last_error()); return 1; }
    list_threads("after open (Dragonfly set)");
    snapshotter_close(s);
    return 0;
}
