// Package snapshotter snapshots sets of files into a content-addressed
// store and restores them, through libsnapshotter (the C library, linked
// by pkg-config). It is a drop-in for d7y.io/snapshotter: the same New,
// Snapshotter, requests, Config and options, and the same pkg/dragonfly
// and pkg/oci types, so switching is a change of import path.
//
// Beyond that API, New returns a *Store (use Open to get it typed) with
// Delete, List, Files, GC, Stats, Verify and Close; options of its own
// (extras.go: progress, reports, TLS CA, GC byte budget, ...); and errors that errors.Is
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
	// (created when missing). Files already there are replaced, as in
	// d7y.io/snapshotter; WithRefuseExisting refuses them instead.
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

// Config defines the configuration for the snapshotter. Its fields are
// exactly d7y.io/snapshotter's; this binding's own settings are options
// (extras.go).
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

	// Dragonfly is the Dragonfly configuration: with an endpoint, content
	// goes through the peer daemon, backed by Content's object storage.
	// Content may come per call (WithContent); a call that moves content
	// while there is none fails with ErrInvalid.
	Dragonfly dragonfly.Dragonfly

	// SnapshotConcurrency is the number of files processed at once within
	// one snapshot (nil: the library's default, 4).
	SnapshotConcurrency *int

	// RestoreConcurrency is the number of files processed at once within
	// one restore (nil: the library's default, 4).
	RestoreConcurrency *int
}

// Metadata defines the metadata configuration for the snapshotter.
type Metadata struct {
	// Registry is the OCI registry that snapshots are published to on
	// Snapshot and fetched from on Restore when not in the local store.
	Registry oci.Registry
}

// GC defines the garbage collection configuration. As in
// d7y.io/snapshotter, a nil field, and a zero or out-of-range value, keep
// the default (every 5 minutes; evict from 90% disk use down to 70%; 10
// snapshots per batch; keep snapshots used in the last 5 minutes); a low
// threshold above the high one keeps the default low. The library counts
// whole seconds and whole percent: durations are rounded up to a second,
// percentages to the nearest integer. To turn the background collector
// off, to keep no retention, or to set a byte budget, use
// WithoutBackgroundGC, WithGCMinRetention and WithMaxStoreBytes.
type GC struct {
	// Interval is the interval of the background collector.
	Interval *time.Duration

	// DiskHighThresholdPercent is the disk use that starts eviction.
	DiskHighThresholdPercent *float64

	// DiskLowThresholdPercent is the disk use where eviction stops.
	DiskLowThresholdPercent *float64

	// BatchSize is the number of snapshots evicted per round.
	BatchSize *int

	// MinRetentionPeriod protects snapshots used more recently than this.
	MinRetentionPeriod *time.Duration
}

// Option is a function that configures the snapshotter. Options given to
// New apply to the store; options given to Snapshot or Restore apply on
// top of those for that call only, as in d7y.io/snapshotter (settings
// fixed at open, GC and concurrency, do not change).
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

// New creates a new snapshotter: it opens (creating when needed) the store
// under config.RootDir. The result is a *Store; Close it when done.
func New(config Config, opts ...Option) (Snapshotter, error) {
	s, err := Open(config, opts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}
