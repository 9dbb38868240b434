package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
)

// BuildManifest builds the manifest of a snapshot whose config is config
// (marshaled to JSON, as the config blob pushed beside it must be).
func BuildManifest(config interface{}) (Manifest, error) {
	b, err := json.Marshal(config)
	if err != nil {
		return Manifest{}, err
	}
	sum := sha256.Sum256(b)
	return Manifest{
		Versioned:    Versioned{SchemaVersion: 2},
		MediaType:    MediaTypeImageManifest,
		ArtifactType: ArtifactTypeSnapshotterManifest,
		Config: Descriptor{
			MediaType: MediaTypeSnapshotterConfig,
			Digest:    Digest("sha256:" + hex.EncodeToString(sum[:])),
			Size:      int64(len(b)),
		},
		Layers: []Descriptor{},
	}, nil
}
