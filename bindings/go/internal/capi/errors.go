package capi

/*
#cgo pkg-config: snapshotter
#include <snapshotter.h>
*/
import "C"

import (
	"io/fs"
	"strconv"
)

// Code is a libsnapshotter status code (the negative SNAPSHOTTER_E*
// values of snapshotter.h, promised stable). A Code is itself an error,
// and the Err* variables below are Codes, so errors.Is(err, ErrNotFound)
// holds for every *Error whose Code is CodeNotFound.
type Code int

// The status codes of snapshotter.h.
const (
	CodeInvalid     Code = C.SNAPSHOTTER_EINVAL
	CodeNotFound    Code = C.SNAPSHOTTER_ENOTFOUND
	CodeExists      Code = C.SNAPSHOTTER_EEXISTS
	CodeIO          Code = C.SNAPSHOTTER_EIO
	CodeCorrupt     Code = C.SNAPSHOTTER_ECORRUPT
	CodeRegistry    Code = C.SNAPSHOTTER_EREGISTRY
	CodeTransport   Code = C.SNAPSHOTTER_ETRANSPORT
	CodeCanceled    Code = C.SNAPSHOTTER_ECANCELED
	CodeBusy        Code = C.SNAPSHOTTER_EBUSY
	CodeClosed      Code = C.SNAPSHOTTER_ECLOSED
	CodeNoSpace     Code = C.SNAPSHOTTER_ENOSPACE
	CodePermission  Code = C.SNAPSHOTTER_EPERM
	CodeUnsupported Code = C.SNAPSHOTTER_EUNSUPPORTED
	CodeInternal    Code = C.SNAPSHOTTER_EINTERNAL
	CodeTimedOut    Code = C.SNAPSHOTTER_ETIMEDOUT
	CodeInProgress  Code = C.SNAPSHOTTER_EINPROGRESS
	CodeOutOfMemory Code = C.SNAPSHOTTER_ENOMEM
	CodeForked      Code = C.SNAPSHOTTER_EFORKED
)

var codeText = map[Code]string{
	CodeInvalid:     "invalid argument",
	CodeNotFound:    "not found",
	CodeExists:      "already exists",
	CodeIO:          "I/O error",
	CodeCorrupt:     "corrupt content",
	CodeRegistry:    "registry error",
	CodeTransport:   "transport error",
	CodeCanceled:    "canceled",
	CodeBusy:        "busy",
	CodeClosed:      "store closed",
	CodeNoSpace:     "no space left",
	CodePermission:  "permission denied",
	CodeUnsupported: "not supported",
	CodeInternal:    "internal error",
	CodeTimedOut:    "timed out",
	CodeInProgress:  "in progress",
	CodeOutOfMemory: "out of memory",
	CodeForked:      "handle from another process (after fork)",
}

func (c Code) Error() string {
	if t, ok := codeText[c]; ok {
		return "snapshotter: " + t
	}
	return "snapshotter: status " + strconv.Itoa(int(c))
}

// Is lets the file-system sentinels match too:
// errors.Is(err, fs.ErrNotExist) for a missing snapshot, and so on.
func (c Code) Is(target error) bool {
	switch target {
	case fs.ErrNotExist:
		return c == CodeNotFound
	case fs.ErrExist:
		return c == CodeExists
	case fs.ErrPermission:
		return c == CodePermission
	}
	return false
}

// Error is a failure reported by libsnapshotter: its status code and the
// library's message, which names what failed (the snapshot, the file).
type Error struct {
	Code Code
	// Op is the call that failed ("snapshot", "restore", "open", ...).
	Op string
	// Message is the library's message; it never contains a password.
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return "snapshotter: " + e.Op + ": " + codeText[e.Code]
	}
	return "snapshotter: " + e.Message
}

// Unwrap returns the Code, so errors.Is(err, ErrNotFound) works.
func (e *Error) Unwrap() error { return e.Code }

