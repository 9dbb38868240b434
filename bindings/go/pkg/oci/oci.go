// Package oci holds the settings of the OCI registry that snapshots are
// published to and fetched from: the types of d7y.io/snapshotter/pkg/oci.
// A registry with a private CA is trusted with
// snapshotter.WithRegistryCAFile.
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
}
