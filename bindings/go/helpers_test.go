package snapshotter_test

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
)

// openStore opens a fresh store under a temporary directory, closed at
// the end of the test.
func openStore(t testing.TB, opts ...snapshotter.Option) *snapshotter.Store {
	t.Helper()
	s, err := snapshotter.Open(snapshotter.Config{RootDir: filepath.Join(t.TempDir(), "store")}, opts...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// checkpoint is a small sandbox checkpoint on disk.
type checkpoint struct {
	base  string
	files []snapshotter.File
}

// sizes of the checkpoint's files.
type sizes struct{ memory, state, disk int }

var smallSizes = sizes{memory: 1 << 20, state: 64 << 10, disk: 4 << 20}

// makeCheckpoint writes a memory dump and state file (read-only), a
// sparse disk image and a JSON config (read-write) under a new directory.
func makeCheckpoint(t testing.TB, seed int64, sz sizes) checkpoint {
	t.Helper()
	base := t.TempDir()
	rng := rand.New(rand.NewSource(seed))
	write := func(rel string, data []byte) {
		p := filepath.Join(base, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	random := func(n int) []byte {
		b := make([]byte, n)
		rng.Read(b)
		return b
	}
	write("ckpt/memory.dump", random(sz.memory))
	write("ckpt/state", random(sz.state))
	write("config.json", []byte(`{"id":"`+time.Now().String()+`","cpus":2}`))
	// A disk image: mostly holes, data every 1 MiB.
	disk := filepath.Join(base, "rootfs/disk.img")
	if err := os.MkdirAll(filepath.Dir(disk), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(disk)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(sz.disk)); err != nil {
		t.Fatal(err)
	}
	for off := 0; off < sz.disk; off += 1 << 20 {
		if _, err := f.WriteAt(random(4096), int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return checkpoint{base: base, files: []snapshotter.File{
		{RelativePath: "ckpt/memory.dump", ReadOnly: true},
		{RelativePath: "ckpt/state", ReadOnly: true},
		{RelativePath: "rootfs/disk.img"},
		{RelativePath: "config.json"},
	}}
}

func (c checkpoint) request(name, version string) *snapshotter.SnapshotRequest {
	return &snapshotter.SnapshotRequest{Name: name, Version: version, BaseDir: c.base, Files: c.files}
}

// sameTree fails unless every file of c has the same bytes under out.
func (c checkpoint) sameTree(t testing.TB, out string) {
	t.Helper()
	for _, f := range c.files {
		want, err := os.ReadFile(filepath.Join(c.base, f.RelativePath))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(out, f.RelativePath))
		if err != nil {
			t.Fatalf("restored %s: %v", f.RelativePath, err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("restored %s differs from the original", f.RelativePath)
		}
	}
}

// noLeaks waits briefly for the goroutine count to come back to base and
// checks that no operation or handle is left.
func noLeaks(t testing.TB, s *snapshotter.Store, baseGoroutines int) {
	t.Helper()
	if n := snapshotter.LiveHandles(); n != 0 {
		t.Errorf("%d cgo handles of operations still live", n)
	}
	if s != nil {
		if n, err := s.ActiveOperations(); err != nil || n != 0 {
			t.Errorf("ActiveOperations = %d, %v; want 0", n, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= baseGoroutines {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines, %d before:\n%s", n, baseGoroutines, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
