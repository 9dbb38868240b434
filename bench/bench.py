#!/usr/bin/env python3
"""libsnapshotter benchmark: snapshotctl against the plain tools doing the
same work, measured in one run on the same files.

Run through bench/run.sh, which installs what is missing and builds
snapshotctl in release mode first. Each comparison alternates the two sides
(A B, B A, A B, ...) with `sync` before every timed run, so dirty pages from
one side are never written back on the other side's clock, and reports the
median. The page cache is warm for both sides (every input was just written
or read); BENCH_DROP_CACHES=1 drops it before each cold-snapshot and durable
copy run instead (root only). Nothing here fails the run: a missed target is
reported as MISS.
"""

import argparse
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

MiB = 1 << 20
GiB = 1 << 30

# The 1 GiB set: large memory-dump-like files plus many medium ones.
BIG_SET = [("large", 4, 128 * MiB), ("medium", 64, 4 * MiB), ("small", 1024, 256 * 1024)]
# The per-file restore set: many small read-only files and a few large ones,
# so the cost per file shows and does not depend on the file size.
RO_SET = [("small", 2000, 4096), ("large", 4, 32 * MiB)]


def log(msg):
    print(msg, flush=True)


def die(msg):
    print(f"bench: error: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


class Generator:
    """Incompressible, distinct bytes, fast: AES-CTR of zeros from openssl
    (about 1 GB/s), or os.urandom when openssl is missing."""

    def __init__(self, seed):
        self.proc = None
        if shutil.which("openssl"):
            self.proc = subprocess.Popen(
                ["openssl", "enc", "-aes-128-ctr", "-nosalt", "-pbkdf2", "-pass", f"pass:{seed}", "-in", "/dev/zero"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, bufsize=0)

    def write(self, path, size):
        with open(path, "wb") as f:
            left = size
            while left > 0:
                n = min(left, 4 * MiB)
                chunk = self.proc.stdout.read(n) if self.proc else os.urandom(n)
                if not chunk:
                    die("the data generator stopped")
                f.write(chunk)
                left -= len(chunk)

    def close(self):
        if self.proc:
            self.proc.kill()
            self.proc.wait()


def make_set(gen, base, spec, mode=0o644):
    """Writes the files of `spec` under `base`; returns their relative paths."""
    paths = []
    for group, count, size in spec:
        os.makedirs(os.path.join(base, group), exist_ok=True)
        for i in range(count):
            rel = f"{group}/{group}-{i:05d}.bin"
            p = os.path.join(base, rel)
            gen.write(p, size)
            os.chmod(p, mode)
            paths.append(rel)
    return paths


def set_size(spec):
    return sum(count * size for _, count, size in spec)


def run(argv, check=True):
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if check and p.returncode != 0:
        die(f"{' '.join(argv[:3])} ... exited {p.returncode}: {p.stderr.strip()[-2000:]}")
    return p


def children_cpu():
    """User + system seconds of every child process waited for so far (a
    child's own waited-for children included)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def sync():
    os.sync()


def warm_memory(gib):
    """Touches `gib` GiB of memory once and frees it (BENCH_WARM_GIB). On a
    VM whose host backs guest memory lazily, a page's first use is slow
    (seen here: 2 s per GiB, and freed memory goes back to the host within
    seconds), which makes single runs noisy; alternating the sides and
    taking the median of several runs is what evens it out."""
    blocks = []
    for _ in range(int(gib * 2)):
        blocks.append(b"\x01" * (512 * MiB))
    del blocks


ENGINE_TIME = re.compile(r", ([0-9.]+) (ms|s)$")


def engine_seconds(out):
    """The operation's own time, as snapshotctl prints it at the end of its
    summary line (after argument parsing and opening the store)."""
    m = ENGINE_TIME.search(out.splitlines()[-1] if out else "")
    if not m:
        return None
    return float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)


def drop_caches_if_asked():
    if os.environ.get("BENCH_DROP_CACHES") == "1":
        sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


class Bench:
    def __init__(self, bin_path, work, reps):
        self.bin = bin_path
        self.work = work
        self.reps = reps
        self.rss_file = os.path.join(work, "rss.txt")
        self.peak_rss = {}   # label -> KiB
        self.notes = []
        self.lists = 0
        self.cpu = {}        # side -> CPU seconds of each run
        self.ctl_args = []   # given to every snapshotctl command (--record-format)
        self.files_from = "--files-from" in run([bin_path, "snapshot", "--help"]).stdout

    def path(self, *parts):
        return os.path.join(self.work, *parts)

    def ctl(self, args, rss_label=None):
        """Runs snapshotctl; returns (seconds, stdout). With rss_label it runs
        under /usr/bin/time -f %M and records the peak RSS (KiB)."""
        argv = [self.bin] + args + self.ctl_args + ["--quiet"]
        if rss_label:
            argv = ["/usr/bin/time", "-f", "%M", "-o", self.rss_file] + argv
        t0 = time.perf_counter()
        p = run(argv)
        t = time.perf_counter() - t0
        if rss_label:
            with open(self.rss_file) as f:
                kib = int(f.read().split()[-1])
            self.peak_rss[rss_label] = max(self.peak_rss.get(rss_label, 0), kib)
        return t, p.stdout.strip()

    @staticmethod
    def arg_list(paths, flag):
        out = []
        for p in paths:
            out += [flag, p]
        return out

    def file_args(self, paths, flag):
        """The file list for `snapshot`: a --files-from list when snapshotctl
        has it (parsing thousands of repeated --ro/--rw options is slow), or
        repeated options."""
        if not self.files_from:
            return self.arg_list(paths, flag)
        self.lists += 1
        path = self.path(f"files-{self.lists}.txt")
        with open(path, "w") as f:
            kind = flag.lstrip("-")
            f.writelines(f"{kind} {p}\n" for p in paths)
        return ["--files-from", path]

    def timed(self, argv):
        t0 = time.perf_counter()
        run(argv)
        return time.perf_counter() - t0

    def alternate(self, side_a, side_b, before=None, after=None):
        """Runs the two sides `reps` times each, alternating which goes first;
        returns the lists of times of A and B."""
        ta, tb = [], []
        for r in range(self.reps):
            order = [("a", side_a), ("b", side_b)] if r % 2 == 0 else [("b", side_b), ("a", side_a)]
            for which, fn in order:
                if before:
                    before(which, r)
                sync()
                c0 = children_cpu()
                t = fn(r)
                self.cpu.setdefault(fn.__name__, []).append(children_cpu() - c0)
                (ta if which == "a" else tb).append(t)
                if after:
                    after(which, r)
        return ta, tb

    def cpu_of(self, fn):
        """Median CPU seconds (user + system, all processes) of a side."""
        return statistics.median(self.cpu[fn.__name__])


def fmt_s(t):
    return f"{t * 1000:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_rate(nbytes, t):
    return f"{nbytes / t / MiB:.0f} MiB/s"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="snapshotctl (release build)")
    ap.add_argument("--repo", required=True, help="repository root (for scripts/lib.sh)")
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()

    parent = os.environ.get("BENCH_DIR") or tempfile.gettempdir()
    os.makedirs(parent, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < 6 * GiB:
        die(f"{parent} has {free / GiB:.1f} GiB free; the benchmark needs about 5 GiB (set BENCH_DIR)")
    work = tempfile.mkdtemp(prefix="snapshotter-bench.", dir=parent)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        bench(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


LOAD_BEFORE = ""


def bench(args, work):
    global LOAD_BEFORE
    LOAD_BEFORE = " ".join(open("/proc/loadavg").read().split()[:3])
    b = Bench(args.bin, work, args.reps)
    fs = run(["df", "--output=fstype", work]).stdout.split()[-1]
    log(f"bench: work directory {work} ({fs}), {os.cpu_count()} cores, {args.reps} runs per side, median reported")
    if float(LOAD_BEFORE.split()[0]) > 1.0:
        log(f"bench: warning: load average {LOAD_BEFORE} on {os.cpu_count()} cores: other work is running, "
            "expect noisy numbers")
    log("bench: file lists passed with " + ("--files-from" if b.files_from else "repeated --ro/--rw options"))
    log("bench: page cache " + ("dropped before each cold-snapshot and durable-copy run"
                                  if os.environ.get("BENCH_DROP_CACHES") == "1" else "warm for both sides"))

    # ---- memory and data ---------------------------------------------------
    gib = float(os.environ.get("BENCH_WARM_GIB", "0"))
    if gib > 0:
        t0 = time.perf_counter()
        warm_memory(gib)
        log(f"bench: touched {gib:g} GiB of memory once in {time.perf_counter() - t0:.1f} s (BENCH_WARM_GIB)")
    t0 = time.perf_counter()
    gen = Generator(seed=f"bench-{os.getpid()}-{time.time_ns()}")
    try:
        big_dir = b.path("big")
        big = make_set(gen, big_dir, BIG_SET)
        ro_dir = b.path("ro")
        ro = make_set(gen, ro_dir, RO_SET, mode=0o444)
    finally:
        gen.close()
    sample_dir = b.path("sample")
    run(["bash", "-c", 'source "$1/scripts/lib.sh" && make_sample_checkpoint "$2"', "_", args.repo, sample_dir])
    sync()
    big_bytes = set_size(BIG_SET)
    log(f"bench: made {len(big)} files ({big_bytes / GiB:.2f} GiB), {len(ro)} read-only files "
        f"({set_size(RO_SET) / MiB:.0f} MiB) and the sample checkpoint in {time.perf_counter() - t0:.1f} s")

    rows = []  # (metric, measured, baseline, ratio, target, ok or None)
    raw = {}   # label -> the time of each run

    # ---- sample workload (information) ---------------------------------------
    sample_ro = ["checkpoint/memory.img", "checkpoint/state.bin"]
    sample_rw = ["rootfs/disk.img", "config.json", "metadata.json"]
    snap_t, rest_t = [], []
    for r in range(args.reps):
        root = b.path(f"sample-root-{r}")
        sync()
        t, _ = b.ctl(["snapshot", "--root", root, "--name", "bench/sample", "--version", "v1", "--base-dir", sample_dir]
                     + b.arg_list(sample_ro, "--ro") + b.arg_list(sample_rw, "--rw"))
        snap_t.append(t)
        sync()
        t, _ = b.ctl(["restore", "--root", root, "--name", "bench/sample", "--version", "v1",
                      "--output", b.path(f"sample-out-{r}")])
        rest_t.append(t)
        shutil.rmtree(root)
        shutil.rmtree(b.path(f"sample-out-{r}"))
    rows.append(("sample checkpoint: snapshot (60 MiB, 5 files)", fmt_s(statistics.median(snap_t)), "", "", "", None))
    rows.append(("sample checkpoint: restore", fmt_s(statistics.median(rest_t)), "", "", "", None))

    # ---- 1. cold snapshot vs a durable copy -----------------------------------
    log("bench: cold snapshot of 1 GiB vs cp -a + fsync of each copy ...")
    big_ro_args = b.file_args(big, "--ro")
    cold_root = b.path("root")

    def copy_durable(r):
        dst = b.path(f"copy-{r}")
        drop_caches_if_asked()
        t0 = time.perf_counter()
        run(["cp", "-a", big_dir, dst])
        # coreutils sync FILE... fsyncs each named file and directory.
        names = [dst] + sorted({os.path.join(dst, os.path.dirname(p)) for p in big}) + [os.path.join(dst, p) for p in big]
        run(["sync", "--"] + names)
        return time.perf_counter() - t0

    def cold_snapshot(r):
        drop_caches_if_asked()
        t, out = b.ctl(["snapshot", "--root", cold_root, "--name", "bench/big", "--version", "cold",
                        "--base-dir", big_dir] + big_ro_args, rss_label="snapshot 1 GiB")
        if f"{len(big)} new content" not in out:
            b.notes.append(f"cold snapshot did not store every file as new content: {out}")
        return t

    def clean_cold(which, r):
        # Each run starts from an empty store and no copy; the last store is
        # kept for the re-snapshot below.
        if which == "a":
            shutil.rmtree(b.path(f"copy-{r}"), ignore_errors=True)
        elif which == "b" and os.path.exists(cold_root):
            shutil.rmtree(cold_root)

    copy_t, snap_t = b.alternate(copy_durable, cold_snapshot,
                                 before=lambda w, r: clean_cold("b", r) if w == "b" else None,
                                 after=lambda w, r: clean_cold("a", r) if w == "a" else None)
    raw["durable copy"], raw["cold snapshot"] = copy_t, snap_t
    mc, ms = statistics.median(copy_t), statistics.median(snap_t)
    ratio = mc / ms
    rows.append((f"cold snapshot, 1 GiB in {len(big)} files (--ro)", f"{fmt_s(ms)} ({fmt_rate(big_bytes, ms)})",
                 f"cp -a + fsync: {fmt_s(mc)} ({fmt_rate(big_bytes, mc)})", f"{ratio:.2f}x", ">= 0.80x", ratio >= 0.8))
    rows.append(("  CPU time (user + system)", fmt_s(b.cpu_of(cold_snapshot)), fmt_s(b.cpu_of(copy_durable)),
                 "", "", None))

    # ---- 2. re-snapshot of unchanged read-only files vs reading them ---------
    log("bench: re-snapshot of the unchanged read-only files vs cat ...")
    cat_argv = ["cat"] + [os.path.join(big_dir, p) for p in big]

    def cat_files(r):
        t0 = time.perf_counter()
        with open(os.devnull, "wb") as null:
            subprocess.run(cat_argv, stdout=null, check=True)
        return time.perf_counter() - t0

    re_engine = []

    def resnapshot(r):
        t, out = b.ctl(["snapshot", "--root", cold_root, "--name", "bench/big", "--version", f"again-{r}",
                        "--base-dir", big_dir] + big_ro_args)
        if f"{len(big)} known by inode" not in out:
            b.notes.append(f"re-snapshot did not recognise every file by inode: {out}")
        re_engine.append(engine_seconds(out))
        return t

    cat_files(-1)  # warm
    fixed_t = []
    for _ in range(args.reps):
        fixed_t.append(b.ctl(["list", "--root", cold_root])[0])
    cat_t, re_t = b.alternate(cat_files, resnapshot)
    raw["cat"], raw["re-snapshot"] = cat_t, re_t
    mc, mr = statistics.median(cat_t), statistics.median(re_t)
    ratio = mc / mr
    rows.append((f"re-snapshot, unchanged read-only 1 GiB ({len(big)} files)", fmt_s(mr),
                 f"cat > /dev/null: {fmt_s(mc)}", f"{ratio:.1f}x", ">= 20x", ratio >= 20))
    if None not in re_engine:
        me = statistics.median(re_engine)
        rows.append(("  engine only (snapshotctl's own timing)", fmt_s(me), "", f"{mc / me:.1f}x", "", None))
    rows.append(("  a snapshotctl process that does nothing (list)", fmt_s(statistics.median(fixed_t)), "", "", "", None))
    if b.files_from:
        argv_t = []
        for r in range(args.reps):
            argv_t.append(b.ctl(["snapshot", "--root", cold_root, "--name", "bench/big", "--version", f"argv-{r}",
                                 "--base-dir", big_dir] + b.arg_list(big, "--ro"))[0])
        raw["re-snapshot, --ro arguments"] = argv_t
        ma = statistics.median(argv_t)
        rows.append((f"  same, files as {len(big)} --ro arguments", fmt_s(ma), "", f"{mc / ma:.1f}x", "", None))

    # ---- 3. restore of read-only files, per file --------------------------
    log(f"bench: restore of {len(ro)} read-only files vs cp -al ...")
    ro_root = b.path("ro-root")
    b.ctl(["snapshot", "--root", ro_root, "--name", "bench/ro", "--version", "v1", "--base-dir", ro_dir]
          + b.file_args(ro, "--ro"))

    def link_tree(r):
        return b.timed(["cp", "-al", ro_dir, b.path(f"ro-cp-{r}")])

    rr_engine = []

    def ro_restore(r):
        t, out = b.ctl(["restore", "--root", ro_root, "--name", "bench/ro", "--version", "v1",
                        "--output", b.path(f"ro-out-{r}")], rss_label="restore read-only")
        if f"{len(ro)} linked" not in out:
            b.notes.append(f"read-only restore did not hard-link every file: {out}")
        rr_engine.append(engine_seconds(out))
        return t

    cp_t, rr_t = b.alternate(link_tree, ro_restore)
    raw["cp -al"], raw["restore read-only"] = cp_t, rr_t
    n = len(ro)
    us, us_cp = statistics.median(rr_t) / n * 1e6, statistics.median(cp_t) / n * 1e6
    rows.append((f"restore read-only, {n} files ({set_size(RO_SET) / MiB:.0f} MiB)", f"{us:.1f} us/file",
                 f"cp -al: {us_cp:.1f} us/file", f"{us_cp / us:.2f}x", "< 50 us/file", us < 50))
    if None not in rr_engine:
        rows.append(("  engine only (snapshotctl's own timing)", f"{statistics.median(rr_engine) / n * 1e6:.1f} us/file",
                     "", "", "", None))

    # ---- 4. restore of read-write files vs cp ----------------------------
    log("bench: restore of 1 GiB of read-write files vs cp -a ...")
    t, out = b.ctl(["snapshot", "--root", cold_root, "--name", "bench/big", "--version", "rw",
                    "--base-dir", big_dir] + b.file_args(big, "--rw"))
    rows.append(("  (snapshot of the same 1 GiB as --rw, content known)", f"{fmt_s(t)} ({fmt_rate(big_bytes, t)})",
                 "", "", "", None))

    def cp_plain(r):
        return b.timed(["cp", "-a", big_dir, b.path(f"rw-cp-{r}")])

    def rw_restore(r):
        t, out = b.ctl(["restore", "--root", cold_root, "--name", "bench/big", "--version", "rw",
                        "--output", b.path(f"rw-out-{r}")], rss_label="restore 1 GiB")
        if f"{len(big)} decoded" not in out:
            b.notes.append(f"read-write restore did not decode every file: {out}")
        return t

    def clean_rw(which, r):
        shutil.rmtree(b.path(f"rw-cp-{r}" if which == "a" else f"rw-out-{r}"), ignore_errors=True)

    cp_t, rw_t = b.alternate(cp_plain, rw_restore, after=clean_rw)
    raw["cp -a"], raw["restore read-write"] = cp_t, rw_t
    mc, mr = statistics.median(cp_t), statistics.median(rw_t)
    ratio = mc / mr
    rows.append((f"restore read-write, 1 GiB in {len(big)} files", f"{fmt_s(mr)} ({fmt_rate(big_bytes, mr)})",
                 f"cp -a: {fmt_s(mc)} ({fmt_rate(big_bytes, mc)})", f"{ratio:.2f}x", ">= 0.80x", ratio >= 0.8))
    rows.append(("  CPU time (user + system)", fmt_s(b.cpu_of(rw_restore)), fmt_s(b.cpu_of(cp_plain)), "", "", None))

    # ---- 4b. durable restore of read-write files vs cp -a + fsync ----------
    log("bench: restore --sync of 1 GiB of read-write files vs cp -a + fsync of each copy ...")

    def cp_synced(r):
        dst = b.path(f"rw-cps-{r}")
        t0 = time.perf_counter()
        run(["cp", "-a", big_dir, dst])
        names = [os.path.dirname(dst), dst] + sorted({os.path.join(dst, os.path.dirname(p)) for p in big}) \
            + [os.path.join(dst, p) for p in big]
        run(["sync", "--"] + names)
        return time.perf_counter() - t0

    def rw_restore_sync(r):
        t, out = b.ctl(["restore", "--root", cold_root, "--name", "bench/big", "--version", "rw", "--sync",
                        "--output", b.path(f"rw-outs-{r}")], rss_label="restore --sync 1 GiB")
        if f"{len(big)} decoded" not in out:
            b.notes.append(f"durable read-write restore did not decode every file: {out}")
        return t

    def clean_rws(which, r):
        shutil.rmtree(b.path(f"rw-cps-{r}" if which == "a" else f"rw-outs-{r}"), ignore_errors=True)

    cp_t, rw_t = b.alternate(cp_synced, rw_restore_sync, after=clean_rws)
    raw["cp -a + fsync"], raw["restore read-write --sync"] = cp_t, rw_t
    mc, mr = statistics.median(cp_t), statistics.median(rw_t)
    ratio = mc / mr
    rows.append((f"restore read-write --sync, 1 GiB in {len(big)} files", f"{fmt_s(mr)} ({fmt_rate(big_bytes, mr)})",
                 f"cp -a + fsync: {fmt_s(mc)} ({fmt_rate(big_bytes, mc)})", f"{ratio:.2f}x", ">= 0.80x", ratio >= 0.8))

    # ---- 5. peak RSS ------------------------------------------------------
    peak = max(b.peak_rss.values())
    detail = ", ".join(f"{k} {v / 1024:.1f}" for k, v in b.peak_rss.items())
    rows.append(("peak RSS of snapshotctl", f"{peak / 1024:.1f} MiB", f"({detail} MiB)", "", "< 64 MiB", peak < 64 * 1024))

    # ---- report -----------------------------------------------------------
    headers = ("measurement", "snapshotctl", "baseline", "ratio", "target", "result")
    table = [headers] + [(m, v, bl, ra, tg, "" if ok is None else ("PASS" if ok else "MISS"))
                         for m, v, bl, ra, tg, ok in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(headers))]
    line = "  ".join("-" * w for w in widths)
    log("")
    log("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    log(line)
    for r in table[1:]:
        log("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    log(line)
    log("ratio: baseline time / snapshotctl time (above 1: snapshotctl is faster); restore read-only: cp -al is a "
        "hard-link tree, for scale")
    targets = [r for r in rows if r[5] is not None]
    log(f"bench: {sum(1 for r in targets if r[5])} of {len(targets)} targets met")
    for note in b.notes:
        log(f"bench: note: {note}")
    log("bench: load average before and after: " + LOAD_BEFORE + " / " + " ".join(open("/proc/loadavg").read().split()[:3]))
    log("bench: each run in order (s): " + "; ".join(f"{k}: " + " ".join(f"{t:.3f}" for t in v) for k, v in raw.items()))

if __name__ == "__main__":
    main()
