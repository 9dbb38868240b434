// Package dragonfly holds the content-transport settings of a snapshotter:
// the Dragonfly peer daemon and the object storage behind it. The types
// are those of d7y.io/snapshotter/pkg/dragonfly.
//
// A Dragonfly endpoint makes content go through the peer daemon, backed by
// the ContentProvider's object storage (see docs/dragonfly.md of
// libsnapshotter); an endpoint without a ContentProvider is refused with
// snapshotter.ErrInvalid instead of being ignored.
package dragonfly

// Dragonfly defines the Dragonfly configuration for the snapshotter.
type Dragonfly struct {
	// Endpoint is the endpoint of the Dragonfly peer daemon, such as
	// unix:///var/run/dragonfly/dfdaemon.sock.
	Endpoint string
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
}
