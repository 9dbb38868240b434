import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization
import Testing
import CShim
@testable import SnapshotterCore
@testable import SnapshotterSystem
@testable import SnapshotterStore
@testable import SnapshotterMetadata
@testable import SnapshotterRemote

// Helpers shared by the suites. File checks use plain system calls of their
// own (not the engine's `Sys`), so a bug in the engine's wrappers cannot make
// a check agree with it.

enum TestError: Error, CustomStringConvertible {
    case posix(String, Int32)
    case setup(String)

    var description: String {
        switch self {
        case let .posix(what, e): return "\(what): \(String(cString: strerror(e)))"
        case let .setup(what): return what
        }
    }
}

@discardableResult
func posix<T: BinaryInteger>(_ what: @autoclosure () -> String, _ body: () -> T) throws -> T {
    while true {
        let r = body()
        if r != -1 { return r }
        let e = errno
        if e == EINTR { continue }
        throw TestError.posix(what(), e)
    }
}

// MARK: temporary directories

/// A unique directory under `parent` (/tmp by default) for one test;
/// removed when `body` ends, whether it throws or not.
@discardableResult
func withTempDir<T>(in parent: String = "/tmp", _ body: (String) async throws -> T) async throws -> T {
    var template = Array("\(parent)/snapshotter-tests-XXXXXX".utf8CString)
    let dir: String = try template.withUnsafeMutableBufferPointer { buf in
        guard let p = mkdtemp(buf.baseAddress!) else { throw TestError.posix("mkdtemp", errno) }
        return String(cString: p)
    }
    defer { try? FileManager.default.removeItem(atPath: dir) }
    return try await body(dir)
}

/// A store root, a base directory for sources and output directories, all in
/// one temporary directory.
struct Fixture {
    let dir: String
    var root: String { dir + "/store" }
    var base: String { dir + "/base" }
    func output(_ name: String = "out") -> String { dir + "/" + name }
    var contentDir: String { root + "/storage/content/xxh3" }
    var linkDir: String { root + "/storage/snapshot/xxh3" }

    /// The store, without the background collector (tests run `gc` only
    /// when they mean to).
    func open() throws -> Snapshotter {
        var options = StoreOptions()
        options.gc.intervalSeconds = 0
        return try Snapshotter(root: root, options: options)
    }

    /// Content files (not temporaries) in the store.
    func contentFiles() throws -> [String] { try names(in: contentDir).filter { !isTempName($0) }.sorted() }
    func linkFiles() throws -> [String] { try names(in: linkDir).filter { !isTempName($0) }.sorted() }
    /// Temporary files anywhere under the store's storage directory.
    func storageTemps() throws -> [String] {
        try (names(in: contentDir) + names(in: linkDir)).filter(isTempName)
    }
}

@discardableResult
func withFixture<T>(_ body: (Fixture) async throws -> T) async throws -> T {
    try await withTempDir { dir in
        let fx = Fixture(dir: dir)
        try makeDirs(fx.base)
        return try await body(fx)
    }
}

/// Opens the fixture's store, runs `body`, and closes the store.
@discardableResult
func withStore<T>(_ fx: Fixture, _ body: (Snapshotter) async throws -> T) async throws -> T {
    try await withOpened(try fx.open(), body)
}

/// Runs `body` on an open store, then closes it.
@discardableResult
func withOpened<T>(_ store: Snapshotter, _ body: (Snapshotter) async throws -> T) async throws -> T {
    do {
        let r = try await body(store)
        await store.close()
        return r
    } catch {
        await store.close()
        throw error
    }
}

func isTempName(_ name: String) -> Bool { name.hasPrefix(".snapshotter-tmp-") }

// MARK: files

func makeDirs(_ path: String) throws {
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
}

func parent(_ path: String) -> String { (path as NSString).deletingLastPathComponent }

/// Names in a directory (not recursive), or [] when it does not exist.
func names(in dir: String) throws -> [String] {
    guard FileManager.default.fileExists(atPath: dir) else { return [] }
    return try FileManager.default.contentsOfDirectory(atPath: dir)
}

/// Every regular file and symlink under `dir`, as paths relative to it.
func allFiles(under dir: String) throws -> [String] {
    guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
    var out: [String] = []
    while let rel = e.nextObject() as? String {
        let st = try lstatOf(dir + "/" + rel)
        if (st.st_mode & S_IFMT) != S_IFDIR { out.append(rel) }
    }
    return out.sorted()
}

let fixedMtime: Int64 = 1_700_000_000_123_456_789

