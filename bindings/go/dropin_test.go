package snapshotter_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// hasDragonfly checks that the library takes a Dragonfly endpoint (every
// build has the transport since it speaks gRPC over libcurl).
func hasDragonfly(t *testing.T) bool {
	t.Helper()
	s, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir(),
		Dragonfly: dragonfly.Dragonfly{Endpoint: "unix://" + filepath.Join(t.TempDir(), "none.sock")}})
	if errIs(err, snapshotter.ErrUnsupported) {
		// One build of the library, with the transport: this is a failure.
		t.Fatalf("the library refuses a Dragonfly endpoint: %v", err)
		return false
	}
	if err != nil {
		t.Fatalf("New with only a Dragonfly endpoint: %v", err)
	}
	s.Close()
	return true
}

// needDragonfly skips unless the library has the Dragonfly transport.
func needDragonfly(t *testing.T) {
	t.Helper()
	if !hasDragonfly(t) {
		t.Skip("libsnapshotter was built without the Dragonfly transport")
	}
}

func s3Content(env map[string]string) dragonfly.ContentProvider {
	return dragonfly.ContentProvider{Provider: "s3", Bucket: env["S3_BUCKET"], Region: env["S3_REGION"], Endpoint: env["S3_ENDPOINT"],
		AccessKeyID: env["S3_ACCESS_KEY_ID"], AccessKeySecret: env["S3_SECRET_ACCESS_KEY"]}
}

// New takes a Dragonfly endpoint without the object storage (upstream's
// e2e.go gives that per call); a call that moves content without it fails
// then, naming what is missing, and one given WithContent works.
func TestDragonflyEndpointWithoutContentIsCheckedAtTheCall(t *testing.T) {
	needDragonfly(t)
	env := services(t)
	if env["DRAGONFLY_ENDPOINT"] == "" || env["S3_ENDPOINT"] == "" {
		t.Skip("no Dragonfly stand-in or S3 in SERVICES_ENV")
	}
	dir := t.TempDir()
	remote := snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + filepath.Join(dir, "registry")}})
	s, err := snapshotter.Open(snapshotter.Config{RootDir: filepath.Join(dir, "a"),
		Dragonfly: dragonfly.Dragonfly{Endpoint: env["DRAGONFLY_ENDPOINT"]}}, remote)
	if err != nil {
		t.Fatalf("New with a Dragonfly endpoint and no Content: %v", err)
	}
	defer s.Close()
	c := makeCheckpoint(t, 11, smallSizes)
	ctx := context.Background()
	name := "df-" + uniqueNamespace(t)
	err = s.Snapshot(ctx, c.request(name, "v1"))
	if !errIs(err, snapshotter.ErrInvalid) || !strings.Contains(err.Error(), "object storage") {
		t.Fatalf("Snapshot without Content = %v, want ErrInvalid naming the object storage", err)
	}
	if err := s.Snapshot(ctx, c.request(name, "v1"), snapshotter.WithContent(s3Content(env))); err != nil {
		t.Fatalf("Snapshot WithContent: %v", err)
	}
	out := filepath.Join(dir, "out")
	if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: name, Version: "v1", OutputDir: out}); err != nil {
		t.Fatalf("local Restore needs no content: %v", err)
	}
	c.sameTree(t, out)
}

// A content endpoint without a scheme is taken as upstream takes it; for
// S3 reached directly it means https (so a plain-HTTP S3 fails in TLS,
// not as an invalid setting).
func TestBareContentEndpointMeansHTTPS(t *testing.T) {
	env := services(t)
	if env["S3_ENDPOINT"] == "" {
		t.Skip("no S3 service in SERVICES_ENV")
	}
	content := s3Content(env)
	content.Endpoint = strings.TrimPrefix(content.Endpoint, "http://")
	dir := t.TempDir()
	s, err := snapshotter.Open(snapshotter.Config{RootDir: filepath.Join(dir, "a"), Content: content},
		snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + filepath.Join(dir, "registry")}}))
	if err != nil {
		t.Fatalf("New with content endpoint %q: %v", content.Endpoint, err)
	}
	defer s.Close()
	c := makeCheckpoint(t, 12, smallSizes)
	err = s.Snapshot(context.Background(), c.request("bare", "v1"))
	if !errIs(err, snapshotter.ErrTransport) || !strings.Contains(err.Error(), "https://"+content.Endpoint) {
		t.Fatalf("Snapshot to plain-HTTP S3 through a bare endpoint = %v, want ErrTransport naming https://%s", err, content.Endpoint)
	}
}
