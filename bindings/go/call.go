package snapshotter

/*
#include <snapshotter.h>
*/
import "C"

import "runtime"

// callC runs one C call whose failure message is the thread-local
// snapshotter_last_error: the goroutine stays on its OS thread from the
// call until the message is copied, so no other goroutine's call on that
// thread can replace it in between.
func callC(fn func() C.int) (C.int, string) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	rc := fn()
	if rc == 0 {
		return 0, ""
	}
	return rc, C.GoString(C.snapshotter_last_error())
}
