/// When a batch looks for stored content before it keeps a new temporary
/// content file. The look-up (a stat of the final name) saves a kept
/// temporary, its writeback and a failed rename when the content is there
/// (a re-snapshot of unchanged read-write files), but costs a lookup in the
/// flat content directory, racing the other workers' creates for its lock,
/// when it is not (a cold snapshot: 10-20 % of its time at 2,000 files).
/// Skipping it is always safe: the barrier renames without replacing, and
/// a name already there makes the temporary "lost" and removed.
/// So: look up the first files; while look-ups keep finding content, look
/// up every file; when they rarely do, only every `sampleEvery`-th file, to
/// notice when that changes.
struct StoredLookUps {
    /// Files looked up before the found share decides.
    static let firstLookUps = 32
    /// Look-ups keep going while at least 1 in this many found content.
    static let worthwhileOneIn = 8
    static let sampleEvery = 16

    private(set) var lookUps = 0
    private(set) var found = 0
    private var skipped = 0

    mutating func shouldLookUp() -> Bool {
        if lookUps < Self.firstLookUps || found * Self.worthwhileOneIn >= lookUps { return true }
        skipped += 1
        if skipped < Self.sampleEvery { return false }
        skipped = 0
        return true
    }

    mutating func note(found hit: Bool) {
        lookUps += 1
        if hit { found += 1 }
    }
}
