package server

import (
	"unsafe"

	"github.com/dagger/dagger/engine"
)

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What      string
	Got, Want uintptr
}

// Layout returns the offsets and sizes the tracer relies on.
func Layout() []LayoutCheck {
	var (
		s  daggerSession
		md engine.ClientMetadata
	)
	return []LayoutCheck{
		{"daggerSession.sessionID", unsafe.Offsetof(s.sessionID), 0},
		{"daggerSession.mainClientCallerID", unsafe.Offsetof(s.mainClientCallerID), 16},
		{"daggerSession.state", unsafe.Offsetof(s.state), 32},
		{"daggerSession.stateMu", unsafe.Offsetof(s.stateMu), 48},
		{"daggerSession.clients", unsafe.Offsetof(s.clients), 72},
		{"daggerSession.dagqlCache", unsafe.Offsetof(s.dagqlCache), 280},
		{"ClientMetadata.ClientID", unsafe.Offsetof(md.ClientID), 0},
		{"ClientMetadata.SessionID", unsafe.Offsetof(md.SessionID), 32},
		{"ClientMetadata size", unsafe.Sizeof(md), 328},
	}
}
