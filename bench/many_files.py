#!/usr/bin/env python3
"""The many-small-files section of the benchmark (issue 17): cold snapshot,
re-snapshot and restore of N small read-only files and of N small
read-write files, against `cp -a` + `sync`, `cp -al` and `cat` run in the
same session on the same files, with snapshotctl's peak RSS.

Run through bench/run.sh (BENCH_MANY_FILES sets N, default 100000; 0 skips
the section; BENCH_MANY_SETS picks ro, rw or both; BENCH_MANY_TMPFS=SIZE
works on a tmpfs mounted for the run), or alone:
    python3 bench/many_files.py --bin .build/release/snapshotctl --files 20000
A million files: --files 1000000 --sets ro --reps 1 --tmpfs 24g (as root);
--record-format 3 for stores that commit a snapshot in groups (bounded
memory at any file count).
Files are 1 to 8 KiB, 1,000 per directory. Every timed run starts after a
`sync`, the sides alternate, the median is reported. Nothing is deleted
until the end (about 2 GiB a set at 100,000 files and 3 runs a side).
"""

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import Bench, fmt_s, log, run, sync  # noqa: E402

PER_DIR = 1000


def make_small_files(base, count, mode, seed):
    """`count` distinct files of 1-8 KiB; returns their relative paths."""
    paths = []
    rnd = os.urandom(8 * 1024 + 64)
    for i in range(count):
        d = f"d{i // PER_DIR:04d}"
        if i % PER_DIR == 0:
            os.makedirs(os.path.join(base, d), exist_ok=True)
        rel = f"{d}/f{i:07d}"
        size = 1024 + (i * 2654435761 + seed) % (7 * 1024)
        p = os.path.join(base, rel)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            # Distinct content: the index and seed up front.
            os.write(fd, f"{seed}:{i}:".encode() + rnd[:size])
        finally:
            os.close(fd)
        os.chmod(p, mode)
        paths.append(rel)
    return paths


def us_per_file(t, n):
    return f"{t / n * 1e6:.1f} us/file"


