#define _GNU_SOURCE
#include "cshim.h"
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

int cshim_seek_data(void) { return SEEK_DATA; }
int cshim_seek_hole(void) { return SEEK_HOLE; }

int cshim_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_NOREPLACE);
}

int cshim_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath) {
    return renameat2(olddirfd, oldpath, newdirfd, newpath, RENAME_EXCHANGE);
}

int cshim_ficlone(int dst_fd, int src_fd) {
    return ioctl(dst_fd, FICLONE, src_fd);
}

ssize_t cshim_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len) {
    loff_t in = (loff_t)*off_in, out = (loff_t)*off_out;
    ssize_t n = copy_file_range(fd_in, &in, fd_out, &out, len, 0);
    *off_in = (int64_t)in;
    *off_out = (int64_t)out;
    return n;
}

int cshim_o_tmpfile(void) { return O_TMPFILE; }
int cshim_o_cloexec(void) { return O_CLOEXEC; }
int cshim_o_nofollow(void) { return O_NOFOLLOW; }
int cshim_o_directory(void) { return O_DIRECTORY; }
int cshim_o_path(void) { return O_PATH; }
int cshim_at_empty_path(void) { return AT_EMPTY_PATH; }
int cshim_at_symlink_nofollow(void) { return AT_SYMLINK_NOFOLLOW; }

uint64_t cshim_process_start_ticks(int pid) {
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "re");
    if (!f) return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name (field 2) may hold spaces and parentheses: fields
     * after it start past the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p) return 0;
    p++;
    int field = 2;
    unsigned long long start = 0;
    for (char *tok = strtok(p, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 22) { start = strtoull(tok, NULL, 10); break; }
    }
    return (uint64_t)start;
}

int64_t cshim_stat_mtime_ns(const void *st) {
    const struct stat *s = (const struct stat *)st;
    return (int64_t)s->st_mtim.tv_sec * 1000000000LL + (int64_t)s->st_mtim.tv_nsec;
}

uint64_t cshim_random_u64(void) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, 0) != (ssize_t)sizeof v) {
        v = (uint64_t)getpid() * 0x9E3779B97F4A7C15ULL;
    }
    return v;
}

int cshim_start_writeback(int fd) {
    return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int cshim_syncfs(int fd) {
    return syncfs(fd);
}

int cshim_openat2_beneath(int dirfd, const char *path, int flags, unsigned int mode, int no_xdev) {
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (uint64_t)(unsigned int)flags;
    how.mode = (flags & (O_CREAT | O_TMPFILE)) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | (no_xdev ? RESOLVE_NO_XDEV : 0);
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
#else
    (void)dirfd; (void)path; (void)flags; (void)mode; (void)no_xdev;
    errno = ENOSYS;
    return -1;
#endif
}

int cshim_ofd_trylock(int fd, int exclusive) {
    struct flock fl;
    memset(&fl, 0, sizeof fl);
    fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 0;
    int rc;
    do { rc = fcntl(fd, F_OFD_SETLK, &fl); } while (rc == -1 && errno == EINTR);
    return rc;
}

void cshim_set_thread_name(const char *name) {
    char buf[16];
    snprintf(buf, sizeof buf, "%s", name);
    (void)pthread_setname_np(pthread_self(), buf);
}

void cshim_trim_heap(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}
