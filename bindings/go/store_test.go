package snapshotter_test

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

func TestVersionMatchesHeader(t *testing.T) {
	if snapshotter.Version() != snapshotter.HeaderVersion {
		t.Fatalf("library %s, header %s", snapshotter.Version(), snapshotter.HeaderVersion)
	}
}

func TestListFilesAndStatsDescribeTheStore(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	if l, err := s.List(); err != nil || len(l) != 0 {
		t.Fatalf("List of an empty store = %v, %v", l, err)
	}
	if st, err := s.Stats(); err != nil || st.Snapshots != 0 || !st.OldestAccess.IsZero() {
		t.Fatalf("Stats of an empty store = %+v, %v", st, err)
	}
	c := makeCheckpoint(t, 1, smallSizes)
	start := time.Now().Add(-time.Second)
	for _, v := range []string{"v2", "v1"} {
		if err := s.Snapshot(ctx, c.request("b", v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	l, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, i := range l {
		got = append(got, i.Name+":"+i.Version)
		if i.FileCount != 4 || i.TotalSize != int64(smallSizes.memory+smallSizes.state+smallSizes.disk)+fileSize(t, c.base, "config.json") {
			t.Errorf("%s:%s: %d files, %d bytes", i.Name, i.Version, i.FileCount, i.TotalSize)
		}
		if i.CreatedAt.Before(start) || i.LastAccessedAt.Before(i.CreatedAt) {
			t.Errorf("%s:%s: created %v, accessed %v", i.Name, i.Version, i.CreatedAt, i.LastAccessedAt)
		}
	}
	if strings.Join(got, " ") != "a:v1 b:v1 b:v2" {
		t.Errorf("List = %v, want sorted by name then version", got)
	}

	fl, err := s.Files("b", "v1")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range fl.Files {
		paths = append(paths, f.RelativePath)
		if !strings.HasPrefix(f.Digest, "xxh3:") || f.Mode != 0o644 || f.ModTime.Before(start) {
			t.Errorf("file %+v", f)
		}
		if want := f.RelativePath == "ckpt/memory.dump" || f.RelativePath == "ckpt/state"; f.ReadOnly != want {
			t.Errorf("%s: ReadOnly = %v", f.RelativePath, f.ReadOnly)
		}
		if f.Size != fileSize(t, c.base, f.RelativePath) {
			t.Errorf("%s: size %d", f.RelativePath, f.Size)
		}
	}
	if strings.Join(paths, " ") != "ckpt/memory.dump ckpt/state config.json rootfs/disk.img" {
		t.Errorf("Files = %v, want sorted by path", paths)
	}
	var config struct {
		Files []struct {
			Digest       string `json:"digest"`
			RelativePath string `json:"relativePath"`
		} `json:"files"`
	}
	if err := json.Unmarshal(fl.ConfigJSON, &config); err != nil || len(config.Files) != 4 {
		t.Errorf("config JSON %s: %v", fl.ConfigJSON, err)
	}

	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	// Three snapshots of the same files share four content files.
	if st.Snapshots != 3 || st.ContentFiles != 4 || st.StoreBytes <= 0 || st.DiskTotalBytes <= 0 ||
		st.DiskUsedBytes <= 0 || st.OldestAccess.Before(start) {
		t.Errorf("Stats = %+v", st)
	}
}

func fileSize(t *testing.T, dir, rel string) int64 {
	fi, err := os.Stat(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestDeleteFreesContentNothingElseUses(t *testing.T) {
	s := openStore(t)
	ctx := context.Background()
	c1, c2 := makeCheckpoint(t, 1, smallSizes), makeCheckpoint(t, 2, smallSizes)
	if err := s.Snapshot(ctx, c1.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, c1.request("a", "v2")); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, c2.request("b", "v1")); err != nil {
		t.Fatal(err)
	}
	r, err := s.Delete(ctx, "a", "v1")
	if err != nil || r.ContentFilesRemoved != 0 {
		t.Fatalf("Delete of a shared snapshot = %+v, %v; want nothing freed", r, err)
	}
	r, err = s.Delete(ctx, "a", "v2")
	if err != nil || r.ContentFilesRemoved != 4 || r.BytesFreed <= 0 {
		t.Fatalf("Delete of the last user = %+v, %v; want 4 content files freed", r, err)
	}
	if l, _ := s.List(); len(l) != 1 || l[0].Name != "b" {
		t.Fatalf("List after Delete = %+v", l)
	}
	if _, err := s.Delete(ctx, "a", "v2"); !errIs(err, snapshotter.ErrNotFound) {
		t.Fatalf("second Delete = %v, want ErrNotFound", err)
	}
}

func TestVerifyFindsMissingContent(t *testing.T) {
	root := filepath.Join(t.TempDir(), "store")
	s, err := snapshotter.Open(snapshotter.Config{RootDir: root})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c := makeCheckpoint(t, 1, smallSizes)
	if err := s.Snapshot(ctx, c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	var events int
	rep, err := s.Verify(ctx, snapshotter.WithProgress(func(p snapshotter.Progress) { events++ }))
	if err != nil || len(rep.Problems) != 0 || rep.SnapshotsChecked != 1 || rep.ContentFilesChecked != 4 || rep.BytesChecked <= 0 {
		t.Fatalf("Verify of a sound store = %+v, %v", rep, err)
	}
	if events == 0 {
		t.Error("Verify reported no progress")
	}
	fl, _ := s.Files("a", "v1")
	digest := fl.Files[2].Digest // config.json
	if err := os.Remove(filepath.Join(root, "storage/content/xxh3", strings.TrimPrefix(digest, "xxh3:"))); err != nil {
		t.Fatal(err)
	}
	rep, err = s.Verify(ctx)
	if err != nil || len(rep.Problems) == 0 {
		t.Fatalf("Verify after removing content = %+v, %v", rep, err)
	}
	p := rep.Problems[0]
	if p.Kind != "missing-content" || p.Digest != digest || p.Message == "" {
		t.Errorf("problem %+v, want missing-content of %s", p, digest)
	}
}

// gcStore opens a store with a byte budget and a retention, and no
// background collector: the test runs GC itself.
func gcStore(t *testing.T, budget int64, retention time.Duration) *snapshotter.Store {
	t.Helper()
	s, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()},
		snapshotter.WithoutBackgroundGC(), snapshotter.WithMaxStoreBytes(budget), snapshotter.WithGCMinRetention(retention))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestGCEvictsOverTheByteBudget(t *testing.T) {
	s := gcStore(t, 1, 0)
	ctx := context.Background()
	c1, c2 := makeCheckpoint(t, 1, smallSizes), makeCheckpoint(t, 2, smallSizes)
	if err := s.Snapshot(ctx, c1.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	if err := s.Snapshot(ctx, c2.request("b", "v1")); err != nil {
		t.Fatal(err)
	}
	var phases []snapshotter.Phase
	r, err := s.GC(ctx, snapshotter.WithProgress(func(p snapshotter.Progress) { phases = append(phases, p.Phase) }))
	if err != nil {
		t.Fatal(err)
	}
	if r.SnapshotsEvicted != 2 || r.ContentFilesRemoved != 8 || r.BytesFreed <= 0 || r.Elapsed <= 0 {
		t.Errorf("GC report = %+v, want both snapshots evicted", r)
	}
	if l, _ := s.List(); len(l) != 0 {
		t.Errorf("List after GC = %+v", l)
	}
	if len(phases) == 0 || phases[len(phases)-1] != snapshotter.PhaseDone {
		t.Errorf("GC progress phases %v", phases)
	}
}

func TestGCKeepsSnapshotsWithinMinRetention(t *testing.T) {
	s := gcStore(t, 1, time.Hour)
	c := makeCheckpoint(t, 1, smallSizes)
	if err := s.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	r, err := s.GC(context.Background())
	if err != nil || r.SnapshotsEvicted != 0 {
		t.Fatalf("GC = %+v, %v; want nothing evicted", r, err)
	}
}

// GC reads as in d7y.io/snapshotter: nil, zero and out-of-range values
// keep the library's defaults (none of them is set), a low threshold
// above the high one too; set values reach the library rounded.
func TestGCZeroAndOutOfRangeValuesKeepTheDefaults(t *testing.T) {
	zero, neg, zf, high, nan := time.Duration(0), -time.Second, 0.0, 150.0, math.NaN()
	for name, g := range map[string]snapshotter.GC{
		"nil":          {},
		"zeros":        {Interval: &zero, DiskHighThresholdPercent: &zf, DiskLowThresholdPercent: &zf, BatchSize: intp(0), MinRetentionPeriod: &zero},
		"out of range": {Interval: &neg, DiskHighThresholdPercent: &high, DiskLowThresholdPercent: &nan, BatchSize: intp(-1), MinRetentionPeriod: &neg},
	} {
		if set := snapshotter.GCSettings(g); len(set) != 0 {
			t.Errorf("GC %s sets %v, want the defaults (nothing set)", name, set)
		}
		s, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir(), GC: g})
		if err != nil {
			t.Fatalf("Open with GC %s: %v", name, err)
		}
		s.Close()
	}
	d, lo, hi, lowAboveHigh, n := 90*time.Second+time.Millisecond, 60.5, 80.0, 85.0, 3
	got := snapshotter.GCSettings(snapshotter.GC{Interval: &d, DiskHighThresholdPercent: &hi, DiskLowThresholdPercent: &lo,
		BatchSize: &n, MinRetentionPeriod: &d})
	want := map[string]int64{"interval": 91, "high": 80, "low": 61, "batch": 3, "retention": 91}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("GC settings %v, want %v", got, want)
	}
	if got := snapshotter.GCSettings(snapshotter.GC{DiskHighThresholdPercent: &hi, DiskLowThresholdPercent: &lowAboveHigh}); !reflect.DeepEqual(got, map[string]int64{"high": 80}) {
		t.Errorf("low above high: %v, want only high set", got)
	}
	if _, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir(), GC: snapshotter.GC{Interval: &d,
		DiskHighThresholdPercent: &hi, DiskLowThresholdPercent: &lo, BatchSize: &n, MinRetentionPeriod: &d},
		SnapshotConcurrency: intp(2), RestoreConcurrency: intp(8)}); err != nil {
		t.Fatalf("Open with valid settings: %v", err)
	}
	_, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()}, snapshotter.WithGCMinRetention(-time.Second))
	if !errIs(err, snapshotter.ErrInvalid) || !strings.Contains(err.Error(), "WithGCMinRetention") {
		t.Errorf("Open WithGCMinRetention(-1s) = %v, want ErrInvalid naming it", err)
	}
}

