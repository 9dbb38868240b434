package snapshotter

/*
#include <snapshotter.h>
*/
import "C"

import "fmt"

// HeaderVersion is the version of snapshotter.h this package was built
// against.
const HeaderVersion = C.SNAPSHOTTER_VERSION_STRING

// Version is the version of the libsnapshotter loaded at run time.
func Version() string { return C.GoString(C.snapshotter_version_string()) }

// checkVersion refuses a library older than the header, or of another
// major version (whose status codes and options may differ).
func checkVersion() error {
	lib := int(C.snapshotter_version())
	hdr := int(C.SNAPSHOTTER_VERSION_NUMBER)
	if lib/10000 != hdr/10000 || lib < hdr {
		return &Error{Code: CodeUnsupported, Op: "open",
			Message: fmt.Sprintf("libsnapshotter %s is loaded, but this package needs %d.x at least %s", Version(), hdr/10000, HeaderVersion)}
	}
	return nil
}
