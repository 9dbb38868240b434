package snapshotter_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

func errIs(err, target error) bool { return err != nil && errors.Is(err, target) }

var sentinels = []struct {
	name string
	code snapshotter.Code
	num  int
	err  error
}{
	{"ErrInvalid", snapshotter.CodeInvalid, -30601, snapshotter.ErrInvalid},
	{"ErrNotFound", snapshotter.CodeNotFound, -30602, snapshotter.ErrNotFound},
	{"ErrAlreadyExists", snapshotter.CodeExists, -30603, snapshotter.ErrAlreadyExists},
	{"ErrIO", snapshotter.CodeIO, -30604, snapshotter.ErrIO},
	{"ErrCorrupt", snapshotter.CodeCorrupt, -30605, snapshotter.ErrCorrupt},
	{"ErrRegistry", snapshotter.CodeRegistry, -30606, snapshotter.ErrRegistry},
	{"ErrTransport", snapshotter.CodeTransport, -30607, snapshotter.ErrTransport},
	{"ErrCanceled", snapshotter.CodeCanceled, -30608, snapshotter.ErrCanceled},
	{"ErrBusy", snapshotter.CodeBusy, -30609, snapshotter.ErrBusy},
	{"ErrClosed", snapshotter.CodeClosed, -30610, snapshotter.ErrClosed},
	{"ErrNoSpace", snapshotter.CodeNoSpace, -30611, snapshotter.ErrNoSpace},
	{"ErrPermission", snapshotter.CodePermission, -30612, snapshotter.ErrPermission},
	{"ErrUnsupported", snapshotter.CodeUnsupported, -30613, snapshotter.ErrUnsupported},
	{"ErrInternal", snapshotter.CodeInternal, -30614, snapshotter.ErrInternal},
	{"ErrTimedOut", snapshotter.CodeTimedOut, -30615, snapshotter.ErrTimedOut},
	{"ErrInProgress", snapshotter.CodeInProgress, -30616, snapshotter.ErrInProgress},
	{"ErrOutOfMemory", snapshotter.CodeOutOfMemory, -30617, snapshotter.ErrOutOfMemory},
	{"ErrForked", snapshotter.CodeForked, -30618, snapshotter.ErrForked},
}

func TestEveryStatusMatchesItsSentinelAndNoOther(t *testing.T) {
	for _, a := range sentinels {
		if int(a.code) != a.num {
			t.Errorf("%s: code %d, snapshotter.h says %d", a.name, a.code, a.num)
		}
		err := error(&snapshotter.Error{Code: a.code, Op: "x", Message: "x failed"})
		wrapped := errorsJoin("context: ", err)
		for _, b := range sentinels {
			if got := errors.Is(err, b.err); got != (a.code == b.code) {
				t.Errorf("errors.Is(%s error, %s) = %v", a.name, b.name, got)
			}
			if got := errors.Is(wrapped, b.err); got != (a.code == b.code) {
				t.Errorf("errors.Is(wrapped %s error, %s) = %v", a.name, b.name, got)
			}
		}
		var e *snapshotter.Error
		if !errors.As(wrapped, &e) || e.Code != a.code {
			t.Errorf("errors.As(%s) = %v", a.name, e)
		}
	}
	// d7y.io/snapshotter's sentinel is a value of its own that is also
	// ErrAlreadyExists (and fs.ErrExist) for errors.Is, and an *Error.
	se := snapshotter.ErrSnapshotAlreadyExists
	var e *snapshotter.Error
	if !errors.Is(se, snapshotter.ErrAlreadyExists) || !errors.Is(se, fs.ErrExist) || errors.Is(se, snapshotter.ErrNotFound) ||
		!errors.As(se, &e) || e.Code != snapshotter.CodeExists {
		t.Errorf("ErrSnapshotAlreadyExists %#v does not match ErrAlreadyExists alone", se)
	}
}

func errorsJoin(prefix string, err error) error { return &wrapErr{prefix, err} }

type wrapErr struct {
	p   string
	err error
}

func (w *wrapErr) Error() string { return w.p + w.err.Error() }
func (w *wrapErr) Unwrap() error { return w.err }

func TestFileSystemSentinelsMatch(t *testing.T) {
	cases := map[snapshotter.Code]error{
		snapshotter.CodeNotFound:   fs.ErrNotExist,
		snapshotter.CodeExists:     fs.ErrExist,
		snapshotter.CodePermission: fs.ErrPermission,
	}
	for code, target := range cases {
		if !errors.Is(&snapshotter.Error{Code: code}, target) {
			t.Errorf("%v is not %v", code, target)
		}
	}
	if errors.Is(&snapshotter.Error{Code: snapshotter.CodeIO}, fs.ErrNotExist) {
		t.Error("ErrIO matches fs.ErrNotExist")
	}
}

