package server

import "unsafe"

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What      string
	Got, Want uintptr
}

// Layout returns the offsets the tracer relies on.
func Layout() []LayoutCheck {
	var s daggerSession
	return []LayoutCheck{
		{"daggerSession.sessionID", unsafe.Offsetof(s.sessionID), 0},
		{"daggerSession.mainClientCallerID", unsafe.Offsetof(s.mainClientCallerID), 16},
	}
}
