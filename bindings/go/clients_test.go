package snapshotter_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// The clients' failures are the library's errors: errors.Is works with the
// snapshotter package's sentinels.
func TestClientErrorsAreTheLibrarys(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := oci.New(dir, oci.Registry{Endpoint: "file://" + filepath.Join(dir, "reg")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.PullManifest(ctx, "app", "v1"); !errIs(err, snapshotter.ErrNotFound) {
		t.Errorf("PullManifest of a missing tag = %v, want ErrNotFound", err)
	}
	d, err := c.PushBlob(ctx, "app", io.NopCloser(strings.NewReader("config")))
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "reg", "blobs", "sha256", strings.TrimPrefix(d.String(), "sha256:"))
	if err := os.Chmod(blob, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PullBlob(ctx, "app", d.String()); !errIs(err, snapshotter.ErrRegistry) {
		t.Errorf("PullBlob of a tampered blob = %v, want ErrRegistry", err)
	}
	if _, err := oci.New(dir, oci.Registry{}); !errIs(err, snapshotter.ErrInvalid) {
		t.Errorf("oci.New without an endpoint = %v, want ErrInvalid", err)
	}

	content, err := dragonfly.New(dragonfly.Dragonfly{}, dragonfly.ContentProvider{Provider: "file", Bucket: filepath.Join(dir, "remote")})
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(dir, "not-content")
	if err := os.WriteFile(src, []byte("plain bytes"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = content.Upload(ctx, &dragonfly.UploadRequest{Digest: "xxh3:1234", SrcPath: src})
	if !errIs(err, snapshotter.ErrInvalid) || !strings.Contains(err.Error(), "hashes to") {
		t.Errorf("Upload under a digest the file does not have = %v, want ErrInvalid", err)
	}
	out := filepath.Join(dir, "out")
	if err := content.Download(ctx, &dragonfly.DownloadRequest{Digest: "xxh3:1234", OutputPath: out}); !errIs(err, snapshotter.ErrNotFound) {
		t.Errorf("Download of a missing digest = %v, want ErrNotFound", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a failed download left %s", out)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := c.PushBlob(canceled, "app", io.NopCloser(bytes.NewReader(nil))); err != context.Canceled {
		t.Errorf("PushBlob with a canceled context = %v", err)
	}
}
