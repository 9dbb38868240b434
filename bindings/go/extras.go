package snapshotter

import (
	"sync"
	"time"
)

// This binding's settings beyond d7y.io/snapshotter's Config. Config keeps
// exactly upstream's fields (comparable, unkeyed literals compile), so
// these options record into an extras value that the call applying them
// registered for its Config; applied to any other Config they do nothing.

// extras are the settings options of this binding carry.
type extras struct {
	// Per call (given to New: every call without its own).
	progress func(Progress)
	report   *Report
	refuse   bool // Restore refuses files that exist (default: replace)

	// Fixed at open.
	storeGroup     *int
	durableRestore bool
	maxConfigBytes *int64
	recordFormat   *int
	noBackgroundGC bool
	minRetention   *time.Duration
	maxStoreBytes  *int64

	// Remote settings, beside Config's Metadata, Content and Dragonfly.
	remote remoteExtras
}

// remoteExtras go with the registry and content settings.
type remoteExtras struct {
	caFile       string
	sessionToken string
	dragonfly    DragonflyOptions
}

// DragonflyOptions are libsnapshotter's Dragonfly settings beyond the
// endpoint; zero values keep the library's defaults.
type DragonflyOptions struct {
	// Fallback, when true, sends content straight to and from the object
	// storage (Provider "s3" with credentials) while the daemon cannot be
	// reached, instead of failing.
	Fallback bool

	// Replicas is how many persistent replicas the daemon is asked to keep
	// of each upload; 0 means the library's default (3).
	Replicas uint64

	// TTL is how long the daemon keeps uploaded tasks, in whole seconds
	// (rounded up); 0 means the daemon's default.
	TTL time.Duration
}

// applying maps a Config being configured to its extras.
var applying sync.Map // *Config -> *extras

// apply runs opts on cfg, recording this binding's options into x.
func apply(cfg *Config, x *extras, opts []Option) {
	if len(opts) == 0 {
		return
	}
	applying.Store(cfg, x)
	defer applying.Delete(cfg)
	for _, opt := range opts {
		if opt != nil {
			opt(cfg)
		}
	}
}

func extra(set func(x *extras)) Option {
	return func(c *Config) {
		if x, ok := applying.Load(c); ok {
			set(x.(*extras))
		}
	}
}

// WithProgress reports the progress of the call it is given to (or, given
// to New, of every Snapshot, Restore, GC and Verify that has no progress
// option of its own). fn runs on a library thread, never concurrently for
// one operation; it must return quickly and must not call List, Files,
// Stats or Close (they fail with ErrBusy there). To stop the operation,
// cancel its context (canceled
// from fn, it stops at that event); a panic in fn cancels it and is raised
// again in the goroutine that called.
func WithProgress(fn func(Progress)) Option {
	return extra(func(x *extras) { x.progress = fn })
}

// WithReport fills r with the counters of the Snapshot, Restore, GC or
// Delete call it is given to, when that call succeeds.
func WithReport(r *Report) Option {
	return extra(func(x *extras) { x.report = r })
}

// WithRefuseExisting makes Restore refuse files that already exist in the
// output directory (ErrAlreadyExists) instead of replacing them, which is
// the default as in d7y.io/snapshotter. The C API, Python and snapshotctl
// refuse by default.
func WithRefuseExisting() Option {
	return extra(func(x *extras) { x.refuse = true })
}

// WithOverwrite lets Restore replace files that already exist in the
// output directory: the default, kept for callers that say so (and to
// undo a WithRefuseExisting given to New).
func WithOverwrite() Option {
	return extra(func(x *extras) { x.refuse = false })
}

// WithStoreGroup, given to New, lets the group gid read the store: its
// directories 0750, content 0440 and metadata files 0640, owned by that
// group (the process must belong to it). Without it only the owner may read
// (0700, 0400, 0600).
func WithStoreGroup(gid int) Option {
	return extra(func(x *extras) { x.storeGroup = &gid })
}

// WithDurableRestore, given to New or Open, makes every Restore of the
// store fsync each file it writes and each directory it changes before it
// returns success, so a power loss right after cannot leave empty or
// missing files. Off by default, as with cp: it costs one fsync per
// written file. Like the other settings fixed at open, it has no effect
// when given to Restore.
func WithDurableRestore() Option {
	return extra(func(x *extras) { x.durableRestore = true })
}

// WithRecordFormat, given to New or Open, sets the format of the snapshot
// records the store writes (SNAPSHOTTER_OPT_RECORD_FORMAT): 1, the
// default, is read by every 0.x release; 3 keeps a snapshot's files in
// parts, so a local snapshot of any number of files commits in bounded
// memory. Releases before 0.3 refuse snapshots of formats 2 and 3.
func WithRecordFormat(format int) Option {
	return extra(func(x *extras) { x.recordFormat = &format })
}

// WithMaxConfigBytes, given to New or Open, sets the largest snapshot
// config (its JSON) a Snapshot may publish and a Restore may fetch: one
// limit for both sides, so what is published can be restored (default 512
// MiB, about a million files).
func WithMaxConfigBytes(n int64) Option {
	return extra(func(x *extras) { x.maxConfigBytes = &n })
}

// WithoutBackgroundGC, given to New or Open, runs no background collector
// (GC.Interval cannot say so: upstream treats 0 as the default interval).
// Store.GC still collects when called.
func WithoutBackgroundGC() Option {
	return extra(func(x *extras) { x.noBackgroundGC = true })
}

// WithGCMinRetention, given to New or Open, sets the minimum retention
// exactly, 0 included (GC.MinRetentionPeriod treats 0 as the default).
func WithGCMinRetention(d time.Duration) Option {
	return extra(func(x *extras) { x.minRetention = &d })
}

// WithMaxStoreBytes, given to New or Open, gives the store a byte budget,
// a second eviction trigger beside the disk thresholds (0: none).
func WithMaxStoreBytes(n int64) Option {
	return extra(func(x *extras) { x.maxStoreBytes = &n })
}

// WithRegistryCAFile trusts the PEM bundle at path for the registry's TLS,
// for a registry with a private CA. A remote setting, like WithMetadata.
func WithRegistryCAFile(path string) Option {
	return extra(func(x *extras) { x.remote.caFile = path })
}

// WithContentSessionToken adds the session token of temporary object
// storage credentials to Content. A remote setting, like WithContent.
func WithContentSessionToken(token string) Option {
	return extra(func(x *extras) { x.remote.sessionToken = token })
}

// WithDragonflyOptions sets the Dragonfly settings beyond the endpoint. A
// remote setting, like WithContent.
func WithDragonflyOptions(d DragonflyOptions) Option {
	return extra(func(x *extras) { x.remote.dragonfly = d })
}