func TestDurableRestoreIsAcceptedAndRestores(t *testing.T) {
	s := openStore(t, snapshotter.WithDurableRestore())
	c := makeCheckpoint(t, 7, smallSizes)
	ctx := context.Background()
	if err := s.Snapshot(ctx, c.request("durable", "v1")); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: "durable", Version: "v1", OutputDir: out}); err != nil {
		t.Fatalf("durable Restore: %v", err)
	}
	c.sameTree(t, out)
}

func TestProgressReportsPhasesAndTotals(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	var (
		events []snapshotter.Progress
		mu     sync.Mutex
	)
	record := snapshotter.WithProgress(func(p snapshotter.Progress) {
		mu.Lock()
		events = append(events, p)
		mu.Unlock()
	})
	ctx := context.Background()
	if err := s.Snapshot(ctx, c.request("a", "v1"), record); err != nil {
		t.Fatal(err)
	}
	checkEvents := func(what string, files int64) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		if len(events) < 2 {
			t.Fatalf("%s: %d progress events", what, len(events))
		}
		last := events[len(events)-1]
		if last.Phase != snapshotter.PhaseDone || last.FilesDone != files || last.FilesTotal != files || last.BytesDone != last.BytesTotal {
			t.Errorf("%s: last event %+v", what, last)
		}
		for i := 1; i < len(events); i++ {
			a, b := events[i-1], events[i]
			if b.FilesDone < a.FilesDone || b.BytesDone < a.BytesDone {
				t.Errorf("%s: counters went backwards: %+v then %+v", what, a, b)
			}
		}
		events = nil
	}
	checkEvents("snapshot", 4)
	if err := s.Restore(ctx, &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: t.TempDir()}, record); err != nil {
		t.Fatal(err)
	}
	checkEvents("restore", 4)
	// WithProgress is per call: nothing more is recorded.
	if err := s.Snapshot(ctx, c.request("a", "v2")); err != nil {
		t.Fatal(err)
	}
	if len(events) != 0 {
		t.Errorf("%d events from a call without WithProgress", len(events))
	}
}