/// Writes `bytes` to `path` (creating parent directories) with the given
/// mode and modification time.
func writeFile(_ path: String, _ bytes: [UInt8], mode: mode_t = 0o644, mtimeNanos: Int64? = fixedMtime) throws {
    try makeDirs(parent(path))
    let fd = try posix("open \(path)") { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
    defer { close(fd) }
    try writeAll(fd, bytes, at: 0, path)
    try posix("chmod \(path)") { fchmod(fd, mode) }
    if let mtimeNanos { try setTimes(fd, mtimeNanos, path) }
}

func writeFile(_ path: String, _ text: String, mode: mode_t = 0o644, mtimeNanos: Int64? = fixedMtime) throws {
    try writeFile(path, Array(text.utf8), mode: mode, mtimeNanos: mtimeNanos)
}

/// A file of logical size `size` holding only `data` (offset, bytes); the
/// rest is holes.
func writeSparseFile(_ path: String, size: Int64, data: [(Int64, [UInt8])], mode: mode_t = 0o644,
                     mtimeNanos: Int64 = fixedMtime) throws {
    try makeDirs(parent(path))
    let fd = try posix("open \(path)") { open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
    defer { close(fd) }
    try posix("truncate \(path)") { ftruncate(fd, off_t(size)) }
    for (offset, bytes) in data { try writeAll(fd, bytes, at: offset, path) }
    try posix("chmod \(path)") { fchmod(fd, mode) }
    try setTimes(fd, mtimeNanos, path)
}

private func writeAll(_ fd: Int32, _ bytes: [UInt8], at offset: Int64, _ path: String) throws {
    try bytes.withUnsafeBytes { b in
        var done = 0
        while done < b.count {
            done += try posix("write \(path)") { pwrite(fd, b.baseAddress! + done, b.count - done, off_t(offset) + off_t(done)) }
        }
    }
}

private func setTimes(_ fd: Int32, _ nanos: Int64, _ path: String) throws {
    // Floor division: a time before 1970 has a negative second and a
    // nanosecond part in [0, 1e9).
    var (sec, nsec) = nanos.quotientAndRemainder(dividingBy: 1_000_000_000)
    if nsec < 0 { sec -= 1; nsec += 1_000_000_000 }
    let t = timespec(tv_sec: Int(sec), tv_nsec: Int(nsec))
    let ts = [t, t]
    try posix("set times of \(path)") { futimens(fd, ts) }
}

func setMtime(_ path: String, _ nanos: Int64) throws {
    let fd = try posix("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    try setTimes(fd, nanos, path)
}

func readFile(_ path: String) throws -> [UInt8] {
    let fd = try posix("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var st = Glibc.stat()
    try posix("stat \(path)") { fstat(fd, &st) }
    let size = Int(st.st_size)
    return try [UInt8](unsafeUninitializedCapacity: size) { buf, count in
        var done = 0
        while done < size {
            let n = try posix("read \(path)") { read(fd, buf.baseAddress! + done, size - done) }
            if n == 0 { break }
            done += n
        }
        count = done
    }
}

func readText(_ path: String) throws -> String { String(decoding: try readFile(path), as: UTF8.self) }

func statOf(_ path: String) throws -> Glibc.stat {
    var st = Glibc.stat()
    try posix("stat \(path)") { stat(path, &st) }
    return st
}

func lstatOf(_ path: String) throws -> Glibc.stat {
    var st = Glibc.stat()
    try posix("lstat \(path)") { lstat(path, &st) }
    return st
}

func exists(_ path: String) -> Bool {
    var st = Glibc.stat()
    return lstat(path, &st) == 0
}

func mtimeNanos(_ st: Glibc.stat) -> Int64 { Int64(st.st_mtim.tv_sec) * 1_000_000_000 + Int64(st.st_mtim.tv_nsec) }

/// Data regions of a file as SEEK_DATA/SEEK_HOLE report them.
func dataExtents(_ path: String) throws -> [SPF1.Extent] {
    let fd = try posix("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    var st = Glibc.stat()
    try posix("stat \(path)") { fstat(fd, &st) }
    let size = Int64(st.st_size)
    var out: [SPF1.Extent] = []
    var pos: Int64 = 0
    while pos < size {
        let start = lseek(fd, off_t(pos), cshim_seek_data())
        if start < 0 {
            if errno == ENXIO { break }
            throw TestError.posix("seek data \(path)", errno)
        }
        let end = min(Int64(try posix("seek hole \(path)") { lseek(fd, off_t(start), cshim_seek_hole()) }), size)
        if end > Int64(start) { out.append(SPF1.Extent(offset: Int64(start), length: end - Int64(start))) }
        pos = end
    }
    return out
}

/// Whether two files hold the same bytes: all of them, or only those in
/// `extents` (for the data regions of big sparse files). Chunked, memcmp.
func sameBytes(_ a: String, _ b: String, in extents: [SPF1.Extent]? = nil) throws -> Bool {
    let fa = try posix("open \(a)") { open(a, O_RDONLY | O_CLOEXEC) }
    defer { close(fa) }
    let fb = try posix("open \(b)") { open(b, O_RDONLY | O_CLOEXEC) }
    defer { close(fb) }
    var sa = Glibc.stat(), sb = Glibc.stat()
    try posix("stat \(a)") { fstat(fa, &sa) }
    try posix("stat \(b)") { fstat(fb, &sb) }
    if extents == nil && sa.st_size != sb.st_size { return false }
    let chunk = 1 << 20
    let ba = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
    let bb = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 16)
    defer { ba.deallocate(); bb.deallocate() }
    for ext in extents ?? [SPF1.Extent(offset: 0, length: Int64(sa.st_size))] {
        var off = ext.offset
        let end = ext.offset + ext.length
        while off < end {
            let want = Int(min(Int64(chunk), end - off))
            let na = try posix("read \(a)") { pread(fa, ba, want, off_t(off)) }
            let nb = try posix("read \(b)") { pread(fb, bb, want, off_t(off)) }
            guard na == want, nb == want, memcmp(ba, bb, want) == 0 else { return false }
            off += Int64(want)
        }
    }
    return true
}

/// `count` pseudo-random bytes from a seed (deterministic, fast enough in a
/// debug build: one 64-bit step per 8 bytes).
func patternBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var rng = SplitMix64(seed: seed &+ 0x9E37_79B9_7F4A_7C15)
    return [UInt8](unsafeUninitializedCapacity: count) { buf, n in
        let raw = UnsafeMutableRawBufferPointer(buf)
        var i = 0
        while i < count {
            let z = rng.next()
            let take = min(8, count - i)
            withUnsafeBytes(of: z) { raw.baseAddress!.advanced(by: i).copyMemory(from: $0.baseAddress!, byteCount: take) }
            i += take
        }
        n = count
    }
}

/// A small seeded generator (SplitMix64), so data and random schedules can
/// be replayed from a seed.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

// MARK: engine helpers

/// Runs `body` with an SPF1-sized I/O buffer.
func withIOBuffer<T>(_ body: (UnsafeMutableRawBufferPointer) throws -> T) rethrows -> T {
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SPF1.chunkSize, alignment: 4096)
    defer { buffer.deallocate() }
    return try body(buffer)
}

/// The SPF1 digest of a file, as a snapshot would compute it.
func spf1Digest(_ path: String) throws -> Digest {
    let fd = try posix("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    let null = try posix("open /dev/null") { open("/dev/null", O_WRONLY | O_CLOEXEC) }
    defer { close(null) }
    let size = Int64(try statOf(path).st_size)
    return try withIOBuffer { try SPF1.encode(from: fd, size: size, to: null, path: path, buffer: $0) { _ in }.digest }
}

/// The SPF1 encoding of a file, in memory (written through `scratch`).
func spf1Encoding(_ path: String, scratch: String) throws -> (bytes: [UInt8], result: SPF1.EncodeResult) {
    let fd = try posix("open \(path)") { open(path, O_RDONLY | O_CLOEXEC) }
    defer { close(fd) }
    let out = try posix("open \(scratch)") { open(scratch, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600) }
    defer { close(out) }
    let size = Int64(try statOf(path).st_size)
    let result = try withIOBuffer { try SPF1.encode(from: fd, size: size, to: out, path: path, buffer: $0) { _ in } }
    return (try readFile(scratch), result)
}

/// Expects `body` to fail with a `SnapshotterError` of `code`; returns it.
@discardableResult
func expectError<R>(_ code: SnapshotterError.Code, _ comment: Comment? = nil,
                    sourceLocation: SourceLocation = #_sourceLocation,
                    _ body: () async throws -> R) async -> SnapshotterError? {
    do {
        _ = try await body()
        Issue.record("expected a \(code) error, but the call succeeded. \(comment?.rawValue ?? "")", sourceLocation: sourceLocation)
        return nil
    } catch let e as SnapshotterError {
        #expect(e.code == code, "expected \(code), got \(e.code): \(e.message). \(comment?.rawValue ?? "")",
                sourceLocation: sourceLocation)
        #expect(!e.message.isEmpty, sourceLocation: sourceLocation)
        return e
    } catch {
        Issue.record("expected a SnapshotterError \(code), got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

/// Which restored files `expectRestored` hashes.
enum Hashing {
    case all
    /// Read-only files are the store's link inode, whose content `verify`
    /// checks: hash only the decoded ones.
    case readWrite
    /// Restore itself checks the digest of what it decodes; for content
    /// already hashed once, check only metadata and links.
    case none
}

/// Checks that every file of `info` was restored under `out` exactly:
/// content (by SPF1 digest, independent of how it was stored), size, mode
/// and mtime; read-only files are the store's link inode.
func expectRestored(_ info: SnapshotInfo, in out: String, store fx: Fixture, hashing: Hashing = .all,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    for f in info.files {
        let path = out + "/" + f.relativePath
        guard exists(path) else {
            Issue.record("\(f.relativePath) was not restored", sourceLocation: sourceLocation)
            continue
        }
        let hash = hashing == .all || (hashing == .readWrite && !f.readOnly)
        try expectComplete(f, at: path, hash: hash, sourceLocation: sourceLocation)
        if f.readOnly {
            let st = try lstatOf(path), link = try statOf(fx.linkDir + "/" + f.digest.hex)
            #expect(st.st_ino == link.st_ino && st.st_dev == link.st_dev,
                    "read-only \(f.relativePath) is not a hard link to the store", sourceLocation: sourceLocation)
        }
    }
}

/// Checks one restored file against its record: a regular file with the
/// recorded size, mode, mtime and (when `hash`) content.
func expectComplete(_ f: SnapshotFile, at path: String, hash: Bool = true,
                    sourceLocation: SourceLocation = #_sourceLocation) throws {
    let st = try lstatOf(path)
    #expect((st.st_mode & S_IFMT) == S_IFREG, "\(f.relativePath) is not a regular file", sourceLocation: sourceLocation)
    #expect(Int64(st.st_size) == f.size, "\(f.relativePath) size", sourceLocation: sourceLocation)
    #expect(UInt32(st.st_mode) & 0o777 == f.mode, "\(f.relativePath) mode", sourceLocation: sourceLocation)
    #expect(mtimeNanos(st) == f.mtimeNanos, "\(f.relativePath) mtime", sourceLocation: sourceLocation)
    if geteuid() == 0 {
        #expect(st.st_uid == f.uid && st.st_gid == f.gid, "\(f.relativePath) owner", sourceLocation: sourceLocation)
    }
    if hash {
        #expect(try spf1Digest(path) == f.digest, "\(f.relativePath) content", sourceLocation: sourceLocation)
    }
}

/// Collects values from @Sendable callbacks.
final class Collector<Value: Sendable>: Sendable {
    private let items = Locked<[Value]>([])
    func append(_ v: Value) { items.withLock { $0.append(v) } }
    var values: [Value] { items.withLock { $0 } }
}

/// A boolean shared between tasks and callbacks.
final class AtomicFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .sequentiallyConsistent) }
    var isSet: Bool { value.load(ordering: .sequentiallyConsistent) }
}

/// A one-shot event a blocking thread (a pool thread in a progress handler)
/// waits for, without polling or a time limit.
final class Latch: @unchecked Sendable {
    private let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let cond = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)
    private var open = false

    init() {
        mutex.initialize(to: pthread_mutex_t())
        cond.initialize(to: pthread_cond_t())
        pthread_mutex_init(mutex, nil)
        pthread_cond_init(cond, nil)
    }

    deinit {
        pthread_cond_destroy(cond)
        pthread_mutex_destroy(mutex)
        cond.deallocate()
        mutex.deallocate()
    }

    func set() {
        pthread_mutex_lock(mutex)
        open = true
        pthread_cond_broadcast(cond)
        pthread_mutex_unlock(mutex)
    }

    var isSet: Bool {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return open
    }

    func wait() {
        pthread_mutex_lock(mutex)
        while !open { pthread_cond_wait(cond, mutex) }
        pthread_mutex_unlock(mutex)
    }
}

/// Location of the golden vectors: `<repo>/../shared/testdata/vectors.json`.
func sharedTestdata(_ name: String) -> String {
    var url = URL(fileURLWithPath: #filePath)
    // Tests/SnapshotterCoreTests/Support/TestSupport.swift -> repo root
    for _ in 0..<4 { url.deleteLastPathComponent() }
    return url.deletingLastPathComponent().appendingPathComponent("shared/testdata/\(name)").path
}
