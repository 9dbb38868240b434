package snapshotter

// LiveHandles is the number of cgo.Handles of operations not yet released.
func LiveHandles() int64 { return liveHandles.Load() }

// Finalized is the number of stores the finalizer has closed.
func Finalized() int64 { return finalized.Load() }