func TestProgressGivenToNewIsTheDefault(t *testing.T) {
	var n int
	var mu sync.Mutex
	s := openStore(t, snapshotter.WithProgress(func(snapshotter.Progress) { mu.Lock(); n++; mu.Unlock() }))
	c := makeCheckpoint(t, 1, smallSizes)
	if err := s.Snapshot(context.Background(), c.request("a", "v1")); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no progress events")
	}
}

func TestPanicInProgressCancelsAndIsRaisedInTheCaller(t *testing.T) {
	s := openStore(t)
	base := runtime.NumGoroutine()
	c := makeCheckpoint(t, 1, smallSizes)
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Fatalf("recovered %v, want boom", v)
			}
		}()
		_ = s.Snapshot(context.Background(), c.request("a", "v1"),
			snapshotter.WithProgress(func(snapshotter.Progress) { panic("boom") }))
		t.Fatal("Snapshot returned")
	}()
	if l, _ := s.List(); len(l) != 0 {
		t.Errorf("the canceled snapshot was recorded: %+v", l)
	}
	noLeaks(t, s, base)
}

func TestBlockingCallsFromProgressAreErrBusy(t *testing.T) {
	s := openStore(t)
	c := makeCheckpoint(t, 1, smallSizes)
	var once sync.Once
	var listErr, statsErr, closeErr error
	err := s.Snapshot(context.Background(), c.request("a", "v1"), snapshotter.WithProgress(func(snapshotter.Progress) {
		once.Do(func() {
			_, listErr = s.List()
			_, statsErr = s.Stats()
			closeErr = s.Close()
		})
	}))
	if err != nil {
		t.Fatalf("Snapshot: %v", err)
	}
	for what, e := range map[string]error{"List": listErr, "Stats": statsErr, "Close": closeErr} {
		if !errIs(e, snapshotter.ErrBusy) {
			t.Errorf("%s from a progress function = %v, want ErrBusy", what, e)
		}
	}
	// The refused Close closed nothing.
	if l, err := s.List(); err != nil || len(l) != 1 {
		t.Fatalf("List after = %v, %v", l, err)
	}
}

