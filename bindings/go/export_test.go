package snapshotter

import "runtime"

// LiveHandles is the number of cgo.Handles of operations not yet released.
func LiveHandles() int64 { return liveHandles.Load() }

// Finalized is the number of stores the finalizer has closed.
func Finalized() int64 { return finalized.Load() }

// WaitGateChanging returns once a call on s waits in the remote gate to
// change the settings (the test's event; nothing signals it, so it yields).
func WaitGateChanging(s *Store) {
	for {
		s.cfgMu.Lock()
		changing := s.gate.changing
		s.cfgMu.Unlock()
		if changing {
			return
		}
		runtime.Gosched()
	}
}
