package snapshotter

/*
#include <snapshotter.h>
#include "shim.h"
*/
import "C"

import (
	"context"
	"runtime"
	"runtime/cgo"
	"sync/atomic"
)

// An operation in flight: library threads reach its opState through a
// cgo.Handle passed as the callbacks' payload.
//
// No goroutine is started per operation: the calling goroutine selects on
// the done channel and ctx.Done(), and on cancellation calls
// snapshotter_op_cancel and keeps waiting for the done callback, so the
// handle, the op and its callbacks are all finished when the call returns.

type opState struct {
	done     chan C.int // the final status, from the done callback
	progress func(Progress)
	// The caller's context: canceled by the progress function (or while
	// it ran), the operation stops at that event, not some time later.
	ctx context.Context
	// A panic in the progress function, recovered on the library thread
	// (it cannot unwind through C) and raised again by the caller.
	panicked bool
	panicVal interface{}
}

// liveHandles counts the cgo.Handles of operations not yet released (for
// the leak tests).
var liveHandles atomic.Int64

//export snapshotterGoProgress
func snapshotterGoProgress(h C.uintptr_t, p *C.snapshotter_progress_t) (rc C.int) {
	st := cgo.Handle(h).Value().(*opState)
	if st.panicked {
		return 1
	}
	defer func() {
		if v := recover(); v != nil {
			st.panicked, st.panicVal = true, v
			rc = 1 // cancels the operation
		}
	}()
	st.progress(progressFromC(p))
	if st.ctx.Err() != nil {
		return 1
	}
	return 0
}

//export snapshotterGoDone
func snapshotterGoDone(h C.uintptr_t, status C.int) {
	// Buffered: the library thread never blocks on Go.
	cgo.Handle(h).Value().(*opState).done <- status
}

// startFunc starts one async operation on the store with the Go
// trampolines as callbacks.
type startFunc func(s *C.snapshotter_t, payload C.uintptr_t, withProgress C.int, out **C.snapshotter_op_t) C.int

type pendingOp struct {
	s    *Store
	what string
	op   *C.snapshotter_op_t
	st   *opState
	h    cgo.Handle
}

// begin starts an operation. The caller must wait for it.
func (s *Store) begin(ctx context.Context, what string, progress func(Progress), start startFunc) (*pendingOp, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.ptr == nil {
		return nil, closedError(what)
	}
	st := &opState{done: make(chan C.int, 1), progress: progress, ctx: ctx}
	h := cgo.NewHandle(st)
	liveHandles.Add(1)
	withProgress := C.int(0)
	if progress != nil {
		withProgress = 1
	}
	var op *C.snapshotter_op_t
	rc, msg := callC(func() C.int { return start(s.ptr, C.uintptr_t(h), withProgress, &op) })
	if rc != 0 {
		h.Delete()
		liveHandles.Add(-1)
		return nil, newError(what, rc, msg)
	}
	return &pendingOp{s: s, what: what, op: op, st: st, h: h}, nil
}

// wait blocks until the operation finishes; canceling ctx cancels it in
// the library and returns ctx.Err() (unless it finished first). On
// success, results reads the op's results before it is freed.
func (p *pendingOp) wait(ctx context.Context, results func(op *C.snapshotter_op_t)) error {
	defer p.release()
	var status C.int
	select {
	case status = <-p.st.done:
	case <-ctx.Done():
		C.snapshotter_op_cancel(p.op)
		status = <-p.st.done
	}
	// The done callback has handed over the status but may still be
	// returning into the library: results (and the store's count of
	// running operations) are settled only once the op is finished.
	C.snapshotter_op_wait(p.op, -1)
	if p.st.panicked {
		panic(p.st.panicVal)
	}
	switch {
	case status == C.SNAPSHOTTER_OK:
		if results != nil {
			results(p.op)
		}
		return nil
	case status == C.SNAPSHOTTER_ECANCELED && ctx.Err() != nil:
		return ctx.Err()
	case status == C.SNAPSHOTTER_ECANCELED && p.s.isClosed():
		return &Error{Code: CodeClosed, Op: p.what, Message: p.what + " canceled: the store was closed"}
	}
	return newError(p.what, status, C.GoString(C.snapshotter_op_error(p.op)))
}

func (p *pendingOp) release() {
	// After op_free no callback of the op runs, so the handle can go.
	C.snapshotter_op_free(p.op)
	p.h.Delete()
	liveHandles.Add(-1)
	runtime.KeepAlive(p.s)
}
