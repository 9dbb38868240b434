package snapshotter

/*
#include <snapshotter.h>
*/
import "C"

import (
	"io/fs"
	"strconv"
	"time"
	"unsafe"
)

// Phase is the stage an operation is in.
type Phase int

// The phases of snapshotter.h.
const (
	PhasePreparing  Phase = C.SNAPSHOTTER_PHASE_PREPARING
	PhaseStoring    Phase = C.SNAPSHOTTER_PHASE_STORING
	PhaseUploading  Phase = C.SNAPSHOTTER_PHASE_UPLOADING
	PhasePublishing Phase = C.SNAPSHOTTER_PHASE_PUBLISHING
	PhaseCommitting Phase = C.SNAPSHOTTER_PHASE_COMMITTING
	PhaseFetching   Phase = C.SNAPSHOTTER_PHASE_FETCHING
	PhaseExporting  Phase = C.SNAPSHOTTER_PHASE_EXPORTING
	PhaseVerifying  Phase = C.SNAPSHOTTER_PHASE_VERIFYING
	PhaseCollecting Phase = C.SNAPSHOTTER_PHASE_COLLECTING
	PhaseDone       Phase = C.SNAPSHOTTER_PHASE_DONE
)

var phaseNames = [...]string{"preparing", "storing", "uploading", "publishing", "committing",
	"fetching", "exporting", "verifying", "collecting", "done"}

func (p Phase) String() string {
	if p >= 0 && int(p) < len(phaseNames) {
		return phaseNames[p]
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

// Progress is one progress event. Counters never go backwards within an
// operation; the last event (PhaseDone) carries the totals.
type Progress struct {
	Phase      Phase
	FilesDone  int64
	FilesTotal int64
	BytesDone  int64
	BytesTotal int64
	// FilesCopied counts read-only files copied (not linked) because the
	// output directory is on another filesystem than the store.
	FilesCopied int64
}

// sized copies the first `size` bytes of a library-filled struct into
// dst, which is zeroed: structs only grow at the end, and an older library
// fills fewer bytes than this header's struct has.
func sized(dst, src unsafe.Pointer, size C.uint32_t, full uintptr) {
	n := uintptr(size)
	if n > full {
		n = full
	}
	copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(src), n))
}

func progressFromC(src *C.snapshotter_progress_t) Progress {
	var p C.snapshotter_progress_t
	sized(unsafe.Pointer(&p), unsafe.Pointer(src), src.size, unsafe.Sizeof(p))
	return Progress{
		Phase:       Phase(p.phase),
		FilesDone:   int64(p.files_done),
		FilesTotal:  int64(p.files_total),
		BytesDone:   int64(p.bytes_done),
		BytesTotal:  int64(p.bytes_total),
		FilesCopied: int64(p.files_copied),
	}
}

// Report holds the counters of a finished operation; each kind fills its
// own fields.
type Report struct {
	// Snapshot.
	FilesStored       int64 // content new to the store
	FilesKnownByInode int64 // read-only files recognised without reading
	BytesRead         int64
	// Restore.
	FilesLinked  int64
	FilesCopied  int64
	FilesDecoded int64
	BytesWritten int64
	// Delete and GC.
	SnapshotsEvicted    int64
	ContentFilesRemoved int64
	BytesFreed          int64
	OrphansRemoved      int64
	Elapsed             time.Duration
}

func reportFromC(src *C.snapshotter_report_t) Report {
	if src == nil {
		return Report{}
	}
	var r C.snapshotter_report_t
	sized(unsafe.Pointer(&r), unsafe.Pointer(src), src.size, unsafe.Sizeof(r))
	return Report{
		FilesStored:         int64(r.files_stored),
		FilesKnownByInode:   int64(r.files_known_by_inode),
		BytesRead:           int64(r.bytes_read),
		FilesLinked:         int64(r.files_linked),
		FilesCopied:         int64(r.files_copied),
		FilesDecoded:        int64(r.files_decoded),
		BytesWritten:        int64(r.bytes_written),
		SnapshotsEvicted:    int64(r.snapshots_evicted),
		ContentFilesRemoved: int64(r.content_files_removed),
		BytesFreed:          int64(r.bytes_freed),
		OrphansRemoved:      int64(r.orphans_removed),
		Elapsed:             time.Duration(r.elapsed_ns),
	}
}

