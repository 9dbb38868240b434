package snapshotter_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
	"testing"
	"time"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
)

var mediumSizes = sizes{memory: 8 << 20, state: 256 << 10, disk: 16 << 20}

func TestCancelMidSnapshotReturnsContextCanceled(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, mediumSizes)
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var phase snapshotter.Phase = -1
	var once sync.Once
	err := s.Snapshot(ctx, c.request("a", "v1"), snapshotter.WithProgress(func(p snapshotter.Progress) {
		if p.Phase == snapshotter.PhaseStoring {
			once.Do(func() { phase = p.Phase; cancel() })
		}
	}))
	if err != context.Canceled {
		t.Fatalf("Snapshot canceled mid-way = %v, want context.Canceled", err)
	}
	if phase != snapshotter.PhaseStoring {
		t.Fatalf("canceled in phase %v", phase)
	}
	noLeaks(t, s, base)
	if l, _ := s.List(); len(l) != 0 {
		t.Fatalf("the canceled snapshot was recorded: %+v", l)
	}
	// Nothing half-made stands in the way of doing it again.
	if err := s.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatalf("Snapshot after a canceled one: %v", err)
	}
	if rep, err := s.Verify(context.Background()); err != nil || len(rep.Problems) != 0 {
		t.Fatalf("Verify = %+v, %v", rep, err)
	}
}

func TestDeadlineMidRestoreReturnsDeadlineExceeded(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, mediumSizes)
	if err := s.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	var once sync.Once
	out := filepath.Join(t.TempDir(), "out")
	err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: out},
		snapshotter.WithProgress(func(p snapshotter.Progress) {
			// Hold the restore until the deadline has passed.
			once.Do(func() { <-ctx.Done() })
		}))
	if err != context.DeadlineExceeded || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Restore past its deadline = %v, want context.DeadlineExceeded", err)
	}
	noLeaks(t, s, base)
	// The output can be restored afterwards (overwriting what was done).
	if err := s.Restore(context.Background(), &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: out},
		snapshotter.WithOverwrite()); err != nil {
		t.Fatal(err)
	}
	c.sameTree(t, out)
}

func TestCanceledContextStartsNothing(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	called := false
	progress := snapshotter.WithProgress(func(snapshotter.Progress) { called = true })
	if err := s.Snapshot(ctx, c.request("a", "v1"), progress); err != context.Canceled {
		t.Errorf("Snapshot = %v", err)
	}
	if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: t.TempDir()}); err != context.Canceled {
		t.Errorf("Restore = %v", err)
	}
	if _, err := s.Delete(ctx, "a", "v1"); err != context.Canceled {
		t.Errorf("Delete = %v", err)
	}
	if _, err := s.GC(ctx); err != context.Canceled {
		t.Errorf("GC = %v", err)
	}
	if _, err := s.Verify(ctx); err != context.Canceled {
		t.Errorf("Verify = %v", err)
	}
	if called {
		t.Error("an operation ran")
	}
}

func TestCancelVerifyAndGC(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, mediumSizes)
	if err := s.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	for what, run := range map[string]func(ctx context.Context, o snapshotter.Option) error{
		"Verify": func(ctx context.Context, o snapshotter.Option) error { _, err := s.Verify(ctx, o); return err },
		"GC":     func(ctx context.Context, o snapshotter.Option) error { _, err := s.GC(ctx, o); return err },
	} {
		ctx, cancel := context.WithCancel(context.Background())
		var once sync.Once
		err := run(ctx, snapshotter.WithProgress(func(snapshotter.Progress) { once.Do(cancel) }))
		cancel()
		// GC may be done by its first event: either outcome is right, but
		// nothing may be left behind.
		if err != nil && err != context.Canceled {
			t.Errorf("%s canceled = %v", what, err)
		}
		if what == "Verify" && err != context.Canceled {
			t.Errorf("Verify canceled at its first event = %v", err)
		}
	}
	noLeaks(t, s, base)
}

// Many snapshots canceled at random moments from many goroutines: each
// ends in success or context.Canceled, exactly the successes are in the
// store, the store verifies clean, and nothing leaks.
func TestRandomCancellationsFromManyGoroutines(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, mediumSizes)
	base := runtime.NumGoroutine()
	const n = 24
	var (
		wg sync.WaitGroup
		mu sync.Mutex
		ok []string
	)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			time.AfterFunc(time.Duration(rand.Intn(400))*time.Millisecond, cancel)
			name := fmt.Sprintf("many/s%02d", i)
			err := s.Snapshot(ctx, c.request(name, "v1"))
			switch {
			case err == nil:
				mu.Lock()
				ok = append(ok, name)
				mu.Unlock()
			case err != context.Canceled:
				t.Errorf("%s: %v", name, err)
			}
		}(i)
	}
	wg.Wait()
	noLeaks(t, s, base)
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, i := range l {
		listed = append(listed, i.Name)
	}
	sort.Strings(ok)
	if fmt.Sprint(listed) != fmt.Sprint(ok) {
		t.Fatalf("listed %v, succeeded %v", listed, ok)
	}
	t.Logf("%d of %d snapshots finished before their cancel", len(ok), n)
	// A canceled snapshot may leave content without a record (an orphan,
	// which GC removes after its grace period); nothing else may be wrong.
	rep, err := s.Verify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range rep.Problems {
		if p.Kind != "orphan-content" {
			t.Errorf("Verify problem %+v", p)
		}
	}
}
