// Package dragonfly holds the content-transport settings of a snapshotter:
// the Dragonfly peer daemon and the object storage behind it. The types
// are those of d7y.io/snapshotter/pkg/dragonfly; libsnapshotter's further
// settings are options of the snapshotter package (WithDragonflyOptions,
// WithContentSessionToken).
//
// A Dragonfly endpoint makes content go through the peer daemon, backed by
// the ContentProvider's object storage (see docs/dragonfly.md of
// libsnapshotter). The ContentProvider may come per call; a call that
// moves content with an endpoint and no object storage fails with
// snapshotter.ErrInvalid.
package dragonfly

// Dragonfly defines the Dragonfly configuration for the snapshotter.
type Dragonfly struct {
	// Endpoint is the gRPC target of the Dragonfly peer daemon, such as
	// unix:///var/run/dragonfly/dfdaemon.sock; it is handed to the library
	// as given.
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

	// Endpoint is the endpoint of the object storage service:
	// http://host[:port], https://host[:port], or a bare host[:port]
	// (handed to the Dragonfly daemon as given; for S3 reached directly it
	// means https).
	Endpoint string

	// AccessKeyID is the access key ID for the object storage.
	AccessKeyID string

	// AccessKeySecret is the access key secret for the object storage.
	AccessKeySecret string
}