func TestCloseCancelsRunningOperationsAndThenEverythingIsErrClosed(t *testing.T) {
	s, err := snapshotter.Open(snapshotter.Config{RootDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	base := runtime.NumGoroutine()
	c := makeCheckpoint(t, 1, smallSizes)
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	result := make(chan error)
	go func() {
		result <- s.Snapshot(context.Background(), c.request("a", "v1"), snapshotter.WithProgress(func(snapshotter.Progress) {
			once.Do(func() { close(started); <-release })
		}))
	}()
	<-started
	closed := make(chan error)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		t.Fatalf("Close returned (%v) while an operation was still in its callback", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-closed; err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-result; !errIs(err, snapshotter.ErrClosed) {
		t.Fatalf("the running Snapshot returned %v, want ErrClosed", err)
	}
	ctx := context.Background()
	_, delErr := s.Delete(ctx, "a", "v1")
	_, gcErr := s.GC(ctx)
	_, verErr := s.Verify(ctx)
	_, listErr := s.List()
	_, filesErr := s.Files("a", "v1")
	_, statsErr := s.Stats()
	_, activeErr := s.ActiveOperations()
	for what, e := range map[string]error{
		"Snapshot": s.Snapshot(ctx, c.request("a", "v2")),
		"Restore":  s.Restore(ctx, &snapshotter.RestoreRequest{Name: "a", Version: "v1", OutputDir: t.TempDir()}),
		"Delete":   delErr, "GC": gcErr, "Verify": verErr, "List": listErr, "Files": filesErr, "Stats": statsErr,
		"ActiveOperations": activeErr,
	} {
		if !errIs(e, snapshotter.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", what, e)
		}
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
	noLeaks(t, nil, base)
}

func TestFinalizerClosesAnUnreachableStore(t *testing.T) {
	before := snapshotter.Finalized()
	root := t.TempDir()
	func() {
		s, err := snapshotter.Open(snapshotter.Config{RootDir: root})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Stats(); err != nil {
			t.Fatal(err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for snapshotter.Finalized() == before {
		if time.Now().After(deadline) {
			t.Fatal("the finalizer did not close the store")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLogFuncReceivesLibraryMessages(t *testing.T) {
	var (
		mu   sync.Mutex
		msgs []string
	)
	if err := snapshotter.SetLogFunc(snapshotter.LogInfo, func(level snapshotter.LogLevel, m string) {
		mu.Lock()
		msgs = append(msgs, level.String()+": "+m)
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	defer snapshotter.SetLogFunc(snapshotter.LogError, nil)
	reg := t.TempDir()
	s := openStore(t, snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{Endpoint: "file://" + reg}}))
	c := makeCheckpoint(t, 1, smallSizes)
	if err := s.Snapshot(context.Background(), c.request("logged", "v1")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	found := false
	for _, m := range msgs {
		found = found || strings.Contains(m, "logged:v1")
	}
	mu.Unlock()
	if !found {
		t.Fatalf("log messages %q do not mention the published snapshot", msgs)
	}
	if err := snapshotter.SetLogFunc(snapshotter.LogError, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	msgs = nil
	mu.Unlock()
	if err := s.Snapshot(context.Background(), c.request("logged", "v2")); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(msgs) != 0 {
		t.Errorf("messages after removing the log func: %q", msgs)
	}
	if err := snapshotter.SetLogFunc(snapshotter.LogLevel(9), func(snapshotter.LogLevel, string) {}); !errors.Is(err, snapshotter.ErrInvalid) {
		t.Errorf("SetLogFunc with level 9 = %v, want ErrInvalid", err)
	}
}
