#ifndef SNAPSHOTTER_CSHIM_H
#define SNAPSHOTTER_CSHIM_H
/* System calls and constants that Swift's Glibc module does not expose
 * (they need _GNU_SOURCE) or that are variadic (ioctl). */
#include <stdint.h>
#include <sys/types.h>

int cshim_seek_data(void);
int cshim_seek_hole(void);
/* renameat2(RENAME_NOREPLACE); returns -1 with errno set on failure. */
int cshim_rename_noreplace(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
/* renameat2(RENAME_EXCHANGE): swaps two names atomically (tests race with it). */
int cshim_rename_exchange(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
/* ioctl(FICLONE): reflink the whole of src into dst. */
int cshim_ficlone(int dst_fd, int src_fd);
ssize_t cshim_copy_file_range(int fd_in, int64_t *off_in, int fd_out, int64_t *off_out, size_t len);
/* sync_file_range(SYNC_FILE_RANGE_WRITE) of the whole file: starts
 * writeback without waiting for it (a later fsync has less to do). */
int cshim_start_writeback(int fd);
/* syncfs(2): writes back and flushes the whole filesystem holding fd. */
int cshim_syncfs(int fd);
int cshim_o_tmpfile(void);
int cshim_o_cloexec(void);
int cshim_o_nofollow(void);
int cshim_o_directory(void);
int cshim_o_path(void);
int cshim_at_empty_path(void);
int cshim_at_symlink_nofollow(void);
/* Process identity for leases: start time of pid in clock ticks since boot
 * (field 22 of /proc/pid/stat), or 0 when the process does not exist. */
uint64_t cshim_process_start_ticks(int pid);
/* Nanosecond mtime of a stat result. */
int64_t cshim_stat_mtime_ns(const void *st);
/* openat2(2) with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS (| RESOLVE_NO_XDEV
 * when no_xdev): opens path relative to dirfd without leaving it and
 * without following any symlink on the way. Returns -1 with errno set;
 * ENOSYS (or EPERM under some seccomp filters) where the kernel lacks it. */
int cshim_openat2_beneath(int dirfd, const char *path, int flags, unsigned int mode, int no_xdev);
/* 64 random bits from getrandom(2). */
uint64_t cshim_random_u64(void);
/* An open-file-description lock (F_OFD_SETLK) on the whole of fd:
 * exclusive (F_WRLCK) or shared (F_RDLCK); never waits. 0 on success, -1
 * with errno EAGAIN or EACCES when another open file description holds a
 * conflicting lock (in any process, this one included). */
int cshim_ofd_trylock(int fd, int exclusive);
/* Names the calling thread (at most 15 bytes are kept). */
void cshim_set_thread_name(const char *name);
/* Gives the free pages of every malloc arena back to the kernel
 * (glibc's malloc_trim(0)); nothing elsewhere. */
void cshim_trim_heap(void);
#endif
