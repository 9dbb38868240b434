// Package snapshotter snapshots sets of files into a content-addressed
// store and restores them, through libsnapshotter (the C library, linked
// by pkg-config). It is a drop-in for d7y.io/snapshotter: the same New,
// Snapshotter, requests, Config and options, and the same pkg/dragonfly
// and pkg/oci types, so switching is a change of import path.
//
// Beyond that API, New returns a *Store (use Open to get it typed) with
// Delete, List, Files, GC, Stats, Verify and Close; WithProgress,
// WithReport and WithOverwrite options; and errors that errors.Is
// understands for every library status (ErrNotFound, ErrAlreadyExists,
// ErrCorrupt, ...). Canceling the context cancels the operation in the
// library and returns ctx.Err().
//
// Read-only files are hard-linked into the store and back out on restore:
// the caller promises not to modify them in place afterwards.
package snapshotter

import (
	"context"
	"time"

	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// Snapshotter is an interface that defines the methods for snapshotting
// and restoring files.
type Snapshotter interface {
	// Snapshot creates a snapshot of the specified files.
	Snapshot(ctx context.Context, req *SnapshotRequest, opts ...Option) error

	// Restore restores the specified files from the snapshot.
	Restore(ctx context.Context, req *RestoreRequest, opts ...Option) error
}

// SnapshotRequest defines the request parameters for creating a snapshot.
type SnapshotRequest struct {
	// Name is the name of the snapshot (an OCI repository name:
	// lowercase, '/'-separated components).
	Name string

	// Version is the version of the snapshot (an OCI tag).
	Version string

	// BaseDir is the base directory of the snapshot.
	BaseDir string

	// Files is the list of files to be included in the snapshot.
	Files []File
}

// RestoreRequest defines the request parameters for restoring files from a
// snapshot.
type RestoreRequest struct {
	// Name is the name of the snapshot.
	Name string

	// Version is the version of the snapshot.
	Version string

	// OutputDir is the directory where the files will be restored
	// (created when missing). Existing files are refused unless the call
	// has WithOverwrite.
	OutputDir string
}

// File defines the file information for snapshotting and restoring.
type File struct {
	// RelativePath is the path of the file relative to BaseDir.
	RelativePath string

	// ReadOnly marks a file that is hard-linked into the store (and back
	// out on restore) instead of copied: it must not change in place.
	ReadOnly bool
}

// Config defines the configuration for the snapshotter.
type Config struct {
	// GC is the garbage collection configuration for the snapshotter.
	GC GC

	// RootDir is the root directory of the store (required).
	RootDir string

	// Metadata is the metadata configuration for the snapshotter.
	Metadata Metadata

	// Content is the object storage (or, with Provider "file", the
	// directory) behind the content transport.
	Content dragonfly.ContentProvider

	// Dragonfly is the Dragonfly configuration: with an endpoint
	// (unix:///path to the dfdaemon socket), content goes through the peer
	// daemon, backed by Content's object storage; an endpoint without
	// Content is refused with ErrInvalid.
	Dragonfly dragonfly.Dragonfly

	// SnapshotConcurrency is the number of files processed at once within
	// one snapshot (nil: the library's default, 4).
	SnapshotConcurrency *int

	// RestoreConcurrency is the number of files processed at once within
	// one restore (nil: the library's default, 4).
	RestoreConcurrency *int

	// Per-call settings of this binding, set by options only. Not stored
	// across calls.
	progress   func(Progress)
	report     *Report
	overwrite  bool
	storeGroup *int

	// Set at open by WithDurableRestore and WithMaxConfigBytes only.
	durableRestore bool
	maxConfigBytes *int64
}

// Metadata defines the metadata configuration for the snapshotter.
type Metadata struct {
	// Registry is the OCI registry that snapshots are published to on
	// Snapshot and fetched from on Restore when not in the local store.
	Registry oci.Registry
}

// GC defines the garbage collection configuration. Nil fields keep the
// library's defaults (every 5 minutes; evict from 90% disk use down to
// 70%; 10 snapshots per batch; keep snapshots used in the last 5 minutes).
// The library counts whole seconds and whole percent: durations are
// rounded up to a second, percentages to the nearest integer.
type GC struct {
	// Interval is the interval of the background collector; 0 turns it
	// off.
	Interval *time.Duration

	// DiskHighThresholdPercent is the disk use that starts eviction.
	DiskHighThresholdPercent *float64

	// DiskLowThresholdPercent is the disk use where eviction stops.
	DiskLowThresholdPercent *float64

	// BatchSize is the number of snapshots evicted per round.
	BatchSize *int

	// MinRetentionPeriod protects snapshots used more recently than this.
	MinRetentionPeriod *time.Duration

	// MaxStoreBytes is a byte budget for the store, a second eviction
	// trigger (nil or 0: none). Not in d7y.io/snapshotter.
	MaxStoreBytes *int64
}

// Option is a function that configures the snapshotter. Options given to
// New apply to the store; options given to Snapshot or Restore change the
// registry and content settings for that call and the calls after it, as
// in d7y.io/snapshotter (settings fixed at open, GC and concurrency, do
// not change).
type Option func(*Config)

// WithMetadata configures the snapshotter with metadata.
func WithMetadata(metadata Metadata) Option {
	return func(c *Config) {
		c.Metadata = metadata
	}
}

// WithContent configures the snapshotter with content.
func WithContent(content dragonfly.ContentProvider) Option {
	return func(c *Config) {
		c.Content = content
	}
}

// WithProgress reports the progress of the call it is given to (or, given
// to New, of every Snapshot, Restore, GC and Verify that has no progress
// option of its own). fn runs on a library thread, never concurrently for
// one operation; it must return quickly and must not call List, Files,
// Stats or Close (they fail with ErrBusy there), nor Snapshot or Restore
// with other registry settings (those wait for running operations, this
// one included). To stop the operation, cancel its context (canceled
// from fn, it stops at that event); a panic in fn cancels it and is raised
// again in the goroutine that called.
func WithProgress(fn func(Progress)) Option {
	return func(c *Config) {
		c.progress = fn
	}
}

// WithReport fills r with the counters of the Snapshot, Restore, GC or
// Delete call it is given to, when that call succeeds.
func WithReport(r *Report) Option {
	return func(c *Config) {
		c.report = r
	}
}

// WithOverwrite lets Restore replace files that already exist in the output
// directory (by default they are refused with ErrAlreadyExists).
func WithOverwrite() Option {
	return func(c *Config) {
		c.overwrite = true
	}
}

// WithStoreGroup, given to New, lets the group gid read the store: its
// directories 0750, content 0440 and metadata files 0640, owned by that
// group (the process must belong to it). Without it only the owner may read
// (0700, 0400, 0600). Not in d7y.io/snapshotter.
func WithStoreGroup(gid int) Option {
	return func(c *Config) {
		c.storeGroup = &gid
	}
}

// WithDurableRestore, given to New or Open, makes every Restore of the
// store fsync each file it writes and each directory it changes before it
// returns success, so a power loss right after cannot leave empty or
// missing files. Off by default, as with cp: it costs one fsync per
// written file. Like the other settings fixed at open, it has no effect
// when given to Restore. Not in d7y.io/snapshotter.
func WithDurableRestore() Option {
	return func(c *Config) {
		c.durableRestore = true
	}
}

// WithMaxConfigBytes, given to New or Open, sets the largest snapshot
// config (its JSON) a Snapshot may publish and a Restore may fetch: one
// limit for both sides, so what is published can be restored (default 512
// MiB, about a million files). Not in d7y.io/snapshotter.
func WithMaxConfigBytes(n int64) Option {
	return func(c *Config) {
		c.maxConfigBytes = &n
	}
}

// New creates a new snapshotter: it opens (creating when needed) the store
// under config.RootDir. The result is a *Store; Close it when done.
func New(config Config, opts ...Option) (Snapshotter, error) {
	s, err := Open(config, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}
