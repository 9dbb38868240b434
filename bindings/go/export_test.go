package snapshotter

// LiveHandles is the number of cgo.Handles of operations not yet released.
func LiveHandles() int64 { return liveHandles.Load() }

// Finalized is the number of stores the finalizer has closed.
func Finalized() int64 { return finalized.Load() }

// GCSettings is what a GC maps to: the library options it sets, by name.
func GCSettings(g GC) map[string]int64 {
	s := gcFrom(g)
	m := map[string]int64{}
	for name, v := range map[string]*int64{"interval": s.interval, "high": s.high, "low": s.low,
		"batch": s.batch, "retention": s.retention} {
		if v != nil {
			m[name] = *v
		}
	}
	return m
}