def section(b, kind, src, paths, rows, raw):
    """Cold snapshot, re-snapshot and restore of one set (kind: ro or rw)."""
    n = len(paths)
    flag = "--ro" if kind == "ro" else "--rw"
    args = b.file_args(paths, flag)
    # Nothing is deleted until the run ends: on ext4 without a journal, new
    # inodes right after a large delete cost a rescan of the freed ones (for
    # cp as for a snapshot), which would measure the last delete instead
    # (docs/design-notes.md). Each cold snapshot gets a fresh root, each
    # copy and output a fresh directory. The re-snapshots and restores use
    # the last cold snapshot's root: a read-only snapshot links the sources
    # into its store, which changes their ctime, so only the last store's
    # inode records still match them.
    root = b.path(f"root-{kind}-{b.reps - 1}")
    log(f"bench: {n} small {kind} files: cold snapshot vs cp -a + sync ...")

    def copy_sync(r):
        t0 = time.perf_counter()
        run(["cp", "-a", src, b.path(f"cp-{kind}-{r}")])
        run(["sync"])
        return time.perf_counter() - t0

    def cold_snapshot(r):
        t, out = b.ctl(["snapshot", "--root", b.path(f"root-{kind}-{r}"), "--name", f"many/{kind}", "--version", "cold",
                        "--base-dir", src] + args, rss_label=f"{kind} snapshot")
        if f"{n} new content" not in out:
            b.notes.append(f"{kind} cold snapshot did not store every file as new content: {out}")
        return t

    cp_t, snap_t = b.alternate(copy_sync, cold_snapshot)
    raw[f"{kind} cp -a + sync"], raw[f"{kind} cold snapshot"] = cp_t, snap_t
    mc, ms = statistics.median(cp_t), statistics.median(snap_t)
    rows.append((f"{kind}: cold snapshot, {n} files", f"{fmt_s(ms)} ({us_per_file(ms, n)})",
                 f"cp -a + sync: {fmt_s(mc)}", f"{mc / ms:.2f}x", ">= 0.80x", mc / ms >= 0.8))

    log(f"bench: {n} small {kind} files: re-snapshot vs cat ...")
    cat_argv = ["find", src, "-type", "f", "-exec", "cat", "{}", "+"]

    def cat_files(r):
        t0 = time.perf_counter()
        with open(os.devnull, "wb") as null:
            subprocess.run(cat_argv, stdout=null, check=True)
        return time.perf_counter() - t0

    def resnapshot(r):
        t, out = b.ctl(["snapshot", "--root", root, "--name", f"many/{kind}", "--version", f"again-{r}",
                        "--base-dir", src] + args, rss_label=f"{kind} re-snapshot")
        if kind == "ro" and f"{n} known by inode" not in out:
            b.notes.append(f"ro re-snapshot did not recognise every file by inode: {out}")
        return t

    cat_t, re_t = b.alternate(cat_files, resnapshot)
    raw[f"{kind} cat"], raw[f"{kind} re-snapshot"] = cat_t, re_t
    mc, mr = statistics.median(cat_t), statistics.median(re_t)
    target = "<= 5 us/file" if kind == "ro" else ""
    rows.append((f"{kind}: re-snapshot, unchanged", f"{fmt_s(mr)} ({us_per_file(mr, n)})", f"cat: {fmt_s(mc)}",
                 f"{mc / mr:.2f}x", target, (mr / n * 1e6 <= 5) if kind == "ro" else None))

    log(f"bench: {n} small {kind} files: restore vs cp -al / cp -a ...")
    base_argv = ["cp", "-al"] if kind == "ro" else ["cp", "-a"]

    def copy_tree(r):
        return b.timed(base_argv + [src, b.path(f"cpr-{kind}-{r}")])

    def restore(r):
        t, out = b.ctl(["restore", "--root", root, "--name", f"many/{kind}", "--version", "cold",
                        "--output", b.path(f"out-{kind}-{r}")], rss_label=f"{kind} restore")
        return t

    cp_t, rs_t = b.alternate(copy_tree, restore)
    raw[f"{kind} {' '.join(base_argv)}"], raw[f"{kind} restore"] = cp_t, rs_t
    mc, mr = statistics.median(cp_t), statistics.median(rs_t)
    target = "<= 15 us/file" if kind == "ro" else ""
    rows.append((f"{kind}: restore", f"{fmt_s(mr)} ({us_per_file(mr, n)})",
                 f"{' '.join(base_argv)}: {fmt_s(mc)} ({us_per_file(mc, n)})", f"{mc / mr:.2f}x", target,
                 (mr / n * 1e6 <= 15) if kind == "ro" else None))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="snapshotctl (release build)")
    ap.add_argument("--files", type=int, default=100000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--sets", default="ro,rw", help="which sets: ro, rw or both")
    ap.add_argument("--tmpfs", metavar="SIZE",
                    help="work on a tmpfs of this size mounted for the run (root only; e.g. 24g for a million files "
                         "when the disk is slow); no inode limit, so a million files and their links fit")
    ap.add_argument("--record-format", type=int, choices=[1, 2, 3],
                    help="the record format the stores write (snapshotctl --record-format; default: snapshotctl's)")
    args = ap.parse_args()
    parent = os.environ.get("BENCH_DIR") or tempfile.gettempdir()
    work = tempfile.mkdtemp(prefix="snapshotter-many.", dir=parent)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    mounted = False
    try:
        if args.tmpfs:
            run(["mount", "-t", "tmpfs", "-o", f"size={args.tmpfs},nr_inodes=0,mode=0700", "tmpfs", work])
            mounted = True
        bench_many(args, work)
    finally:
        if mounted:
            for d in os.listdir(work):
                shutil.rmtree(os.path.join(work, d), ignore_errors=True)
            subprocess.run(["umount", work], check=False)
        shutil.rmtree(work, ignore_errors=True)


def bench_many(args, work):
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    b = Bench(args.bin, work, args.reps)
    if args.record_format:
        b.ctl_args = ["--record-format", str(args.record_format)]
    fs = run(["df", "--output=fstype", work]).stdout.split()[-1]
    log(f"bench: many small files: {args.files} per set in {work} ({fs}), {os.cpu_count()} cores, "
        f"{args.reps} runs per side, median reported; record format {args.record_format or 'default'}; load average {load}")
    rows, raw = [], {}
    for kind in args.sets.split(","):
        src = b.path(f"src-{kind}")
        t0 = time.perf_counter()
        paths = make_small_files(src, args.files, 0o444 if kind == "ro" else 0o644, seed=len(kind) + os.getpid())
        sync()
        log(f"bench: made {len(paths)} {kind} files in {time.perf_counter() - t0:.1f} s")
        section(b, kind, src, paths, rows, raw)
    for label, kib in b.peak_rss.items():
        rows.append((f"peak RSS, {label}", f"{kib / 1024:.1f} MiB", "", "", "<= 64 MiB", kib <= 64 * 1024))
    headers = ("measurement", "snapshotctl", "baseline", "ratio", "target", "result")
    table = [headers] + [(m, v, bl, ra, tg, "" if ok is None else ("PASS" if ok else "MISS"))
                         for m, v, bl, ra, tg, ok in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    log("")
    for r in table:
        log("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    log("ratio: baseline time / snapshotctl time (above 1: snapshotctl is faster)")
    for note in b.notes:
        log(f"bench: note: {note}")
    log("bench: load average before and after: " + load + " / " + " ".join(open("/proc/loadavg").read().split()[:3]))
    log("bench: each run in order (s): " + "; ".join(f"{k}: " + " ".join(f"{t:.3f}" for t in v) for k, v in raw.items()))


if __name__ == "__main__":
    main()