// Errors from the library carry its message, which names what failed.
func TestLibraryErrorsHaveTheirCodeAndMessage(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	c := makeCheckpoint(t, 1, smallSizes)
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	check := func(what string, err error, want error, mention string) {
		t.Helper()
		var e *snapshotter.Error
		if !errors.As(err, &e) || !errors.Is(err, want) {
			t.Fatalf("%s: %v, want %v", what, err, want)
		}
		if !strings.Contains(e.Message, mention) || !strings.Contains(err.Error(), mention) {
			t.Errorf("%s: message %q does not mention %q", what, e.Message, mention)
		}
	}
	check("restore of a missing snapshot",
		s.Restore(ctx, &snapshotter.RestoreRequest{Name: "nope", Version: "v1", OutputDir: out}),
		snapshotter.ErrNotFound, "nope:v1")
	_, err := s.Delete(ctx, "nope", "v2")
	check("delete of a missing snapshot", err, snapshotter.ErrNotFound, "nope:v2")
	_, err = s.Files("nope", "v3")
	check("files of a missing snapshot", err, snapshotter.ErrNotFound, "nope:v3")
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != snapshotter.ErrSnapshotAlreadyExists {
		t.Errorf("snapshot again = %v, want ErrSnapshotAlreadyExists itself", err)
	}
	check("invalid name", s.Snapshot(ctx, c.request("Not Valid", "v1")), snapshotter.ErrInvalid, "Not Valid")
	check("invalid version", s.Snapshot(ctx, c.request("a", "no spaces")), snapshotter.ErrInvalid, "no spaces")
	check("missing file", s.Snapshot(ctx, &snapshotter.SnapshotRequest{Name: "a", Version: "v9", BaseDir: c.base,
		Files: []snapshotter.File{{RelativePath: "absent.bin"}}}), snapshotter.ErrNotFound, "absent.bin")
	check("escaping path", s.Snapshot(ctx, &snapshotter.SnapshotRequest{Name: "a", Version: "v8", BaseDir: c.base,
		Files: []snapshotter.File{{RelativePath: "../outside"}}}), snapshotter.ErrInvalid, "../outside")

	_, err = snapshotter.Open(snapshotter.Config{RootDir: t.TempDir(), SnapshotConcurrency: intp(0)})
	check("zero concurrency", err, snapshotter.ErrInvalid, "SnapshotConcurrency")
	tiny := int64(1000)
	_, err = snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()}, snapshotter.WithMaxConfigBytes(tiny))
	check("config limit out of range", err, snapshotter.ErrInvalid, "WithMaxConfigBytes")
	s2, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()}, snapshotter.WithMaxConfigBytes(64<<20))
	if err != nil {
		t.Fatalf("open with MaxConfigBytes 64 MiB: %v", err)
	}
	s2.Close()
}

func TestBadContentAndDragonflySettingsAreRefusedNotDropped(t *testing.T) {
	root := t.TempDir()
	for name, c := range map[string]struct {
		cfg  snapshotter.Config
		want error
		says string
	}{
		// S3 without credentials and an unknown provider are refused at New.
		"no credentials": {snapshotter.Config{RootDir: root, Content: dragonfly.ContentProvider{Provider: "s3", Bucket: "b", Region: "us-east-1"}},
			snapshotter.ErrInvalid, "access key"},
		"provider": {snapshotter.Config{RootDir: root, Content: dragonfly.ContentProvider{Provider: "ftp", Bucket: "b"}},
			snapshotter.ErrInvalid, "ftp://b"},
	} {
		s, err := snapshotter.New(c.cfg)
		if s != nil || !errIs(err, c.want) || !strings.Contains(err.Error(), c.says) {
			t.Errorf("New with %s = %v, %v; want %v mentioning %q", name, s, err, c.want, c.says)
		}
	}
	// Per call: refused, and not kept for later calls.
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	ctx := context.Background()
	err := s.Snapshot(ctx, c.request("a", "v1"), snapshotter.WithContent(dragonfly.ContentProvider{Provider: "s3", Bucket: "b"}))
	if !errIs(err, snapshotter.ErrInvalid) {
		t.Fatalf("Snapshot WithContent without credentials = %v, want ErrInvalid", err)
	}
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatalf("Snapshot after a refused WithContent: %v", err)
	}
	// An empty provider is no setting at all.
	if err := s.Snapshot(ctx, c.request("a", "v2"), snapshotter.WithContent(dragonfly.ContentProvider{})); err != nil {
		t.Fatalf("Snapshot WithContent(empty): %v", err)
	}
}

func TestContentThroughADirectoryRestoresOnAnEmptyStore(t *testing.T) {
	dir := t.TempDir()
	remote := snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + filepath.Join(dir, "registry")}})
	content := snapshotter.WithContent(dragonfly.ContentProvider{Provider: "file", Bucket: filepath.Join(dir, "content")})
	a, err := snapshotter.New(snapshotter.Config{RootDir: filepath.Join(dir, "a")}, remote, content)
	if err != nil {
		t.Fatal(err)
	}
	defer a.(*snapshotter.Store).Close()
	c := makeCheckpoint(t, 1, smallSizes)
	if err := a.Snapshot(context.Background(), c.request("sb", "v1")); err != nil {
		t.Fatal(err)
	}
	b, err := snapshotter.New(snapshotter.Config{RootDir: filepath.Join(dir, "b")}, remote, content)
	if err != nil {
		t.Fatal(err)
	}
	defer b.(*snapshotter.Store).Close()
	out := filepath.Join(dir, "out")
	if err := b.Restore(context.Background(), &snapshotter.RestoreRequest{Name: "sb", Version: "v1", OutputDir: out}); err != nil {
		t.Fatal(err)
	}
	c.sameTree(t, out)
}

