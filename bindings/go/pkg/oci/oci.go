// Package oci holds the settings of the OCI registry that snapshots are
// published to and fetched from. Registry is the type of
// d7y.io/snapshotter/pkg/oci, plus CAFile.
package oci

// Registry defines the registry configuration for the snapshotter.
type Registry struct {
	// Endpoint is http://host[:port], https://host[:port], or file:///dir
	// for an OCI image layout directory. Empty keeps snapshots local.
	Endpoint string

	// Namespace prefixes every repository: a snapshot name:version goes
	// to <Namespace>/<name>:<version>.
	Namespace string

	// Username and Password are the registry credentials (Basic, or the
	// token flow). The password is never logged or put in an error.
	Username string
	Password string

	// Insecure skips TLS certificate verification.
	Insecure bool

	// CAFile is a PEM bundle of certificate authorities to trust, for a
	// registry with a private CA. Not in d7y.io/snapshotter, which has no
	// way to pass one.
	CAFile string
}
