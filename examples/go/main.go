// Command example checkpoints three sandboxes concurrently, as the
// example of d7y.io/snapshotter does: each has a memory dump and a state
// file (read-only, hard-linked into the store), a disk image (read-write)
// and JSON metadata. Each is snapshotted and restored, in its own
// goroutine, and the timings are printed.
//
//	PKG_CONFIG_PATH=<prefix>/lib/pkgconfig go run . [-keep] [-progress]
//
// Environment (all optional): SNAPSHOTTER_ROOT_DIR (default: a temporary
// directory); REGISTRY_ENDPOINT (http://, https:// or file:///dir; no
// registry when unset), REGISTRY_NAMESPACE, REGISTRY_USERNAME,
// REGISTRY_PASSWORD, REGISTRY_INSECURE=true, REGISTRY_CA_FILE;
// CONTENT_PROVIDER, CONTENT_BUCKET, ... and DRAGONFLY_ENDPOINT (refused by
// libsnapshotter 0.1, which has no content transport yet).
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"sync"
	"time"

	snapshotter "github.com/libsnapshotter/snapshotter-go"
	"github.com/libsnapshotter/snapshotter-go/pkg/dragonfly"
	"github.com/libsnapshotter/snapshotter-go/pkg/oci"
)

const (
	memSize   = 10 << 20  // memory dump
	stateSize = 256 << 10 // device state
	imgSize   = 50 << 20  // disk image (sparse: 1 MiB of data every 8 MiB)
)

// checkpointMetadata is the sandbox's own description of a checkpoint.
type checkpointMetadata struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Version   string    `json:"version"`
	CreatedAt time.Time `json:"createdAt"`
	NumCPU    int       `json:"numCpu"`
	MemoryMB  int       `json:"memoryMb"`
}

type snapshotInfo struct {
	RootfsPath string   `json:"rootfsPath"`
	Layers     []string `json:"layers"`
	Config     string   `json:"config"`
}

