package snapshotter_test

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// The public API of d7y.io/snapshotter, spelled out: a program written
// against it compiles against this package unchanged.
var (
	_ func(snapshotter.Config, ...snapshotter.Option) (snapshotter.Snapshotter, error) = snapshotter.New
	_ func(snapshotter.Metadata) snapshotter.Option                                    = snapshotter.WithMetadata
	_ func(dragonfly.ContentProvider) snapshotter.Option                               = snapshotter.WithContent
	_ error                                                                            = snapshotter.ErrSnapshotAlreadyExists
	_ snapshotter.Snapshotter                                                          = (*snapshotter.Store)(nil)
	_ interface{ Close() error }                                                       = (*snapshotter.Store)(nil)
	_ func(*snapshotter.Config)                                                        = snapshotter.Option(nil)
)

func TestAPIMatchesD7ySnapshotter(t *testing.T) {
	d, f, n := time.Minute, 80.0, 10
	_ = snapshotter.Config{
		GC: snapshotter.GC{Interval: &d, DiskHighThresholdPercent: &f, DiskLowThresholdPercent: &f,
			BatchSize: &n, MinRetentionPeriod: &d},
		RootDir:  "/x",
		Metadata: snapshotter.Metadata{Registry: oci.Registry{Endpoint: "e", Namespace: "n", Username: "u", Password: "p", Insecure: true}},
		Content: dragonfly.ContentProvider{Provider: "s3", Bucket: "b", Region: "r", Endpoint: "e",
			AccessKeyID: "a", AccessKeySecret: "s"},
		Dragonfly:           dragonfly.Dragonfly{Endpoint: "unix:///d.sock"},
		SnapshotConcurrency: &n,
		RestoreConcurrency:  &n,
	}
	_ = snapshotter.SnapshotRequest{Name: "n", Version: "v", BaseDir: "/b",
		Files: []snapshotter.File{{RelativePath: "f", ReadOnly: true}}}
	_ = snapshotter.RestoreRequest{Name: "n", Version: "v", OutputDir: "/o"}
}

// Upstream's structs have exactly upstream's fields, in order, so unkeyed
// literals of upstream code compile, and Config stays comparable.
func TestStructsHaveExactlyUpstreamsFields(t *testing.T) {
	_ = snapshotter.Config{} == snapshotter.Config{} // compiles only while comparable
	for _, c := range []struct {
		v    interface{}
		want string
	}{
		{snapshotter.Config{}, "GC snapshotter.GC, RootDir string, Metadata snapshotter.Metadata, Content dragonfly.ContentProvider, " +
			"Dragonfly dragonfly.Dragonfly, SnapshotConcurrency *int, RestoreConcurrency *int"},
		{snapshotter.GC{}, "Interval *time.Duration, DiskHighThresholdPercent *float64, DiskLowThresholdPercent *float64, " +
			"BatchSize *int, MinRetentionPeriod *time.Duration"},
		{snapshotter.Metadata{}, "Registry oci.Registry"},
		{snapshotter.SnapshotRequest{}, "Name string, Version string, BaseDir string, Files []snapshotter.File"},
		{snapshotter.RestoreRequest{}, "Name string, Version string, OutputDir string"},
		{snapshotter.File{}, "RelativePath string, ReadOnly bool"},
		{oci.Registry{}, "Endpoint string, Namespace string, Username string, Password string, Insecure bool"},
		{dragonfly.Dragonfly{}, "Endpoint string"},
		{dragonfly.ContentProvider{}, "Provider string, Bucket string, Region string, Endpoint string, AccessKeyID string, AccessKeySecret string"},
	} {
		ty := reflect.TypeOf(c.v)
		var fields []string
		for i := 0; i < ty.NumField(); i++ {
			fields = append(fields, ty.Field(i).Name+" "+ty.Field(i).Type.String())
		}
		if got := strings.Join(fields, ", "); got != c.want {
			t.Errorf("%s fields:\n got %s\nwant %s", ty, got, c.want)
		}
	}
}

