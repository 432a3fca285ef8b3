package server

import "unsafe"

// LayoutCheck is one asserted offset or size.
type LayoutCheck struct {
	What      string
	Got, Want uintptr
}

// Layout returns the offsets the tracer relies on.
func Layout() []LayoutCheck {
	var (
		s  daggerSession
		md ClientMetadata
	)
	return []LayoutCheck{
		{"daggerSession.sessionID", unsafe.Offsetof(s.sessionID), 0},
		{"daggerSession.mainClientCallerID", unsafe.Offsetof(s.mainClientCallerID), 16},
		{"ClientMetadata.ClientID", unsafe.Offsetof(md.ClientID), 0},
		{"ClientMetadata.ClientSecretToken", unsafe.Offsetof(md.ClientSecretToken), 16},
		{"ClientMetadata.SessionID", unsafe.Offsetof(md.SessionID), 32},
		{"ClientMetadata.ClientHostname", unsafe.Offsetof(md.ClientHostname), 48},
	}
}
