// A program written only against d7y.io/snapshotter's API; the only
// change for this binding is its three import paths. upstream_test.go
// builds it and runs it against the test services, configured through
// the environment variables of upstream's examples/e2e.go.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"sync"

	"github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func registry() oci.Registry {
	return oci.Registry{
		Endpoint:  env("REGISTRY_ENDPOINT", "http://localhost:5000"),
		Username:  os.Getenv("REGISTRY_USERNAME"),
		Password:  os.Getenv("REGISTRY_PASSWORD"),
		Namespace: env("REGISTRY_NAMESPACE", "snapshotter"),
		Insecure:  os.Getenv("REGISTRY_INSECURE") == "true",
	}
}

func content() dragonfly.ContentProvider {
	return dragonfly.ContentProvider{
		Provider:        env("CONTENT_PROVIDER", "s3"),
		Bucket:          env("CONTENT_BUCKET", "test-bucket"),
		Region:          env("CONTENT_REGION", "us-east-1"),
		Endpoint:        env("CONTENT_ENDPOINT", "localhost:9000"),
		AccessKeyID:     os.Getenv("CONTENT_ACCESS_KEY_ID"),
		AccessKeySecret: os.Getenv("CONTENT_ACCESS_KEY_SECRET"),
	}
}

// checkpoint writes a sandbox checkpoint under base/name.
func checkpoint(base, name string) ([]snapshotter.File, error) {
	files := []snapshotter.File{
		{RelativePath: filepath.Join(name, "mem"), ReadOnly: true},
		{RelativePath: filepath.Join(name, "state"), ReadOnly: true},
		{RelativePath: filepath.Join(name, "img")},
		{RelativePath: filepath.Join(name, "config.json")},
	}
	sizes := []int{1 << 20, 64 << 10, 2 << 20, 0}
	for i, f := range files {
		p := filepath.Join(base, f.RelativePath)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, err
		}
		data := []byte(fmt.Sprintf(`{"name":%q}`, name))
		if sizes[i] > 0 {
			data = make([]byte, sizes[i])
			if _, err := rand.Read(data); err != nil {
				return nil, err
			}
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
	}
	return files, nil
}

func same(base, out string, files []snapshotter.File) error {
	for _, f := range files {
		a, err := os.ReadFile(filepath.Join(base, f.RelativePath))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(out, f.RelativePath))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s differs after restore", f.RelativePath)
		}
	}
	return nil
}

func run() error {
	ctx := context.Background()
	root := env("SNAPSHOTTER_ROOT_DIR", filepath.Join(os.TempDir(), "snapshotter"))
	config := snapshotter.Config{
		RootDir:   root,
		Dragonfly: dragonfly.Dragonfly{Endpoint: os.Getenv("DRAGONFLY_ENDPOINT")},
	}
	s, err := snapshotter.New(config)
	if err != nil {
		return fmt.Errorf("new: %w", err)
	}
	opts := []snapshotter.Option{
		snapshotter.WithMetadata(snapshotter.Metadata{Registry: registry()}),
		snapshotter.WithContent(content()),
	}
	work, err := os.MkdirTemp("", "upstream-api-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	base := filepath.Join(work, "base")
	suffix := env("NAME_SUFFIX", "")

	// Three snapshot-and-restore runs at once.
	type result struct {
		name  string
		files []snapshotter.File
		err   error
	}
	results := make([]result, 3)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &results[i]
			r.name = fmt.Sprintf("ckpt%d%s", i+1, suffix)
			if r.files, r.err = checkpoint(base, r.name); r.err != nil {
				return
			}
			if r.err = s.Snapshot(ctx, &snapshotter.SnapshotRequest{Name: r.name, Version: "v1", BaseDir: base, Files: r.files}, opts...); r.err != nil {
				r.err = fmt.Errorf("snapshot %s: %w", r.name, r.err)
				return
			}
			out := filepath.Join(work, "out", r.name)
			if r.err = s.Restore(ctx, &snapshotter.RestoreRequest{Name: r.name, Version: "v1", OutputDir: out}, opts...); r.err != nil {
				r.err = fmt.Errorf("restore %s: %w", r.name, r.err)
				return
			}
			r.err = same(base, out, r.files)
		}(i)
	}
	wg.Wait()
	for _, r := range results {
		if r.err != nil {
			return r.err
		}
	}
	log.Printf("three snapshot-and-restore runs done")

	first := results[0]
	err = s.Snapshot(ctx, &snapshotter.SnapshotRequest{Name: first.name, Version: "v1", BaseDir: base, Files: first.files}, opts...)
	if err != snapshotter.ErrSnapshotAlreadyExists {
		return fmt.Errorf("snapshot again = %v, want ErrSnapshotAlreadyExists", err)
	}
	log.Printf("snapshot again: %v", err)

	// A restore into a directory that holds the files already, twice.
	out := filepath.Join(work, "out", first.name)
	for i := 0; i < 2; i++ {
		if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: first.name, Version: "v1", OutputDir: out}, opts...); err != nil {
			return fmt.Errorf("restore into the same directory (%d): %w", i+1, err)
		}
	}
	if err := same(base, out, first.files); err != nil {
		return err
	}
	log.Printf("restored twice into %s", out)

	// Another store restores from the registry and the content transport.
	other, err := snapshotter.New(snapshotter.Config{RootDir: root + "-other", Dragonfly: config.Dragonfly})
	if err != nil {
		return fmt.Errorf("new (other): %w", err)
	}
	third := results[2]
	remoteOut := filepath.Join(work, "remote-out")
	if err := other.Restore(ctx, &snapshotter.RestoreRequest{Name: third.name, Version: "v1", OutputDir: remoteOut}, opts...); err != nil {
		return fmt.Errorf("restore on another store: %w", err)
	}
	if err := same(base, remoteOut, third.files); err != nil {
		return err
	}
	log.Printf("restored %s on another store", third.name)

	if err := ociClient(ctx, root, "blobs"+suffix); err != nil {
		return err
	}
	return dragonflyClient(ctx, config.Dragonfly, root)
}

