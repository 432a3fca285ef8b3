// Package engine holds the build-stamped engine version (set with
// -ldflags "-X github.com/dagger/dagger/engine.Version=...") and the client metadata
// type the server receives.
package engine

// Version is stamped at build time like the real engine's.
var Version string

// ClientMetadata stands in for engine.ClientMetadata (engine/opts.go): ClientID 0,
// ClientSecretToken 16, SessionID 32, ClientHostname 48.
type ClientMetadata struct {
	ClientID          string
	ClientSecretToken string
	SessionID         string
	ClientHostname    string
}