// SnapshotInfo describes a snapshot in the store.
type SnapshotInfo struct {
	Name           string
	Version        string
	CreatedAt      time.Time
	LastAccessedAt time.Time
	FileCount      int64
	TotalSize      int64 // logical bytes of all files
}

// FileInfo describes one file of a snapshot.
type FileInfo struct {
	RelativePath string
	Digest       string // "xxh3:<hex>"
	ReadOnly     bool
	Mode         fs.FileMode // permission bits
	UID, GID     uint32
	Size         int64
	ModTime      time.Time
}

// FileList is the content of a snapshot: its files, sorted by path, and
// its config JSON (the OCI config blob, as published).
type FileList struct {
	Files      []FileInfo
	ConfigJSON []byte
}

// Stats is the store's usage.
type Stats struct {
	StoreBytes     int64 // bytes the store's files use on disk
	ContentFiles   int64
	Snapshots      int64
	OldestAccess   time.Time // zero when there are no snapshots
	DiskTotalBytes int64     // the filesystem holding the root
	DiskUsedBytes  int64
}

// VerifyReport is what Verify found. A store with problems is not an
// error: read Problems.
type VerifyReport struct {
	SnapshotsChecked    int64
	ContentFilesChecked int64
	BytesChecked        int64
	Problems            []Problem
}

// Problem is one finding of Verify.
type Problem struct {
	Kind     string // "missing-content", "corrupt-content", ...
	Digest   string // "" when no digest is involved
	Snapshot string // "name:version", or ""
	Message  string
}

func goStringOrEmpty(p *C.char) string {
	if p == nil {
		return ""
	}
	return C.GoString(p)
}

func timeFromNanos(ns C.int64_t) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(ns))
}

func snapshotListFromC(l *C.snapshotter_snapshot_list_t) []SnapshotInfo {
	items := unsafe.Slice(l.items, int(l.count))
	out := make([]SnapshotInfo, 0, len(items))
	for _, it := range items {
		out = append(out, SnapshotInfo{
			Name:           C.GoString(it.name),
			Version:        C.GoString(it.version),
			CreatedAt:      timeFromNanos(it.created_ns),
			LastAccessedAt: timeFromNanos(it.last_accessed_ns),
			FileCount:      int64(it.file_count),
			TotalSize:      int64(it.total_size),
		})
	}
	return out
}

func fileListFromC(l *C.snapshotter_file_list_t) *FileList {
	items := unsafe.Slice(l.items, int(l.count))
	out := &FileList{Files: make([]FileInfo, 0, len(items))}
	for _, it := range items {
		out.Files = append(out.Files, FileInfo{
			RelativePath: C.GoString(it.relative_path),
			Digest:       C.GoString(it.digest),
			ReadOnly:     it.read_only != 0,
			Mode:         fs.FileMode(it.mode) & fs.ModePerm,
			UID:          uint32(it.uid),
			GID:          uint32(it.gid),
			Size:         int64(it.size),
			ModTime:      time.Unix(0, int64(it.mtime_ns)),
		})
	}
	if l.config_json != nil {
		out.ConfigJSON = C.GoBytes(unsafe.Pointer(l.config_json), C.int(l.config_json_size))
	}
	return out
}

func verifyReportFromC(r *C.snapshotter_verify_report_t) *VerifyReport {
	out := &VerifyReport{
		SnapshotsChecked:    int64(r.snapshots_checked),
		ContentFilesChecked: int64(r.content_files_checked),
		BytesChecked:        int64(r.bytes_checked),
	}
	for _, p := range unsafe.Slice(r.problems, int(r.problem_count)) {
		out.Problems = append(out.Problems, Problem{
			Kind:     goStringOrEmpty(p.kind),
			Digest:   goStringOrEmpty(p.digest),
			Snapshot: goStringOrEmpty(p.snapshot),
			Message:  goStringOrEmpty(p.message),
		})
	}
	return out
}

func statsFromC(s *C.snapshotter_stats_t) Stats {
	return Stats{
		StoreBytes:     int64(s.store_bytes),
		ContentFiles:   int64(s.content_files),
		Snapshots:      int64(s.snapshots),
		OldestAccess:   timeFromNanos(s.oldest_access_ns),
		DiskTotalBytes: int64(s.disk_total_bytes),
		DiskUsedBytes:  int64(s.disk_used_bytes),
	}
}