func TestCorruptContentIsFound(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s, err := snapshotter.Open(snapshotter.Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := makeCheckpoint(t, 1, smallSizes)
	ctx := context.Background()
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	files, err := s.Files("a", "v1")
	if err != nil {
		t.Fatal(err)
	}
	var digest string
	for _, f := range files.Files {
		if f.RelativePath == "config.json" {
			digest = f.Digest
		}
	}
	content := filepath.Join(root, "storage/content/xxh3", strings.TrimPrefix(digest, "xxh3:"))
	data, err := os.ReadFile(content)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-3] ^= 0xff
	if err := os.Chmod(content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(content, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err := s.Verify(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range rep.Problems {
		if p.Digest == digest && p.Kind == "corrupt-content" {
			found = true
		}
	}
	if !found {
		t.Fatalf("Verify problems = %+v, want corrupt-content of %s", rep.Problems, digest)
	}
	err = s.Restore(ctx, &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: t.TempDir()})
	if !errIs(err, snapshotter.ErrCorrupt) {
		t.Fatalf("Restore of corrupt content = %v, want ErrCorrupt", err)
	}
}

func intp(v int) *int { return &v }

// The Dragonfly settings beyond the endpoint reach the library: with
// Fallback, a daemon that cannot be reached sends content straight to and
// from S3; without it the same restore fails naming the endpoint. Bad
// values are refused naming the field.
func TestDragonflyFallbackReplicasAndTTLReachTheLibrary(t *testing.T) {
	needDragonfly(t)
	env := services(t)
	if env["S3_ENDPOINT"] == "" {
		t.Skip("no S3 service in SERVICES_ENV")
	}
	dir := t.TempDir()
	remote := snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + filepath.Join(dir, "registry")}})
	content := dragonfly.ContentProvider{Provider: "s3", Bucket: env["S3_BUCKET"], Region: env["S3_REGION"], Endpoint: env["S3_ENDPOINT"],
		AccessKeyID: env["S3_ACCESS_KEY_ID"], AccessKeySecret: env["S3_SECRET_ACCESS_KEY"]}
	gone := "unix://" + filepath.Join(dir, "no-daemon.sock")
	open := func(name string, d dragonfly.Dragonfly, opts ...snapshotter.Option) snapshotter.Snapshotter {
		s, err := snapshotter.New(snapshotter.Config{RootDir: filepath.Join(dir, name), Content: content, Dragonfly: d}, append(opts, remote)...)
		if err != nil {
			t.Fatalf("New %s: %v", name, err)
		}
		t.Cleanup(func() { s.(*snapshotter.Store).Close() })
		return s
	}
	fallback := snapshotter.WithDragonflyOptions(snapshotter.DragonflyOptions{Fallback: true, Replicas: 2, TTL: 90 * time.Minute})
	a := open("a", dragonfly.Dragonfly{Endpoint: gone}, fallback)
	c := makeCheckpoint(t, 7, smallSizes)
	name := "fallback-" + uniqueNamespace(t)
	if err := a.Snapshot(context.Background(), c.request(name, "v1")); err != nil {
		t.Fatalf("Snapshot with the daemon gone and Fallback: %v", err)
	}
	b := open("b", dragonfly.Dragonfly{Endpoint: gone})
	err := b.Restore(context.Background(), &snapshotter.RestoreRequest{Name: name, Version: "v1", OutputDir: filepath.Join(dir, "out-b")})
	if !errIs(err, snapshotter.ErrTransport) || !strings.Contains(err.Error(), gone) {
		t.Fatalf("Restore with the daemon gone, no Fallback = %v, want ErrTransport naming %s", err, gone)
	}
	d := open("d", dragonfly.Dragonfly{Endpoint: gone}, fallback)
	out := filepath.Join(dir, "out-d")
	if err := d.Restore(context.Background(), &snapshotter.RestoreRequest{Name: name, Version: "v1", OutputDir: out}); err != nil {
		t.Fatalf("Restore with the daemon gone and Fallback: %v", err)
	}
	c.sameTree(t, out)
	for field, bad := range map[string]snapshotter.DragonflyOptions{
		"DragonflyOptions.TTL":      {TTL: -time.Second},
		"DragonflyOptions.Replicas": {Replicas: 1 << 63},
	} {
		_, err := snapshotter.New(snapshotter.Config{RootDir: filepath.Join(dir, "bad"), Content: content, Dragonfly: dragonfly.Dragonfly{Endpoint: gone}},
			snapshotter.WithDragonflyOptions(bad))
		if !errIs(err, snapshotter.ErrInvalid) || !strings.Contains(err.Error(), field) {
			t.Errorf("New with a bad %s = %v, want ErrInvalid naming it", field, err)
		}
	}
}
