package snapshotter

// The .pc file is the one place that says where libsnapshotter is: build
// with PKG_CONFIG_PATH pointing at an installed prefix. Go 1.19's build
// cache does not notice a changed .pc or library; after switching
// libraries, build with -a (test.sh keys its build cache on the library).

/*
#cgo pkg-config: snapshotter
#include <snapshotter.h>
*/
import "C"