func ociClient(ctx context.Context, root, name string) error {
	c, err := oci.New(root, registry())
	if err != nil {
		return err
	}
	config, err := json.Marshal(map[string]string{"hello": "world"})
	if err != nil {
		return err
	}
	digest, err := c.PushBlob(ctx, name, io.NopCloser(bytes.NewReader(config)))
	if err != nil {
		return fmt.Errorf("push blob: %w", err)
	}
	manifest, err := oci.BuildManifest(map[string]string{"hello": "world"})
	if err != nil {
		return err
	}
	if manifest.Config.Digest != digest || manifest.ArtifactType != oci.ArtifactTypeSnapshotterManifest ||
		manifest.Config.MediaType != oci.MediaTypeSnapshotterConfig {
		return fmt.Errorf("manifest %+v does not describe the pushed config %s", manifest, digest)
	}
	if _, err := c.PushManifest(ctx, name, "v1", manifest); err != nil {
		return fmt.Errorf("push manifest: %w", err)
	}
	pulled, err := c.PullManifest(ctx, name, "v1")
	if err != nil {
		return fmt.Errorf("pull manifest: %w", err)
	}
	blob, err := c.PullBlob(ctx, name, pulled.Config.Digest.String())
	if err != nil {
		return fmt.Errorf("pull blob: %w", err)
	}
	defer blob.Close()
	got, err := io.ReadAll(blob)
	if err != nil {
		return err
	}
	if !bytes.Equal(got, config) {
		return fmt.Errorf("pulled config %q, pushed %q", got, config)
	}
	log.Printf("oci client: pushed and pulled %s", digest)
	return nil
}

func dragonflyClient(ctx context.Context, d dragonfly.Dragonfly, root string) error {
	c, err := dragonfly.New(d, content())
	if err != nil {
		return err
	}
	dir := filepath.Join(root, "storage", "content", "xxh3")
	names, err := os.ReadDir(dir)
	if err != nil || len(names) == 0 {
		return fmt.Errorf("no content files in %s: %v", dir, err)
	}
	src := filepath.Join(dir, names[0].Name())
	digest := "xxh3:" + names[0].Name()
	if err := c.Upload(ctx, &dragonfly.UploadRequest{Digest: digest, SrcPath: src}); err != nil {
		return fmt.Errorf("upload: %w", err)
	}
	out := filepath.Join(os.TempDir(), "upstream-api-download-"+names[0].Name())
	defer os.Remove(out)
	if err := c.Download(ctx, &dragonfly.DownloadRequest{Digest: digest, OutputPath: out}); err != nil {
		return fmt.Errorf("download: %w", err)
	}
	a, _ := os.ReadFile(src)
	b, err := os.ReadFile(out)
	if err != nil || !bytes.Equal(a, b) {
		return fmt.Errorf("downloaded %s differs from the uploaded file (%v)", digest, err)
	}
	log.Printf("dragonfly client: uploaded and downloaded %s", digest)
	return nil
}

func main() {
	if err := run(); err != nil {
		log.Fatalf("FAILED: %v", err)
	}
	log.Printf("all done")
}
