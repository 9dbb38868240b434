package snapshotter_test

import (
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

// Every call, from many goroutines at once, on one store.
func TestEveryCallFromManyGoroutines(t *testing.T) {
	s := openStore(t)
	base := runtime.NumGoroutine()
	c := makeCheckpoint(t, 1, smallSizes)
	ctx := context.Background()
	const workers, rounds = 16, 3
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				name, version := fmt.Sprintf("w/%02d", w), fmt.Sprintf("r%d", r)
				var progressEvents int
				if err := s.Snapshot(ctx, c.request(name, version),
					snapshotter.WithProgress(func(snapshotter.Progress) { progressEvents++ })); err != nil {
					t.Errorf("Snapshot %s:%s: %v", name, version, err)
					return
				}
				if progressEvents == 0 {
					t.Errorf("%s:%s: no progress", name, version)
				}
				out := filepath.Join(t.TempDir(), "out")
				if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: name, Version: version, OutputDir: out}); err != nil {
					t.Errorf("Restore %s:%s: %v", name, version, err)
					return
				}
				c.sameTree(t, out)
				if _, err := s.Files(name, version); err != nil {
					t.Error(err)
				}
				if _, err := s.List(); err != nil {
					t.Error(err)
				}
				if _, err := s.Stats(); err != nil {
					t.Error(err)
				}
				if r == rounds-1 && w%2 == 0 {
					if _, err := s.Delete(ctx, name, version); err != nil {
						t.Error(err)
					}
				}
				if w == 0 {
					if _, err := s.GC(ctx); err != nil {
						t.Error(err)
					}
					if _, err := s.Verify(ctx); err != nil {
						t.Error(err)
					}
				}
			}
		}(w)
	}
	wg.Wait()
	noLeaks(t, s, base)
	l, err := s.List()
	if err != nil || len(l) != workers*rounds-workers/2 {
		t.Fatalf("List: %d snapshots, %v; want %d", len(l), err, workers*rounds-workers/2)
	}
	if rep, err := s.Verify(ctx); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

// Per-call registries from many goroutines: each call's snapshot goes to
// the registry its own options named, never to another call's.
func TestConcurrentPerCallRegistriesDoNotMix(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	const n = 12
	dirs := make([]string, n)
	for i := range dirs {
		dirs[i] = t.TempDir()
	}
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			err := s.Snapshot(context.Background(), c.request("app", fmt.Sprintf("v%d", i)),
				snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + dirs[i]}}))
			if err != nil {
				t.Errorf("Snapshot v%d: %v", i, err)
			}
		}(i)
	}
	wg.Wait()
	for i, d := range dirs {
		refs := layoutRefs(t, d)
		if len(refs) != 1 || !refs[fmt.Sprintf("app:v%d", i)] {
			t.Errorf("registry %d holds %v, want only app:v%d", i, refs, i)
		}
	}
}

// Many stores opened and closed concurrently, some never closed (the
// finalizer's job), with operations running when Close comes.
func TestOpenAndCloseFromManyGoroutines(t *testing.T) {
	c := makeCheckpoint(t, 1, smallSizes)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			s, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()})
			if err != nil {
				t.Error(err)
				return
			}
			var inner sync.WaitGroup
			for j := 0; j < 3; j++ {
				inner.Add(1)
				go func(j int) {
					defer inner.Done()
					err := s.Snapshot(context.Background(), c.request("a", fmt.Sprintf("v%d", j)))
					if err != nil && !errIs(err, snapshotter.ErrClosed) {
						t.Errorf("Snapshot racing Close: %v", err)
					}
				}(j)
			}
			if err := s.Close(); err != nil {
				t.Error(err)
			}
			inner.Wait()
		}(i)
	}
	wg.Wait()
	if n := snapshotter.LiveHandles(); n != 0 {
		t.Errorf("%d handles live", n)
	}
}

// Calls with different registries run side by side, each publishing to
// its own (per-call settings in the library: no call waits for another's).
func TestCallsWithDifferentRegistriesRunSideBySide(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	r1, r2 := t.TempDir(), t.TempDir()
	with := func(dir string) snapshotter.Option {
		return snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + dir}})
	}
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	first := make(chan error)
	go func() {
		first <- s.Snapshot(context.Background(), c.request("app", "a"), with(r1),
			snapshotter.WithProgress(func(snapshotter.Progress) { once.Do(func() { close(started); <-release }) }))
	}()
	<-started
	// The first call is held in its progress callback: these finish now.
	if err := s.Snapshot(context.Background(), c.request("app", "b"), with(r2)); err != nil {
		t.Fatalf("Snapshot with another registry while one runs: %v", err)
	}
	if err := s.Snapshot(context.Background(), c.request("app", "c")); err != nil {
		t.Fatalf("Snapshot with the store's settings while one runs: %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if refs := layoutRefs(t, r1); len(refs) != 1 || !refs["app:a"] {
		t.Errorf("first registry holds %v, want app:a", refs)
	}
	if refs := layoutRefs(t, r2); len(refs) != 1 || !refs["app:b"] {
		t.Errorf("second registry holds %v, want app:b", refs)
	}
}
