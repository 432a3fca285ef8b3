// Package engine holds the build-stamped engine version (set with
// -ldflags "-X github.com/dagger/dagger/engine.Version=...") and the client metadata
// type the server receives (engine/opts.go).
package engine

// Version is the engine version, stamped at link time like the real build's.
var Version string

// ClientMetadata stands in for engine.ClientMetadata: ClientID 0,
// ClientSecretToken 16, SessionID 32, ClientHostname 48 (passed by pointer).
type ClientMetadata struct {
	ClientID          string
	ClientSecretToken string
	SessionID         string
	ClientHostname    string
	ClientVersion     string
}
