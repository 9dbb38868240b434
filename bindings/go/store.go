package snapshotter

/*
#include <stdlib.h>
#include <snapshotter.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Store is an open libsnapshotter store: what New returns, with the
// operations d7y.io/snapshotter does not have. It is safe for use by many
// goroutines at once. Close it when done; a Store that becomes
// unreachable is closed by a finalizer, but only Close reports errors and
// frees the store at a known time.
type Store struct {
	// mu guards ptr: read-locked around every C call on the store,
	// write-locked only to take it away in Close (which then runs
	// unlocked, so the operations it cancels can finish).
	mu  sync.RWMutex
	ptr *C.snapshotter_t

	// The settings from New, fixed after Open: each call applies its
	// options to a copy.
	cfg Config
	ext extras
}

// Open is New with the concrete type.
func Open(config Config, opts ...Option) (*Store, error) {
	x := &extras{}
	apply(&config, x, opts)
	if config.RootDir == "" {
		return nil, &Error{Code: CodeInvalid, Op: "open", Message: "root directory is required"}
	}
	if err := checkVersion(); err != nil {
		return nil, err
	}
	o, err := newCOptions()
	if err != nil {
		return nil, err
	}
	defer o.free()
	o.setStore(&config, x)
	if o.err != nil {
		return nil, o.err
	}
	root := C.CString(config.RootDir)
	defer C.free(unsafe.Pointer(root))
	var p *C.snapshotter_t
	rc, msg := callC(func() C.int { return C.snapshotter_open(root, o.p, &p) })
	if rc != 0 {
		return nil, newError("open", rc, msg)
	}
	x.report = nil // per call only
	s := &Store{ptr: p, cfg: config, ext: *x}
	runtime.SetFinalizer(s, finalizeStore)
	return s, nil
}

// finalized counts stores closed by the finalizer (for the tests).
var finalized atomic.Int64

// finalizeStore is the safety net for a Store dropped without Close. No
// method can be running (each keeps the Store reachable until it returns).
func finalizeStore(s *Store) {
	if s.Close() == nil {
		finalized.Add(1)
	}
}

// Close closes the store. Operations still running are canceled and
// return ErrClosed; Close waits until each has finished. Calls after Close
// fail with ErrClosed; closing again does nothing. Close must not be
// called from a progress function (it fails with ErrBusy there).
func (s *Store) Close() error {
	s.mu.Lock()
	p := s.ptr
	s.ptr = nil
	s.mu.Unlock()
	if p == nil {
		return nil
	}
	rc, msg := callC(func() C.int { return C.snapshotter_close(p) })
	if rc != 0 {
		if rc == C.SNAPSHOTTER_EBUSY { // nothing was closed
			s.mu.Lock()
			s.ptr = p
			s.mu.Unlock()
		}
		return newError("close", rc, msg)
	}
	runtime.SetFinalizer(s, nil)
	return nil
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.ptr == nil
}

func closedError(op string) error {
	return &Error{Code: CodeClosed, Op: op, Message: op + ": the store is closed"}
}

// withStore runs a synchronous C call on the open store.
func (s *Store) withStore(op string, fn func(p *C.snapshotter_t) C.int) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ptr == nil {
		return closedError(op)
	}
	rc, msg := callC(func() C.int { return fn(s.ptr) })
	if rc != 0 {
		return newError(op, rc, msg)
	}
	return nil
}

// callSettings applies a call's options on top of the store's settings:
// its extras, and the C options of its registry and content settings when
// they differ from the store's (nil: the store's own). Free the options
// once the operation has started.
func (s *Store) callSettings(what string, opts []Option) (*extras, *cOptions, error) {
	cfg, x := s.cfg, s.ext // fixed at open: read without a lock
	apply(&cfg, &x, opts)
	if sameRemote(&cfg, &s.cfg, &x, &s.ext) {
		return &x, nil, nil
	}
	o, err := newCOptions()
	if err != nil {
		return nil, nil, err
	}
	o.setRemote(&cfg, &x.remote)
	if o.err != nil {
		err := o.err
		err.(*Error).Op = what
		o.free()
		return nil, nil, err
	}
	return &x, o, nil
}

func sameRemote(a, b *Config, xa, xb *extras) bool {
	return a.Metadata == b.Metadata && a.Content == b.Content && a.Dragonfly == b.Dragonfly && xa.remote == xb.remote
}

// startRemoteOp starts a Snapshot or Restore with the call's settings.
func (s *Store) startRemoteOp(ctx context.Context, what string, opts []Option,
	start func(x *extras, o *C.snapshotter_options_t) startFunc) (*pendingOp, *extras, error) {
	x, o, err := s.callSettings(what, opts)
	if err != nil {
		return nil, nil, err
	}
	var co *C.snapshotter_options_t
	if o != nil {
		defer o.free()
		co = o.p
	}
	p, err := s.begin(ctx, what, x.progress, start(x, co))
	return p, x, err
}

// startOp starts an operation that does not involve the registry: only
// the per-call options of this binding (progress, report) apply.
func (s *Store) startOp(ctx context.Context, what string, opts []Option, start func(x *extras) startFunc) (*pendingOp, *extras, error) {
	cfg, x := s.cfg, s.ext
	apply(&cfg, &x, opts)
	p, err := s.begin(ctx, what, x.progress, start(&x))
	return p, &x, err
}

func cbool(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// cstrings converts strings for one call; free releases them.
type cstrings []*C.char

func (c *cstrings) add(s string) *C.char {
	p := C.CString(s)
	*c = append(*c, p)
	return p
}

func (c cstrings) free() {
	for _, p := range c {
		C.free(unsafe.Pointer(p))
	}
}

// Snapshot snapshots req.Files under req.BaseDir as req.Name:req.Version,
// publishing it to the registry when one is configured. A name:version
// the store already has fails with ErrSnapshotAlreadyExists itself (==
// holds, as with d7y.io/snapshotter).
func (s *Store) Snapshot(ctx context.Context, req *SnapshotRequest, opts ...Option) error {
	if req == nil {
		return &Error{Code: CodeInvalid, Op: "snapshot", Message: "snapshot: request is nil"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	files := C.snapshotter_files_new()
	if files == nil {
		return &Error{Code: CodeOutOfMemory, Op: "snapshot", Message: "snapshot: out of memory"}
	}
	defer C.snapshotter_files_free(files)
	var cs cstrings
	defer cs.free()
	for _, f := range req.Files {
		path, ro := cs.add(f.RelativePath), cbool(f.ReadOnly)
		rc, msg := callC(func() C.int { return C.snapshotter_files_add(files, path, ro) })
		if rc != 0 {
			return newError("snapshot", rc, msg)
		}
	}
	name, version, base := cs.add(req.Name), cs.add(req.Version), cs.add(req.BaseDir)
	p, x, err := s.startRemoteOp(ctx, "snapshot", opts, func(_ *extras, o *C.snapshotter_options_t) startFunc {
		return func(st *C.snapshotter_t, payload C.uintptr_t, wp C.int, out **C.snapshotter_op_t) C.int {
			return C.sgo_snapshot_async(st, name, version, base, files, o, wp, payload, out)
		}
	})
	if err != nil {
		return err
	}
	err = p.wait(ctx, x.fillReport)
	if e, ok := err.(*Error); ok && e.Code == CodeExists && strings.HasPrefix(e.Message, "snapshot ") &&
		strings.HasSuffix(e.Message, " already exists") {
		return ErrSnapshotAlreadyExists
	}
	return err
}

// Restore restores req.Name:req.Version into req.OutputDir. A snapshot not
// in the local store is fetched from the registry when one is configured.
// Files already in OutputDir are replaced unless WithRefuseExisting.
func (s *Store) Restore(ctx context.Context, req *RestoreRequest, opts ...Option) error {
	if req == nil {
		return &Error{Code: CodeInvalid, Op: "restore", Message: "restore: request is nil"}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var cs cstrings
	defer cs.free()
	name, version, output := cs.add(req.Name), cs.add(req.Version), cs.add(req.OutputDir)
	p, x, err := s.startRemoteOp(ctx, "restore", opts, func(x *extras, o *C.snapshotter_options_t) startFunc {
		var flags C.uint
		if !x.refuse {
			flags |= C.SNAPSHOTTER_RESTORE_OVERWRITE
		}
		return func(st *C.snapshotter_t, payload C.uintptr_t, wp C.int, out **C.snapshotter_op_t) C.int {
			return C.sgo_restore_async(st, name, version, output, flags, o, wp, payload, out)
		}
	})
	if err != nil {
		return err
	}
	return p.wait(ctx, x.fillReport)
}

func (x *extras) fillReport(op *C.snapshotter_op_t) {
	if x.report != nil {
		*x.report = reportFromC(C.snapshotter_op_report(op))
	}
}

// Delete deletes name:version from the local store, and the content no
// other snapshot references. It does not touch the registry.
func (s *Store) Delete(ctx context.Context, name, version string) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	var cs cstrings
	defer cs.free()
	cn, cv := cs.add(name), cs.add(version)
	p, err := s.begin(ctx, "delete", nil, func(st *C.snapshotter_t, payload C.uintptr_t, _ C.int, out **C.snapshotter_op_t) C.int {
		return C.sgo_delete_async(st, cn, cv, payload, out)
	})
	if err != nil {
		return Report{}, err
	}
	var r Report
	err = p.wait(ctx, func(op *C.snapshotter_op_t) { r = reportFromC(C.snapshotter_op_report(op)) })
	return r, err
}

// GC runs a garbage collection now with the store's GC settings: it
// evicts least recently used snapshots while the disk is above the high
// threshold (or the store above WithMaxStoreBytes) and removes orphans.
// WithProgress is the only option that applies.
func (s *Store) GC(ctx context.Context, opts ...Option) (Report, error) {
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	p, _, err := s.startOp(ctx, "gc", opts, func(*extras) startFunc {
		return func(st *C.snapshotter_t, payload C.uintptr_t, wp C.int, out **C.snapshotter_op_t) C.int {
			return C.sgo_gc_async(st, wp, payload, out)
		}
	})
	if err != nil {
		return Report{}, err
	}
	var r Report
	err = p.wait(ctx, func(op *C.snapshotter_op_t) { r = reportFromC(C.snapshotter_op_report(op)) })
	return r, err
}

// Verify re-hashes all content and checks every record. Problems found
// are in the report, not an error. WithProgress is the only option that
// applies.
func (s *Store) Verify(ctx context.Context, opts ...Option) (*VerifyReport, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, _, err := s.startOp(ctx, "verify", opts, func(*extras) startFunc {
		return func(st *C.snapshotter_t, payload C.uintptr_t, wp C.int, out **C.snapshotter_op_t) C.int {
			return C.sgo_verify_async(st, wp, payload, out)
		}
	})
	if err != nil {
		return nil, err
	}
	var r *VerifyReport
	err = p.wait(ctx, func(op *C.snapshotter_op_t) {
		if v := C.snapshotter_op_verify_report(op); v != nil {
			r = verifyReportFromC(v)
		}
	})
	if err == nil && r == nil {
		err = &Error{Code: CodeInternal, Op: "verify", Message: "verify: finished without a report"}
	}
	return r, err
}

// List returns every snapshot in the local store, sorted by name then
// version.
func (s *Store) List() ([]SnapshotInfo, error) {
	var l *C.snapshotter_snapshot_list_t
	if err := s.withStore("list", func(p *C.snapshotter_t) C.int { return C.snapshotter_list(p, &l) }); err != nil {
		return nil, err
	}
	defer C.snapshotter_snapshot_list_free(l)
	return snapshotListFromC(l), nil
}

// Files returns the files of name:version, sorted by path, and its config
// JSON.
func (s *Store) Files(name, version string) (*FileList, error) {
	var cs cstrings
	defer cs.free()
	cn, cv := cs.add(name), cs.add(version)
	var l *C.snapshotter_file_list_t
	if err := s.withStore("files", func(p *C.snapshotter_t) C.int { return C.snapshotter_files(p, cn, cv, &l) }); err != nil {
		return nil, err
	}
	defer C.snapshotter_file_list_free(l)
	return fileListFromC(l), nil
}

// Stats returns the store's usage.
func (s *Store) Stats() (Stats, error) {
	var st C.snapshotter_stats_t
	st.size = C.uint32_t(unsafe.Sizeof(st))
	if err := s.withStore("stats", func(p *C.snapshotter_t) C.int { return C.snapshotter_stats(p, &st) }); err != nil {
		return Stats{}, err
	}
	return statsFromC(&st), nil
}

// ActiveOperations is the number of operations running on the store now
// (every call waits for its own, so this is 0 between calls; for leak
// checks).
func (s *Store) ActiveOperations() (int, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ptr == nil {
		return 0, closedError("active operations")
	}
	n, msg := callC(func() C.int { return C.snapshotter_active_operations(s.ptr) })
	if n < 0 {
		return 0, newError("active operations", n, msg)
	}
	return int(n), nil
}