func getEnv(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func uuid() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

func randomFile(path string, size int) error {
	data := make([]byte, size)
	if _, err := rand.Read(data); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func sparseFile(path string, size int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(int64(size)); err != nil {
		return err
	}
	chunk := make([]byte, 1<<20)
	for off := 0; off < size; off += 8 << 20 {
		if _, err := rand.Read(chunk); err != nil {
			return err
		}
		if _, err := f.WriteAt(chunk, int64(off)); err != nil {
			return err
		}
	}
	return f.Close()
}

func jsonFile(path string, v interface{}) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// generateCheckpoint writes one sandbox checkpoint under baseDir/name.
func generateCheckpoint(baseDir, name, version string, cpus, memoryMB int) ([]snapshotter.File, error) {
	dir := filepath.Join(baseDir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	mem := fmt.Sprintf("mem_%dC_%dM", cpus, memoryMB)
	state := fmt.Sprintf("state_%dC_%dM", cpus, memoryMB)
	steps := []struct {
		file     string
		readOnly bool
		write    func(path string) error
	}{
		{mem, true, func(p string) error { return randomFile(p, memSize) }},
		{state, true, func(p string) error { return randomFile(p, stateSize) }},
		{"img", false, func(p string) error { return sparseFile(p, imgSize) }},
		{"metadata.json", true, func(p string) error {
			return jsonFile(p, checkpointMetadata{ID: uuid(), Name: name, Version: version,
				CreatedAt: time.Now(), NumCPU: cpus, MemoryMB: memoryMB})
		}},
		{"snapshot.json", true, func(p string) error {
			return jsonFile(p, snapshotInfo{RootfsPath: "/var/lib/containers/storage/overlay",
				Layers: []string{uuid(), uuid(), uuid()}, Config: "config.json"})
		}},
	}
	files := make([]snapshotter.File, 0, len(steps))
	for _, s := range steps {
		if err := s.write(filepath.Join(dir, s.file)); err != nil {
			return nil, fmt.Errorf("writing %s: %w", s.file, err)
		}
		files = append(files, snapshotter.File{RelativePath: filepath.Join(name, s.file), ReadOnly: s.readOnly})
	}
	return files, nil
}

// sameFiles checks that every restored file has the original's bytes.
func sameFiles(baseDir, outDir string, files []snapshotter.File) error {
	for _, f := range files {
		a, err := os.ReadFile(filepath.Join(baseDir, f.RelativePath))
		if err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(outDir, f.RelativePath))
		if err != nil {
			return err
		}
		if !bytes.Equal(a, b) {
			return fmt.Errorf("%s differs after restore", f.RelativePath)
		}
	}
	return nil
}

func options() []snapshotter.Option {
	var opts []snapshotter.Option
	if ep := os.Getenv("REGISTRY_ENDPOINT"); ep != "" {
		opts = append(opts, snapshotter.WithMetadata(snapshotter.Metadata{Registry: oci.Registry{
			Endpoint:  ep,
			Namespace: getEnv("REGISTRY_NAMESPACE", "snapshotter"),
			Username:  os.Getenv("REGISTRY_USERNAME"),
			Password:  os.Getenv("REGISTRY_PASSWORD"),
			Insecure:  os.Getenv("REGISTRY_INSECURE") == "true",
		}}))
		if ca := os.Getenv("REGISTRY_CA_FILE"); ca != "" {
			opts = append(opts, snapshotter.WithRegistryCAFile(ca))
		}
	}
	if p := os.Getenv("CONTENT_PROVIDER"); p != "" {
		opts = append(opts, snapshotter.WithContent(dragonfly.ContentProvider{
			Provider:        p,
			Bucket:          os.Getenv("CONTENT_BUCKET"),
			Region:          os.Getenv("CONTENT_REGION"),
			Endpoint:        os.Getenv("CONTENT_ENDPOINT"),
			AccessKeyID:     os.Getenv("CONTENT_ACCESS_KEY_ID"),
			AccessKeySecret: os.Getenv("CONTENT_ACCESS_KEY_SECRET"),
		}))
	}
	return opts
}

type result struct {
	name, version               string
	generate, snapshot, restore time.Duration
	report                      snapshotter.Report
	err                         error
}

func main() {
	keep := flag.Bool("keep", false, "keep the work directory")
	showProgress := flag.Bool("progress", false, "print progress events")
	flag.Parse()
	log.SetFlags(log.Lmicroseconds)

	work, err := os.MkdirTemp("", "snapshotter-example-*")
	if err != nil {
		log.Fatal(err)
	}
	if *keep {
		log.Printf("work directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	testDir, outputDir := filepath.Join(work, "checkpoints"), filepath.Join(work, "restored")

	config := snapshotter.Config{
		RootDir:   getEnv("SNAPSHOTTER_ROOT_DIR", filepath.Join(work, "store")),
		Dragonfly: dragonfly.Dragonfly{Endpoint: os.Getenv("DRAGONFLY_ENDPOINT")},
	}
	log.Printf("libsnapshotter %s, store %s", snapshotter.Version(), config.RootDir)
	s, err := snapshotter.New(config)
	if err != nil {
		log.Fatalf("failed to create snapshotter: %v", err)
	}
	defer s.(*snapshotter.Store).Close()

	opts := options()
	testCases := []struct {
		name, version    string
		cpuCount, memory int
	}{
		{"ckpt1", "v1", 2, 1168},
		{"ckpt2", "v2", 2, 1168},
		{"ckpt3", "v3", 4, 2048},
	}

	var wg sync.WaitGroup
	results := make([]result, len(testCases))
	started := time.Now()
	for i, tc := range testCases {
		wg.Add(1)
		go func(i int, name, version string, cpus, memory int) {
			defer wg.Done()
			r := &results[i]
			r.name, r.version = name, version
			t0 := time.Now()
			files, err := generateCheckpoint(testDir, name, version, cpus, memory)
			if err != nil {
				r.err = fmt.Errorf("generate: %w", err)
				return
			}
			r.generate = time.Since(t0)
			callOpts := append([]snapshotter.Option{}, opts...)
			if *showProgress {
				callOpts = append(callOpts, snapshotter.WithProgress(func(p snapshotter.Progress) {
					log.Printf("%s:%s %-10s %d/%d files %.1f/%.1f MiB", name, version, p.Phase, p.FilesDone, p.FilesTotal,
						float64(p.BytesDone)/(1<<20), float64(p.BytesTotal)/(1<<20))
				}))
			}

			t0 = time.Now()
			var snap snapshotter.Report
			err = s.Snapshot(context.Background(), &snapshotter.SnapshotRequest{
				Name: name, Version: version, BaseDir: testDir, Files: files,
			}, append(callOpts, snapshotter.WithReport(&snap))...)
			if err != nil && !errors.Is(err, snapshotter.ErrSnapshotAlreadyExists) {
				r.err = fmt.Errorf("snapshot: %w", err)
				return
			}
			r.snapshot = time.Since(t0)

			out := filepath.Join(outputDir, name, version)
			t0 = time.Now()
			err = s.Restore(context.Background(), &snapshotter.RestoreRequest{
				Name: name, Version: version, OutputDir: out,
			}, append(callOpts, snapshotter.WithReport(&r.report))...)
			if err != nil {
				r.err = fmt.Errorf("restore: %w", err)
				return
			}
			r.restore = time.Since(t0)
			r.err = sameFiles(testDir, out, files)
			log.Printf("completed %s:%s (snapshot stored %d new files, %.1f MiB read) in %v",
				name, version, snap.FilesStored, float64(snap.BytesRead)/(1<<20), time.Since(started).Round(time.Millisecond))
		}(i, tc.name, tc.version, tc.cpuCount, tc.memory)
	}
	wg.Wait()
	total := time.Since(started)

	fmt.Printf("\n%-12s %12s %12s %12s %8s %8s\n", "checkpoint", "generate", "snapshot", "restore", "linked", "decoded")
	failed := false
	for _, r := range results {
		if r.err != nil {
			fmt.Printf("%-12s FAILED: %v\n", r.name+":"+r.version, r.err)
			failed = true
			continue
		}
		fmt.Printf("%-12s %12v %12v %12v %8d %8d\n", r.name+":"+r.version, r.generate.Round(time.Millisecond), r.snapshot.Round(time.Microsecond),
			r.restore.Round(time.Microsecond), r.report.FilesLinked, r.report.FilesDecoded)
	}
	fmt.Printf("all operations completed in %v (checkpoint generation included)\n", total.Round(time.Millisecond))
	if st, err := s.(*snapshotter.Store).Stats(); err == nil {
		fmt.Printf("store: %d snapshots, %d content files, %.1f MiB on disk\n", st.Snapshots, st.ContentFiles,
			float64(st.StoreBytes)/(1<<20))
	}
	if failed {
		os.Exit(1)
	}
}
