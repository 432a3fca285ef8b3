package engine

import "unsafe"

// ClientMetadataLayout returns (what, got, want) for ClientMetadata.
func ClientMetadataLayout() [][3]any {
	var m ClientMetadata
	return [][3]any{
		{"ClientMetadata.ClientID", unsafe.Offsetof(m.ClientID), uintptr(0)},
		{"ClientMetadata.ClientSecretToken", unsafe.Offsetof(m.ClientSecretToken), uintptr(16)},
		{"ClientMetadata.SessionID", unsafe.Offsetof(m.SessionID), uintptr(32)},
		{"ClientMetadata.ClientHostname", unsafe.Offsetof(m.ClientHostname), uintptr(48)},
	}
}
