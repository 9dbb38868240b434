package snapshotter

/*
#include <snapshotter.h>
*/
import "C"

import "github.com/libsnapshotter/snapshotter-go/internal/capi"

// Code is a libsnapshotter status code (the negative SNAPSHOTTER_E*
// values of snapshotter.h, promised stable). A Code is itself an error,
// and the Err* variables below are Codes, so errors.Is(err, ErrNotFound)
// holds for every *Error whose Code is CodeNotFound.
type Code = capi.Code

// Error is a failure reported by libsnapshotter: its status code and the
// library's message, which names what failed (the snapshot, the file).
// pkg/oci and pkg/dragonfly return it too.
type Error = capi.Error

// The status codes of snapshotter.h.
const (
	CodeInvalid     = capi.CodeInvalid
	CodeNotFound    = capi.CodeNotFound
	CodeExists      = capi.CodeExists
	CodeIO          = capi.CodeIO
	CodeCorrupt     = capi.CodeCorrupt
	CodeRegistry    = capi.CodeRegistry
	CodeTransport   = capi.CodeTransport
	CodeCanceled    = capi.CodeCanceled
	CodeBusy        = capi.CodeBusy
	CodeClosed      = capi.CodeClosed
	CodeNoSpace     = capi.CodeNoSpace
	CodePermission  = capi.CodePermission
	CodeUnsupported = capi.CodeUnsupported
	CodeInternal    = capi.CodeInternal
	CodeTimedOut    = capi.CodeTimedOut
	CodeInProgress  = capi.CodeInProgress
	CodeOutOfMemory = capi.CodeOutOfMemory
	CodeForked      = capi.CodeForked
)

// Sentinel errors, one per status code, for errors.Is.
var (
	ErrInvalid       error = CodeInvalid
	ErrNotFound      error = CodeNotFound
	ErrAlreadyExists error = CodeExists
	ErrIO            error = CodeIO
	ErrCorrupt       error = CodeCorrupt
	ErrRegistry      error = CodeRegistry
	ErrTransport     error = CodeTransport
	// ErrCanceled is a cancellation that did not come from the context
	// (a canceled context gives ctx.Err() itself).
	ErrCanceled    error = CodeCanceled
	ErrBusy        error = CodeBusy
	ErrClosed      error = CodeClosed
	ErrNoSpace     error = CodeNoSpace
	ErrPermission  error = CodePermission
	ErrUnsupported error = CodeUnsupported
	ErrInternal    error = CodeInternal
	ErrTimedOut    error = CodeTimedOut
	ErrInProgress  error = CodeInProgress
	ErrOutOfMemory error = CodeOutOfMemory
	// ErrForked: a handle used in a process forked from the one that
	// opened it (a Go program only sees it through a C fork in cgo code).
	ErrForked error = CodeForked

	// ErrSnapshotAlreadyExists is what Snapshot of a name:version the
	// store already has returns: this value itself, so err ==
	// ErrSnapshotAlreadyExists holds as with d7y.io/snapshotter. It is an
	// *Error with CodeExists: errors.Is(err, ErrAlreadyExists) holds too.
	ErrSnapshotAlreadyExists error = &Error{Code: CodeExists, Op: "snapshot", Message: "snapshot already exists"}
)

func newError(op string, status C.int, message string) error {
	return &Error{Code: Code(status), Op: op, Message: message}
}