func TestSnapshotAndRestoreRoundTrip(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	ctx := context.Background()
	var snap snapshotter.Report
	if err := s.Snapshot(ctx, c.request("sandboxes/sb-1", "ckpt-1"), snapshotter.WithReport(&snap)); err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	if snap.FilesStored != 4 || snap.BytesRead == 0 {
		t.Errorf("snapshot report = %+v, want 4 files stored", snap)
	}
	out := filepath.Join(t.TempDir(), "out")
	var rest snapshotter.Report
	if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: "sandboxes/sb-1", Version: "ckpt-1", OutputDir: out},
		snapshotter.WithReport(&rest)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	c.sameTree(t, out)
	if rest.FilesLinked != 2 || rest.FilesDecoded != 2 {
		t.Errorf("restore report = %+v, want 2 linked and 2 decoded", rest)
	}
	// Read-only files come back as hard links of the original inode.
	a, _ := os.Stat(filepath.Join(c.base, "ckpt/memory.dump"))
	b, _ := os.Stat(filepath.Join(out, "ckpt/memory.dump"))
	if !os.SameFile(a, b) {
		t.Error("read-only file was not restored as a hard link")
	}
	// Read-write files are new files.
	a, _ = os.Stat(filepath.Join(c.base, "rootfs/disk.img"))
	b, _ = os.Stat(filepath.Join(out, "rootfs/disk.img"))
	if os.SameFile(a, b) {
		t.Error("read-write file was restored as a hard link")
	}
}

func TestNewReturnsAWorkingStore(t *testing.T) {
	sn, err := snapshotter.New(snapshotter.Config{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer sn.(*snapshotter.Store).Close()
	c := makeCheckpoint(t, 2, smallSizes)
	if err := sn.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir() + "/out"
	if err := sn.Restore(context.Background(), &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	c.sameTree(t, out)
}

func TestNewRequiresRootDir(t *testing.T) {
	s, err := snapshotter.New(snapshotter.Config{})
	if s != nil || !errIs(err, snapshotter.ErrInvalid) {
		t.Fatalf("New without RootDir = %v, %v; want nil, ErrInvalid", s, err)
	}
}

func TestOptionsGivenToNewApply(t *testing.T) {
	reg := t.TempDir()
	s, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()},
		snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + reg}}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := makeCheckpoint(t, 3, smallSizes)
	if err := s.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	if refs := layoutRefs(t, reg); !refs["a:v1"] {
		t.Fatalf("registry refs = %v, want a:v1", refs)
	}
}

func TestSnapshotOfExistingVersionIsErrSnapshotAlreadyExists(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	ctx := context.Background()
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	err := s.Snapshot(ctx, c.request("a", "v1"))
	if err != snapshotter.ErrSnapshotAlreadyExists || !errIs(err, snapshotter.ErrAlreadyExists) {
		t.Fatalf("second Snapshot = %v, want ErrSnapshotAlreadyExists itself", err)
	}
}

// As in d7y.io/snapshotter, Restore replaces files already in the output
// directory; WithRefuseExisting refuses them, for its call only.
func TestRestoreReplacesExistingFilesUnlessRefused(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	ctx := context.Background()
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	req := &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: out}
	if err := s.Restore(ctx, req); err != nil {
		t.Fatal(err)
	}
	changed := filepath.Join(out, "config.json")
	if err := os.WriteFile(changed, []byte("changed"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Restore(ctx, req, snapshotter.WithRefuseExisting()); !errIs(err, snapshotter.ErrAlreadyExists) {
		t.Fatalf("Restore WithRefuseExisting over existing files = %v, want ErrAlreadyExists", err)
	}
	if b, _ := os.ReadFile(changed); string(b) != "changed" {
		t.Fatalf("a refused restore changed %s", changed)
	}
	if err := s.Restore(ctx, req); err != nil {
		t.Fatalf("Restore over existing files: %v", err)
	}
	c.sameTree(t, out)
	if err := s.Restore(ctx, req, snapshotter.WithOverwrite()); err != nil {
		t.Fatalf("Restore WithOverwrite: %v", err)
	}
	// Given to New, refusing is the store's default; WithOverwrite undoes it.
	r := openStore(t, snapshotter.WithRefuseExisting())
	if err := r.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	if err := r.Restore(ctx, req); !errIs(err, snapshotter.ErrAlreadyExists) {
		t.Fatalf("Restore on a refusing store = %v, want ErrAlreadyExists", err)
	}
	if err := r.Restore(ctx, req, snapshotter.WithOverwrite()); err != nil {
		t.Fatalf("Restore WithOverwrite on a refusing store: %v", err)
	}
}

func TestNilRequestsAreErrInvalid(t *testing.T) {
	s := openStore(t)
	if err := s.Snapshot(context.Background(), nil); !errIs(err, snapshotter.ErrInvalid) {
		t.Errorf("Snapshot(nil) = %v", err)
	}
	if err := s.Restore(context.Background(), nil); !errIs(err, snapshotter.ErrInvalid) {
		t.Errorf("Restore(nil) = %v", err)
	}
}
