package snapshotter

import "context"

// remoteGate keeps each Snapshot and Restore on the registry and content
// settings it started with.
//
// snapshotter_reconfigure is documented to affect only operations started
// after it, but libsnapshotter 0.1 reads the registry when a snapshot
// reaches its publishing phase (and when a restore misses locally), so a
// reconfigure while another call's operation runs would send that
// operation to the new registry. The gate therefore lets operations with
// the current settings run together, and makes a call that changes them
// wait until those have finished; while it waits, new calls queue behind
// it (no starvation). Options apply on top of the store's settings from
// New, for that call only, as in d7y.io/snapshotter.
type remoteGate struct {
	// running counts operations started under cfg and not yet finished;
	// changing is set while a call waits for them to change cfg. The
	// store's cfgMu guards both, and cfg.
	running  int
	changing bool
	wake     chan struct{} // closed (and replaced) when either changes
}

func (g *remoteGate) broadcast() {
	if g.wake != nil {
		close(g.wake)
	}
	g.wake = make(chan struct{})
}

func sameRemote(a, b *Config, xa, xb *extras) bool {
	return a.Metadata == b.Metadata && a.Content == b.Content && a.Dragonfly == b.Dragonfly && xa.remote == xb.remote
}

// enterRemote applies opts to the store's settings, reconfiguring the
// library when they change the remote ones, and counts the caller as
// running under them: it must call leaveRemote when its operation is
// over (or was never started). Called without cfgMu; returns with it
// held, so the operation starts before anyone can change the settings.
func (s *Store) enterRemote(ctx context.Context, what string, opts []Option) (Config, extras, error) {
	g := &s.gate
	s.cfgMu.Lock()
	if g.wake == nil {
		g.wake = make(chan struct{})
	}
	// wait releases cfgMu until the gate changes or ctx is done.
	wait := func() error {
		wake := g.wake
		s.cfgMu.Unlock()
		select {
		case <-wake:
			s.cfgMu.Lock()
			return nil
		case <-ctx.Done():
			s.cfgMu.Lock()
			return ctx.Err()
		}
	}
	for {
		cfg, x := s.cfg, s.ext
		apply(&cfg, &x, opts)
		switch {
		case g.changing:
			if err := wait(); err != nil {
				s.cfgMu.Unlock()
				return Config{}, extras{}, err
			}
		case sameRemote(&cfg, &s.cur, &x, &s.curExt):
			g.running++
			return cfg, x, nil
		default:
			g.changing = true
			for g.running > 0 {
				if err := wait(); err != nil {
					g.changing = false
					g.broadcast()
					s.cfgMu.Unlock()
					return Config{}, extras{}, err
				}
			}
			err := s.reconfigure(what, &cfg, &x)
			g.changing = false
			g.broadcast()
			if err != nil {
				s.cfgMu.Unlock()
				return Config{}, extras{}, err
			}
			s.cur, s.curExt = cfg, x
			g.running++
			return cfg, x, nil
		}
	}
}

func (s *Store) leaveRemote() {
	s.cfgMu.Lock()
	s.leaveRemoteLocked()
	s.cfgMu.Unlock()
}

func (s *Store) leaveRemoteLocked() {
	s.gate.running--
	if s.gate.running == 0 {
		s.gate.broadcast()
	}
}
