// Package dragonfly holds the content-transport settings of a snapshotter:
// the Dragonfly peer daemon and the object storage behind it. The types
// are those of d7y.io/snapshotter/pkg/dragonfly.
//
// A Dragonfly endpoint makes content go through the peer daemon, backed by
// the ContentProvider's object storage (see docs/dragonfly.md of
// libsnapshotter); an endpoint without a ContentProvider is refused with
// snapshotter.ErrInvalid instead of being ignored.
package dragonfly

import "time"

// Dragonfly defines the Dragonfly configuration for the snapshotter.
type Dragonfly struct {
	// Endpoint is the endpoint of the Dragonfly peer daemon, such as
	// unix:///var/run/dragonfly/dfdaemon.sock.
	Endpoint string

	// The fields below are libsnapshotter's additions; their zero values
	// keep the library's defaults.

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

// ContentProvider defines the object storage that backs the content.
type ContentProvider struct {
	// Provider is the kind of object storage ("s3", "oss", "gcs", ...).
	Provider string

	// Bucket is the bucket of the content.
	Bucket string

	// Region is the region of the bucket.
	Region string

	// Endpoint is the endpoint of the object storage service.
	Endpoint string

	// AccessKeyID is the access key ID for the object storage.
	AccessKeyID string

	// AccessKeySecret is the access key secret for the object storage.
	AccessKeySecret string

	// SessionToken is the session token of temporary credentials
	// (libsnapshotter's addition; empty for long-term keys).
	SessionToken string
}
