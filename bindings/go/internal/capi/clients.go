// Package capi holds what the snapshotter package and its pkg/oci and
// pkg/dragonfly clients share: the library's status codes and errors, and
// the C calls of the registry and content clients.
package capi

/*
#include <stdlib.h>
#include <snapshotter.h>
*/
import "C"

import (
	"runtime"
	"unsafe"
)

// call runs one C call whose failure message is the thread-local
// snapshotter_last_error, with the goroutine on its OS thread until the
// message is copied.
func call(op string, fn func() C.int) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := fn()
	if rc == 0 {
		return nil
	}
	return &Error{Code: Code(rc), Op: op, Message: C.GoString(C.snapshotter_last_error())}
}

// Setting is one numbered option: a string, or an int when IsInt.
type Setting struct {
	Name   string // the Go field it came from, for messages
	Option int
	Str    string
	Int    int64
	IsInt  bool
}

// options builds a snapshotter_options_t; free it with C.snapshotter_options_free.
func options(op string, settings []Setting) (*C.snapshotter_options_t, error) {
	p := C.snapshotter_options_new()
	if p == nil {
		return nil, &Error{Code: CodeOutOfMemory, Op: op, Message: op + ": out of memory"}
	}
	for _, s := range settings {
		var err error
		if s.IsInt {
			err = call(op, func() C.int { return C.snapshotter_options_set_int(p, C.int(s.Option), C.int64_t(s.Int)) })
		} else {
			cs := C.CString(s.Str)
			err = call(op, func() C.int { return C.snapshotter_options_set_string(p, C.int(s.Option), cs) })
			C.free(unsafe.Pointer(cs))
		}
		if err != nil {
			C.snapshotter_options_free(p)
			e := err.(*Error)
			e.Message = s.Name + ": " + e.Message
			return nil, e
		}
	}
	return p, nil
}

// Option numbers of the settings the clients use.
const (
	OptRegistryEndpoint  = C.SNAPSHOTTER_OPT_REGISTRY_ENDPOINT
	OptRegistryNamespace = C.SNAPSHOTTER_OPT_REGISTRY_NAMESPACE
	OptRegistryUsername  = C.SNAPSHOTTER_OPT_REGISTRY_USERNAME
	OptRegistryPassword  = C.SNAPSHOTTER_OPT_REGISTRY_PASSWORD
	OptRegistryInsecure  = C.SNAPSHOTTER_OPT_REGISTRY_INSECURE
	OptContentURL        = C.SNAPSHOTTER_OPT_CONTENT_URL
	OptContentEndpoint   = C.SNAPSHOTTER_OPT_CONTENT_ENDPOINT
	OptContentRegion     = C.SNAPSHOTTER_OPT_CONTENT_REGION
	OptContentKeyID      = C.SNAPSHOTTER_OPT_CONTENT_ACCESS_KEY_ID
	OptContentSecret     = C.SNAPSHOTTER_OPT_CONTENT_SECRET_ACCESS_KEY
	OptDragonflyEndpoint = C.SNAPSHOTTER_OPT_DRAGONFLY_ENDPOINT
)

func withOptions(op string, settings []Setting, fn func(o *C.snapshotter_options_t) error) error {
	o, err := options(op, settings)
	if err != nil {
		return err
	}
	defer C.snapshotter_options_free(o)
	return fn(o)
}

func bytesOut(p unsafe.Pointer, n C.size_t) []byte {
	defer C.snapshotter_free(p)
	return C.GoBytes(p, C.int(n))
}

func cbytes(b []byte) (unsafe.Pointer, C.size_t) {
	if len(b) == 0 {
		return nil, 0
	}
	return C.CBytes(b), C.size_t(len(b))
}

// PushBlob pushes data to repository name; it returns the digest.
func PushBlob(settings []Setting, name string, data []byte) (string, error) {
	var digest string
	err := withOptions("push blob", settings, func(o *C.snapshotter_options_t) error {
		cn := C.CString(name)
		defer C.free(unsafe.Pointer(cn))
		p, n := cbytes(data)
		defer C.free(p)
		var out *C.char
		if err := call("push blob", func() C.int { return C.snapshotter_registry_push_blob(o, cn, p, n, &out) }); err != nil {
			return err
		}
		digest = C.GoString(out)
		C.snapshotter_free(unsafe.Pointer(out))
		return nil
	})
	return digest, err
}

// PushManifest pushes a manifest under reference; it returns the digest.
func PushManifest(settings []Setting, name, reference string, manifest []byte) (string, error) {
	var digest string
	err := withOptions("push manifest", settings, func(o *C.snapshotter_options_t) error {
		cn, cr := C.CString(name), C.CString(reference)
		defer C.free(unsafe.Pointer(cn))
		defer C.free(unsafe.Pointer(cr))
		p, n := cbytes(manifest)
		defer C.free(p)
		var out *C.char
		if err := call("push manifest", func() C.int { return C.snapshotter_registry_push_manifest(o, cn, cr, p, n, &out) }); err != nil {
			return err
		}
		digest = C.GoString(out)
		C.snapshotter_free(unsafe.Pointer(out))
		return nil
	})
	return digest, err
}

// PullBlob pulls the blob of digest, checked against it.
func PullBlob(settings []Setting, name, digest string) ([]byte, error) {
	var data []byte
	err := withOptions("pull blob", settings, func(o *C.snapshotter_options_t) error {
		cn, cd := C.CString(name), C.CString(digest)
		defer C.free(unsafe.Pointer(cn))
		defer C.free(unsafe.Pointer(cd))
		var p unsafe.Pointer
		var n C.size_t
		if err := call("pull blob", func() C.int { return C.snapshotter_registry_pull_blob(o, cn, cd, &p, &n) }); err != nil {
			return err
		}
		data = bytesOut(p, n)
		return nil
	})
	return data, err
}

// PullManifest pulls the manifest of reference.
func PullManifest(settings []Setting, name, reference string) ([]byte, error) {
	var data []byte
	err := withOptions("pull manifest", settings, func(o *C.snapshotter_options_t) error {
		cn, cr := C.CString(name), C.CString(reference)
		defer C.free(unsafe.Pointer(cn))
		defer C.free(unsafe.Pointer(cr))
		var p unsafe.Pointer
		var n C.size_t
		if err := call("pull manifest", func() C.int { return C.snapshotter_registry_pull_manifest(o, cn, cr, &p, &n) }); err != nil {
			return err
		}
		data = bytesOut(p, n)
		return nil
	})
	return data, err
}

// Upload uploads the content file at path under digest.
func Upload(settings []Setting, digest, path string) error {
	return withOptions("upload", settings, func(o *C.snapshotter_options_t) error {
		cd, cp := C.CString(digest), C.CString(path)
		defer C.free(unsafe.Pointer(cd))
		defer C.free(unsafe.Pointer(cp))
		return call("upload", func() C.int { return C.snapshotter_content_upload(o, cd, cp) })
	})
}

// Download downloads the content of digest to path, checked against it.
func Download(settings []Setting, digest, path string) error {
	return withOptions("download", settings, func(o *C.snapshotter_options_t) error {
		cd, cp := C.CString(digest), C.CString(path)
		defer C.free(unsafe.Pointer(cd))
		defer C.free(unsafe.Pointer(cp))
		return call("download", func() C.int { return C.snapshotter_content_download(o, cd, cp) })
	})
}
