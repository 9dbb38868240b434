package oci

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"

	"github.com/libsnapshotter/snapshotter-go/internal/capi"
)

const (
	// ArtifactTypeSnapshotterManifest is the artifact type of a snapshot's
	// manifest.
	ArtifactTypeSnapshotterManifest = "application/vnd.cncf.dragonfly.snapshotter.manifest.v1+json"

	// MediaTypeSnapshotterConfig is the media type of a snapshot's config.
	MediaTypeSnapshotterConfig = "application/vnd.cncf.dragonfly.snapshotter.config.v1+json"

	// MediaTypeImageManifest is the OCI image manifest media type.
	MediaTypeImageManifest = "application/vnd.oci.image.manifest.v1+json"
)

// Digest is an OCI content digest ("sha256:<hex>"), in place of
// github.com/opencontainers/go-digest's (this module has no dependencies).
type Digest string

func (d Digest) String() string { return string(d) }

// Versioned is the schema version of a manifest.
type Versioned struct {
	SchemaVersion int `json:"schemaVersion"`
}

// Descriptor describes a blob, with the fields and JSON of the OCI image
// spec's descriptor.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// Manifest is an OCI image manifest, with the fields and JSON of the OCI
// image spec's.
type Manifest struct {
	Versioned
	MediaType    string            `json:"mediaType,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
	Config       Descriptor        `json:"config"`
	Layers       []Descriptor      `json:"layers"`
	Subject      *Descriptor       `json:"subject,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
}

// Client is the interface for OCI registry operations.
type Client interface {
	// PullBlob pulls a blob from the registry.
	PullBlob(ctx context.Context, name, reference string) (io.ReadCloser, error)

	// PullManifest pulls a manifest from the registry.
	PullManifest(ctx context.Context, name, reference string) (Manifest, error)

	// PushBlob pushes a blob to the registry.
	PushBlob(ctx context.Context, name string, blob io.ReadCloser) (Digest, error)

	// PushManifest pushes a manifest to the registry.
	PushManifest(ctx context.Context, name, reference string, manifest Manifest) (Digest, error)
}

// New creates a client of registry through libsnapshotter (http://,
// https:// or file:///dir; the repository is <Namespace>/<name>). rootDir
// is unused: nothing is kept locally. Calls block until done; a context
// already canceled fails at once.
func New(rootDir string, registry Registry) (Client, error) {
	_ = rootDir
	if registry.Endpoint == "" {
		return nil, &capi.Error{Code: capi.CodeInvalid, Op: "registry client", Message: "registry client: Endpoint is empty"}
	}
	s := []capi.Setting{{Name: "Registry.Endpoint", Option: capi.OptRegistryEndpoint, Str: registry.Endpoint}}
	if registry.Namespace != "" {
		s = append(s, capi.Setting{Name: "Registry.Namespace", Option: capi.OptRegistryNamespace, Str: registry.Namespace})
	}
	if registry.Username != "" {
		s = append(s, capi.Setting{Name: "Registry.Username", Option: capi.OptRegistryUsername, Str: registry.Username})
	}
	if registry.Password != "" {
		s = append(s, capi.Setting{Name: "Registry.Password", Option: capi.OptRegistryPassword, Str: registry.Password})
	}
	if registry.Insecure {
		s = append(s, capi.Setting{Name: "Registry.Insecure", Option: capi.OptRegistryInsecure, Int: 1, IsInt: true})
	}
	return &client{settings: s}, nil
}

type client struct{ settings []capi.Setting }

func (c *client) PullBlob(ctx context.Context, name, reference string) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := capi.PullBlob(c.settings, name, reference)
	if err != nil {
		return nil, err
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func (c *client) PullManifest(ctx context.Context, name, reference string) (Manifest, error) {
	if err := ctx.Err(); err != nil {
		return Manifest{}, err
	}
	b, err := capi.PullManifest(c.settings, name, reference)
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Manifest{}, &capi.Error{Code: capi.CodeRegistry, Op: "pull manifest", Message: "pull manifest " + name + ":" + reference + ": " + err.Error()}
	}
	return m, nil
}

func (c *client) PushBlob(ctx context.Context, name string, blob io.ReadCloser) (Digest, error) {
	if blob == nil {
		return "", errors.New("push blob: blob is nil")
	}
	defer blob.Close()
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b, err := io.ReadAll(blob)
	if err != nil {
		return "", err
	}
	d, err := capi.PushBlob(c.settings, name, b)
	return Digest(d), err
}

func (c *client) PushManifest(ctx context.Context, name, reference string, manifest Manifest) (Digest, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	b, err := json.Marshal(manifest)
	if err != nil {
		return "", err
	}
	d, err := capi.PushManifest(c.settings, name, reference, b)
	return Digest(d), err
}
