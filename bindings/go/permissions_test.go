package snapshotter_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
)

// The store is the owner's alone by default; WithStoreGroup opens it to a
// group; a gid out of range is refused.
func TestStoreGroup(t *testing.T) {
	mode := func(root string) (os.FileMode, uint32) {
		st, err := os.Stat(filepath.Join(root, "storage"))
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm(), st.Sys().(*syscall.Stat_t).Gid
	}
	root := t.TempDir()
	s, err := snapshotter.Open(snapshotter.Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m, _ := mode(root); m != 0o700 {
		t.Fatalf("storage/ is %o, want 700", m)
	}

	root = t.TempDir()
	gid := os.Getgid()
	s, err = snapshotter.Open(snapshotter.Config{RootDir: root}, snapshotter.WithStoreGroup(gid))
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if m, g := mode(root); m != 0o750 || g != uint32(gid) {
		t.Fatalf("storage/ is %o group %d, want 750 group %d", m, g, gid)
	}

	_, err = snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()}, snapshotter.WithStoreGroup(-2))
	if !errIs(err, snapshotter.ErrInvalid) {
		t.Fatalf("gid -2: %v, want ErrInvalid", err)
	}
}
